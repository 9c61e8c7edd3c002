"""Torch files a user gives, read without running code from them: ``torch.load`` with
``weights_only`` admits tensors and plain containers only, and refuses anything else (a pickled
class, a function) by name before it runs. Shared by FLAME's ``.pt`` files, network checkpoints,
DINOv2 and LPIPS weights."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelFileError, first_line


def read_weights_only(path: Path) -> Any:
    """What a torch file holds, loaded with ``weights_only`` (tensors and plain containers;
    pickled code is refused before it runs). Any problem is a one-line ModelFileError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if refused:
            raise ModelFileError(f"{path.name}: refers to '{refused.group(1)}', which a weights file never "
                                 f"holds (refused)") from None  # fmt: skip
        raise ModelFileError(f"{path.name}: not a readable torch file ({first_line(exc)})") from None
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "corrupt"
        raise ModelFileError(
            f"{path.name}: not a readable torch file (truncated or corrupt: {first_line(exc)})"
        ) from None
