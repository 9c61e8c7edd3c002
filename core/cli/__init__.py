"""The ``omg-avatar`` command.

Each subcommand lives in its own module with two functions: ``add_parser(subparsers)``
declares its options and ``run(args) -> int`` does the work (``app`` registers those of the
app package, :mod:`app.launch`, which ``python -m app`` runs on its own). User errors
(:class:`~core.errors.OmgError`) are printed as one line and end with their exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from core import __version__
from core.cli import app, bench, drive, eval, export, info, preprocess, reconstruct, track, train, warmup
from core.errors import Terminated, exit_status
from core.fileio import remove_stranded_temporaries
from core.tracking.native_log import filter_native_logs

SUBCOMMANDS = (app, reconstruct, drive, export, eval, track, preprocess, train, bench, info, warmup)


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


@contextlib.contextmanager
def signals_end_the_run() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`~core.errors.Terminated` in the main thread while the
    block runs, so a run ends as after Ctrl-C: every half-written output is removed, and the
    exit status is 128 + the signal's number. (Only from the main thread: elsewhere signals
    keep their handlers.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {name: signal.getsignal(getattr(signal, name)) for name in names}

    def terminate(number: int, frame: object) -> None:
        raise Terminated(signal.Signals(number).name, 128 + number)

    for name in names:
        signal.signal(getattr(signal, name), terminate)
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


if __name__ == "__main__":
    sys.exit(main())
