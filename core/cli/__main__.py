"""``python -m core.cli`` runs the ``omg-avatar`` command (also the PyInstaller entry point)."""

from core.cli import console_main

console_main()
