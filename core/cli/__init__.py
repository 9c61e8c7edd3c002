"""The ``omg-avatar`` command.

Each subcommand lives in its own module with two functions: ``add_parser(subparsers)``
declares its options and ``run(args) -> int`` does the work (``app`` registers those of the
app package, :mod:`app.launch`, which ``python -m app`` runs on its own). User errors
(:class:`~core.errors.OmgError`) are printed as one line and end with their exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

from core import __version__
from core.cli import app, bench, drive, eval, export, info, loopback, preprocess, reconstruct, track, train, warmup
from core.errors import SIGNAL_STATUS_BASE, exit_status
from core.fileio import remove_stranded_temporaries
from core.interrupts import signals_end_the_run
from core.tracking.native_log import drain_stderr, filter_native_logs

SUBCOMMANDS = (app, reconstruct, drive, export, eval, track, preprocess, train, bench, info, warmup, loopback)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omg-avatar",
        description="One photo to an animatable multi-LOD 3D Gaussian head avatar (OMG-Avatar).",
    )
    parser.add_argument("--version", action="version", version=f"omg-avatar {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    filter_native_logs()  # MediaPipe's native log lines would bury our one-line errors
    with signals_end_the_run():
        try:
            return exit_status("omg-avatar", lambda: args.run(args))
        finally:
            remove_stranded_temporaries()


def console_main() -> None:
    """The ``omg-avatar`` program: :func:`main`, and the process ends with its status. A run
    ended by a signal skips the interpreter's shutdown (its outputs are already cleaned up,
    and stdout and stderr are flushed through): a native thread still running then (a
    decoder's or MediaPipe's) could abort the process at shutdown, once in about 20
    terminated drives, replacing the status 128 + the signal's number with SIGABRT's."""
    status = main()
    if status > SIGNAL_STATUS_BASE:
        sys.stdout.flush()
        drain_stderr()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    console_main()
