"""Reading pickles that should hold only numpy arrays and plain containers, without ever running
code from them: FLAME files (:mod:`core.flame.files`, which widens the allow-list to chumpy and
scipy stand-ins) and the release's tracked driver folders (:mod:`core.driving.release_driver`).

A pickle names the callables it calls (``GLOBAL module name``); :class:`NumpyUnpickler` resolves
only those in its ``allowed`` table and refuses every other one by name *before* anything runs.
The base table admits numpy's array and scalar rebuilders (numpy 1 and numpy 2 module names),
``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode`` limited to latin-1 (how Python 3 writes
bytes into protocol-2 pickles). Plain containers (dict, list, tuple, str, numbers) need no global.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import ModelFileError, first_line


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle refers to a class or function outside the allow-list."""


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into protocol-2 pickles (latin-1 only)."""
    if encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


_NUMPY_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
#: numpy's array reconstruction globals (and latin-1 ``_codecs.encode``): all a pickle of numpy
#: arrays in plain containers refers to, with protocols 0 to 4.
NUMPY_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    # numpy's array and scalar rebuilders, under numpy 1 and numpy 2 module names
    **{(module, "_reconstruct"): np.empty(0).__reduce__()[0] for module in _NUMPY_MULTIARRAY},
    **{(module, "scalar"): np.float64(0).__reduce__()[0] for module in _NUMPY_MULTIARRAY},
}


class NumpyUnpickler(pickle.Unpickler):
    """Resolves only the globals of ``allowed``; any other is a :class:`RefusedGlobal` naming it
    and ``what`` ("a FLAME file", ...), raised before it could run."""

    allowed: ClassVar[dict[tuple[str, str], Callable[..., Any]]] = NUMPY_GLOBALS
    what: ClassVar[str] = "a numpy pickle"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise RefusedGlobal(f"refers to '{module}.{name}', which {self.what} never holds (refused)")


def read_numpy_pickle(path: Path, max_bytes: int, unpickler: type[NumpyUnpickler] = NumpyUnpickler) -> Any:
    """What the pickle at ``path`` holds, read with ``unpickler`` (``latin1`` for Python 2 text)
    after checking that the file is at most ``max_bytes`` long. Any problem is a one-line
    :class:`ModelFileError` naming the file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelFileError(f"{path.name}: cannot be read ({first_line(exc)})") from None
    if size > max_bytes:
        raise ModelFileError(f"{path.name}: {size:,} bytes, more than the {max_bytes:,} such a file can have")
    try:
        with path.open("rb") as file:
            return unpickler(file, encoding="latin1").load()
    except RefusedGlobal as exc:
        raise ModelFileError(f"{path.name}: {exc}") from None
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "corrupt"
        raise ModelFileError(f"{path.name}: not a readable pickle (truncated or corrupt: {first_line(exc)})") from None
