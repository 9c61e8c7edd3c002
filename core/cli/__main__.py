"""``python -m core.cli`` runs the ``omg-avatar`` command (also the PyInstaller entry point)."""

import sys

from core.cli import main

sys.exit(main())
