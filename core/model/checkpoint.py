"""Network checkpoints: one ``.safetensors`` file with the learned weights and the config.

The file's metadata holds ``format`` (``omg-avatar-network``), ``version`` and ``config``
(the :class:`~core.config.Config` as JSON). Frozen weights are not stored: a parameter with
``requires_grad`` False, and everything under a module whose class says ``frozen = True``
(the DINOv2 backbone, whose weights come from Meta's file). Persistent buffers of the other
modules are stored. Loading is strict: a file that does not fit the network is refused with
a report of its missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from core.config import Config, available_configs, config_to_dict, from_dict, load_config
from core.errors import ConfigError, ModelFileError, first_line
from core.fileio import write_bytes_atomic
from core.model.state_files import mismatch_report
from core.paths import CHECKPOINT_DIR, resolve_model_file

FORMAT = "omg-avatar-network"
VERSION = "1"
SUFFIX = ".safetensors"


class CheckpointError(ModelFileError):
    """A network checkpoint is unreadable, not an OMG-Avatar checkpoint, or does not fit the network."""


def frozen_keys(model: nn.Module) -> set[str]:
    """State-dict keys of ``model`` that a checkpoint does not store (see module docstring)."""
    frozen_modules = [name for name, module in model.named_modules() if getattr(module, "frozen", False) is True]
    prefixes = tuple(f"{name}." if name else "" for name in frozen_modules)
    keys = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    return keys | {key for key in model.state_dict() if key.startswith(prefixes)}


def learned_state(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s state dict without its frozen keys: what a checkpoint stores."""
    frozen = frozen_keys(model)
    return {key: value for key, value in model.state_dict().items() if key not in frozen}


def save_checkpoint(model: nn.Module, config: Config, path: str | Path) -> Path:
    """Write ``model``'s learned state and ``config`` atomically; returns the file written
    (``path``, with ``.safetensors`` appended when its name lacks it)."""
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    # safetensors refuses tensors that share memory (tied weights): store independent copies
    tensors = {
        key: torch.clone(value.detach().cpu(), memory_format=torch.contiguous_format)
        for key, value in learned_state(model).items()
    }
    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(config_to_dict(config))}
    write_bytes_atomic(path, safetensors.torch.save(tensors, metadata))
    return path


#: The config's sections that size the network; a checkpoint's config must hold them.
NETWORK_SECTIONS = ("image_size", "camera", "flame", "lod", "model")


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], Config]:
    """The stored tensors and the config of a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"network checkpoint not found at {path} (checkpoints are kept in {resolve_model_file(CHECKPOINT_DIR)})"
        )
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            state = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "not readable"
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({first_line(exc)})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path.name}: not an OMG-Avatar network checkpoint (its metadata has no format '{FORMAT}')"
        )
    if metadata.get("version") != VERSION:
        raise CheckpointError(
            f"{path.name}: checkpoint version {metadata.get('version')!r}, this program reads version {VERSION}"
        )
    return state, _config_from_json(metadata.get("config"), path.name)


def load_strict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model``'s learned (non-frozen) keys; every key and shape must match,
    else :class:`CheckpointError` with the :func:`mismatch_report`. ``source`` names the file."""
    expected = learned_state(model)
    problems = mismatch_report(expected, state)
    if problems:
        header = f"{source}: does not fit this network ({len(state)} tensors given, {len(expected)} expected)"
        raise CheckpointError("\n".join([header, *problems]))
    model.load_state_dict(state, strict=False)  # the keys it reports missing are the frozen ones


def _config_from_json(text: str | None, source: str) -> Config:
    """The stored config, read across program versions: it must have the sections that size
    the network (:data:`NETWORK_SECTIONS`); fields it lacks (an older program wrote it) come
    from this program's shipped config of the same name, else ``paper``; fields this program
    does not know are dropped. The weights are still checked strictly (:func:`load_strict`),
    so a difference that changes the network does not load."""
    try:
        stored = json.loads(text or "null")
        if not isinstance(stored, dict):
            raise ConfigError(f"{source} config: expected a mapping, got {type(stored).__name__}")
        missing = [section for section in NETWORK_SECTIONS if section not in stored]
        if missing:
            raise ConfigError(f"{source} config: missing key(s) {', '.join(missing)}")
        base_name = stored.get("name") if stored.get("name") in available_configs() else "paper"
        return from_dict(Config, _overlay(config_to_dict(load_config(base_name)), stored), where=f"{source} config")
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: its config is not valid JSON ({exc})") from None
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _overlay(base: dict, stored: dict) -> dict:
    """``base`` with the values ``stored`` has for its keys, recursively (other keys dropped)."""
    return {
        key: _overlay(value, stored[key]) if isinstance(value, dict) and isinstance(stored.get(key), dict)
        else stored.get(key, value)
        for key, value in base.items()
    }
