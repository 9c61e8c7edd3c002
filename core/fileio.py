"""Writing files so that a crash or a full disk never leaves a half-written one.

Every file the project writes goes through :class:`AtomicFile`: written beside its target
under a hidden temporary name, flushed to disk, given a normal file's mode (0666 less the
umask, as ``open`` would give it) and renamed over the target. An error on the way removes
the temporary file and leaves any previous target untouched. :func:`check_output_path`
refuses, before any work starts, a target that could not be written or would destroy an
input; a target that fails later is an :class:`~core.errors.OutputPathError` too.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from core.errors import OutputPathError

#: Temporary files of :class:`AtomicFile` not yet committed or discarded.
_live_temporaries: set[Path] = set()
_NAME_ATTEMPTS = 100


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
        self.path = check_output_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.temporary = _new_temporary(self.path.parent, f".{self.path.name}.", suffix)
        except OSError as exc:
            raise OutputPathError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        """Flush :attr:`temporary` to disk, give it a normal file's mode and rename it over ``path``."""
        try:
            descriptor = os.open(self.temporary, os.O_RDWR)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.chmod(self.temporary, 0o666 & ~_umask())  # created 0600, as mkstemp does
            os.replace(self.temporary, self.path)
            _live_temporaries.discard(self.temporary)
        except OSError as exc:
            self.discard()
            raise OutputPathError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove :attr:`temporary`; ``path`` stays as it was."""
        self.temporary.unlink(missing_ok=True)
        _live_temporaries.discard(self.temporary)

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, exc_type, exc: BaseException | None, traceback) -> None:
        if exc is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError):  # a full disk, a vanished folder: the user's to fix
            raise OutputPathError(f"cannot write {self.path}: {exc.strerror or exc}") from exc


def remove_stranded_temporaries() -> None:
    """Remove every temporary file of this process not yet committed or discarded: a signal
    or Ctrl-C can end a run between a temporary's creation and the block that would clean it
    up (the command line calls this when a run ends)."""
    for temporary in list(_live_temporaries):
        temporary.unlink(missing_ok=True)
        _live_temporaries.discard(temporary)


def _new_temporary(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file in ``folder`` (mode 0600), registered as live *before* it is created:
    a signal handler can run at any point of this (Python runs it in the main thread whichever
    thread took the signal), and whenever it does, the file is either not there yet or known
    to :func:`remove_stranded_temporaries`."""
    for _ in range(_NAME_ATTEMPTS):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        _live_temporaries.add(candidate)
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return candidate
        except FileExistsError:
            _live_temporaries.discard(candidate)
        except BaseException:  # a signal's exception, before or after the file came to be
            candidate.unlink(missing_ok=True)
            _live_temporaries.discard(candidate)
            raise
    raise FileExistsError(f"no free temporary name in {folder} after {_NAME_ATTEMPTS} attempts")


def check_output_path(path: str | Path, inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """``path`` as a :class:`Path` if a file can be written there without harm, else an
    :class:`~core.errors.OutputPathError`: it is an existing folder, its nearest existing
    folder is not a writable folder, or it is the same file as one of ``inputs`` (by
    resolved path, or by device and inode for links)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: {folder} is not writable")
    for given in inputs:
        if given is not None and _same_file(path, Path(given)):
            raise OutputPathError(f"cannot write {path}: it is also an input, which it would overwrite")
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


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
