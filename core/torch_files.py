"""Torch files a user gives, read without running code from them: ``torch.load`` with
``weights_only`` admits tensors and plain containers only, and refuses anything else (a pickled
class, a function) by name before it runs. Shared by FLAME's ``.pt`` files, network checkpoints,
DINOv2 and LPIPS weights.

Some checkpoints also pickle their training code's objects beside the weights (the OMG-Avatar
release keeps its config in a ``dict`` subclass holding an OmegaConf view). With
``inert_objects``, such a class is not refused but replaced, inside torch's own weights-only
unpickler, by a stand-in of ours that does nothing with its arguments or state: a ``dict``
subclass becomes an ``OrderedDict`` (its items kept), any other class an inert placeholder.
Functions stay refused (``open``, ``eval``: a file that calls them is not a checkpoint), torch
still refuses the modules it blocks (``os``, ``subprocess``, ...), and the only code that runs
is torch's and ours. Each new name costs one more pass over the file, which
is memory-mapped, so the passes are cheap.
"""

from __future__ import annotations

import collections
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelFileError, first_line

#: Most distinct globals replaced in one file (the release's checkpoint needs a handful).
MAX_STAND_INS = 24
#: Lower-case classes a config object may hold: builtin types as values (OmegaConf stores
#: reference types) and the standard library's ``defaultdict`` (OmegaConf's flags).
_LOWER_CASE_CLASSES = frozenset({f"builtins.{name}" for name in ("dict", "list", "tuple", "set", "frozenset", "int",
                                 "long", "float", "str", "bool", "bytes", "complex", "object")}
                                | {"collections.defaultdict"})  # fmt: skip


class InertObject:
    """What a pickled object of unknown class becomes: it ignores its arguments and state."""

    pickled_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def read_weights_only(path: Path, inert_objects: bool = False) -> Any:
    """What a torch file holds, loaded with ``weights_only`` (tensors and plain containers;
    pickled code is refused before it runs; ``inert_objects``: see the module docstring). Any
    problem is a one-line ModelFileError."""
    stand_ins: dict[str, type] = {}
    while True:
        try:
            return _load(path, stand_ins, mapped=inert_objects)
        except pickle.UnpicklingError as exc:
            message = str(exc)
            refused = re.search(r"GLOBAL ([\w.]+)", message)
            dict_like = re.search(r"SETITEM.*but got <class '[\w.]*\.(_StandIn_\w+)'>", message)
            if inert_objects and len(stand_ins) < MAX_STAND_INS and "is blocked" not in message:
                name = refused and _full_name(refused.group(1))
                if name and name not in stand_ins and _is_class_name(name):
                    stand_ins[name] = _stand_in(name)
                    continue
                if dict_like:
                    stand_ins[_name_of(stand_ins, dict_like.group(1))] = collections.OrderedDict
                    continue
            if refused:
                raise ModelFileError(f"{path.name}: refers to '{refused.group(1)}', which a weights file never "
                                     f"holds (refused)") from None  # fmt: skip
            raise ModelFileError(f"{path.name}: not a readable torch file ({first_line(exc)})") from None
        except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "corrupt"
            raise ModelFileError(
                f"{path.name}: not a readable torch file (truncated or corrupt: {first_line(exc)})"
            ) from None


def _load(path: Path, stand_ins: dict[str, type], mapped: bool) -> Any:
    with warnings.catch_warnings(), torch.serialization.safe_globals(
        [(cls, name) for name, cls in stand_ins.items()]
    ):
        warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol
        mapped = mapped and _is_zip(path)  # torch's legacy format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)


def _is_zip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"PK\x03\x04"


def _full_name(shown: str) -> str:
    """The name torch looks a global up by: its messages show builtins without their module."""
    return shown if "." in shown else f"builtins.{shown}"


def _is_class_name(name: str) -> bool:
    """Whether ``name`` is one a stand-in may replace: a class by the naming convention
    (``ConfigDict``, ``DictConfig``, ``typing.Any``) or one of :data:`_LOWER_CASE_CLASSES`. Functions (``open``,
    ``eval``, ``getattr``) stay refused, whatever a stand-in would make of them: config objects
    are built from classes, a file that calls functions is not a checkpoint."""
    return name.rpartition(".")[2].lstrip("_")[:1].isupper() or name in _LOWER_CASE_CLASSES


def _stand_in(name: str) -> type:
    """An inert class for the pickled global ``name``, named after it (torch's messages name it)."""
    return type("_StandIn_" + re.sub(r"\W", "_", name), (InertObject,), {"pickled_name": name})


def _name_of(stand_ins: dict[str, type], class_name: str) -> str:
    return next(name for name, cls in stand_ins.items() if cls.__name__ == class_name)
