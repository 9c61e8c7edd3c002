"""numba's on-disk kernel cache in a PyInstaller bundle (see app/__main__.py).

PyInstaller records module paths relative to the bundle (``core/render/cpu.py``), so numba's
own locators do not find the sources build_exe.spec ships beside the bundle's modules: they
either cache by the current directory (one compile per working directory) or, with no
writable user cache, fail the import. This locator (set for both executables by the
spec's run-time hook) resolves the path inside the bundle and caches in ``NUMBA_CACHE_DIR``
(the app sets it), else in numba's user cache folder; if that cannot be written, in a
temporary folder (the kernels then compile on every start, but the program runs).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import sys
import tempfile

from numba.core import config
from numba.core.caching import UserProvidedCacheLocator
from numba.misc.appdirs import AppDirs


@functools.cache
def _temporary_dir() -> str:
    path = tempfile.mkdtemp(prefix="omg-avatar-numba-")
    atexit.register(shutil.rmtree, path, True)
    return path


class BundleCacheLocator(UserProvidedCacheLocator):
    @classmethod
    def from_function(cls, py_func, py_file):
        py_file = os.path.join(getattr(sys, "_MEIPASS", ""), py_file)  # an absolute py_file stays
        if not config.CACHE_DIR:
            config.CACHE_DIR = AppDirs(appname="numba", appauthor=False).user_cache_dir
        locator = super().from_function(py_func, py_file)
        if locator is None and os.path.exists(py_file):  # NUMBA_CACHE_DIR unset or read-only
            locator = cls(py_func, py_file)
            locator._cache_path = os.path.join(_temporary_dir(), os.path.basename(locator._cache_path))
            locator.ensure_cache_path()
        return locator

    def get_source_stamp(self) -> bytes:
        """The shipped source's SHA-256. numba stamps a frozen program's kernels with its
        executable instead, so the bundle's two executables (the app, and the command line
        that compiles the kernels in the background) would discard each other's cache."""
        with open(self._py_file, "rb") as source:
            return hashlib.sha256(source.read()).digest()
