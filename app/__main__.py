"""``python -m app`` and the bundled double-click executable: the desktop app.

Arguments are those of ``omg-avatar app``; without any, the demo portrait opens.
"""

import multiprocessing
import os
import sys
from pathlib import Path


def _user_cache_dir() -> Path:
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "omg-avatar"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "omg-avatar"


if __name__ == "__main__":
    multiprocessing.freeze_support()  # the presenter window is a spawned process
    if getattr(sys, "frozen", False):  # a bundle may be read-only: compiled kernels go to the user's cache
        os.environ.setdefault("NUMBA_CACHE_DIR", str(_user_cache_dir() / "numba"))
    if sys.argv[1:2] == ["--presenter-window"]:  # the bundle's presenter (see app/presenter.py)
        from app.presenter_process import main as presenter_main

        sys.exit(presenter_main(sys.argv[2:]))
    from app.launch import main

    sys.exit(main(sys.argv[1:]))
