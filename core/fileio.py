"""Writing files so that a crash or a full disk never leaves a half-written one.

Every file the project writes goes through :class:`AtomicFile`: written beside its target
under a hidden temporary name, flushed to disk, given a normal file's mode (0666 less the
umask, as ``open`` would give it) and renamed over the target. An error on the way removes
the temporary file and leaves any previous target untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class AtomicFile:
    """A file that appears at ``path`` only when complete (see the module docstring).

    The writer fills :attr:`temporary` (an empty file beside ``path``, its parent folder
    created), then :meth:`commit` moves it to ``path`` or :meth:`discard` drops it. As a
    context manager it gives :attr:`temporary` and commits when the block ends normally,
    discards when it raises::

        with AtomicFile(path) as temporary:
            write_somehow(temporary)

    ``suffix``: the temporary name's ending, for writers that choose a format by it.
    """

    def __init__(self, path: str | Path, suffix: str = ".tmp") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=suffix)
        os.close(handle)
        self.temporary = Path(temporary)

    def commit(self) -> None:
        """Flush :attr:`temporary` to disk, give it a normal file's mode and rename it over ``path``."""
        try:
            descriptor = os.open(self.temporary, os.O_RDWR)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.chmod(self.temporary, 0o666 & ~_umask())  # mkstemp made it 0600
            os.replace(self.temporary, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove :attr:`temporary`; ``path`` stays as it was."""
        self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:class:`AtomicFile`)."""
    with AtomicFile(path) as temporary:
        temporary.write_bytes(data)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json_atomic(path: str | Path, value: Any) -> None:
    """``value`` as indented JSON, written atomically."""
    write_bytes_atomic(path, (json.dumps(value, indent=2) + "\n").encode())
