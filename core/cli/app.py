"""``omg-avatar app``: the desktop app, and its smoke run for automated checks.

The app package owns the command's options and start-up (:mod:`app.launch`, which
``python -m app`` runs too); this module only registers them as a subcommand.
"""

from __future__ import annotations

import argparse

from app import launch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help=launch.HELP, description=launch.DESCRIPTION)
    launch.add_arguments(parser)
    parser.set_defaults(run=launch.run)
