"""Network checkpoints in either format, read the same way: the release's ``omg_ckpt.pt``
(:mod:`core.model.release_checkpoint`) or our own ``.safetensors`` (written by
:func:`save_network_checkpoint`, e.g. by training).

Ours holds the released network's state dict under the release's key names, without what comes
from elsewhere: Meta's frozen DINOv2 weights (``base_dino_model.dino_model.*``: the DINOv2 file),
FLAME's buffers (the FLAME file) and the subdivider's faces (the topology). Its metadata holds
``format`` (``omg-avatar-network``), ``version`` (``2``; version 1 was an earlier network's, which
no weights were trained for) and ``sizes``, the :class:`ReleaseConfig` as JSON. The file's kind
is told by its first bytes, not its name. A safetensors file holds only tensors, so reading one
runs nothing; its sizes are checked against bounds before any network is built.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from core.errors import CheckpointError, first_line
from core.fileio import write_bytes_atomic
from core.model.encoder import PATCH_SIZE
from core.model.release_checkpoint import (
    DINO_PREFIX,
    FLAME_PREFIX,
    SUBDIVIDED_FACES,
    ReleaseCheckpoint,
    read_release_checkpoint,
)
from core.model.release_network import ReleaseConfig, ReleaseNetwork

FORMAT = "omg-avatar-network"
VERSION = "2"
SUFFIX = ".safetensors"
#: Bounds of each size a checkpoint may ask for (inclusive); the paper's are well inside.
SIZE_BOUNDS = {
    "dim": (8, 1024),
    "transformer_layers": (1, 24),
    "subdivision": (0, 2),
    "image_size": (28, 1036),
    "vit_dim": (8, 1536),
    "vit_depth": (4, 40),
    "vit_heads": (1, 32),
    "refiner_size": (8, 1024),
}
#: State-dict prefixes whose values come from the user's files, not from training: Meta's
#: DINOv2, FLAME, and the topology's subdivided faces.
FROM_FILES = (DINO_PREFIX, FLAME_PREFIX, SUBDIVIDED_FACES)


def learned_state(network: ReleaseNetwork) -> dict[str, Tensor]:
    """``network``'s state-dict entries training changes (all but :data:`FROM_FILES`), on the CPU:
    what our checkpoint stores."""
    return {key: value.detach().cpu() for key, value in network.state_dict().items()
            if not key.startswith(FROM_FILES)}  # fmt: skip


def save_network_checkpoint(network: ReleaseNetwork, path: str | Path) -> Path:
    """Write ``network``'s weights and sizes atomically (see the module docstring); returns the
    file written (``path``, with ``.safetensors`` appended when its name lacks it)."""
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    tensors = {  # contiguous copies: safetensors refuses tensors that share memory
        key: torch.clone(value, memory_format=torch.contiguous_format) for key, value in learned_state(network).items()
    }
    metadata = {"format": FORMAT, "version": VERSION, "sizes": json.dumps(dataclasses.asdict(network.config))}
    write_bytes_atomic(path, safetensors.torch.save(tensors, metadata))
    return path


def read_network_checkpoint(path: str | Path) -> ReleaseCheckpoint:
    """A checkpoint of either format (see the module docstring), as the release's reader gives it;
    ours has an empty ``meta_cfg``."""
    path = Path(path)
    if path.is_file() and _is_safetensors(path):
        return _read_own(path)
    return read_release_checkpoint(path)


def _is_safetensors(path: Path) -> bool:
    """Whether the file starts as a safetensors file does: an 8-byte header length, then ``{``."""
    with path.open("rb") as file:
        head = file.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_own(path: Path) -> ReleaseCheckpoint:
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise CheckpointError(f"{path.name}: not an OMG-Avatar network checkpoint (no format '{FORMAT}')")
            if metadata.get("version") != VERSION:
                raise CheckpointError(
                    f"{path.name}: network checkpoint version {metadata.get('version')!r}; this program reads "
                    f"version {VERSION} (version 1 is the earlier network, which had no trained weights: retrain)"
                )
            sizes = _sizes(metadata.get("sizes"), path.name)
            model = {key: file.get_tensor(key) for key in file.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "not readable"
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({first_line(exc)})") from None
    return ReleaseCheckpoint(path, model, {}, sizes)


def _sizes(text: str | None, source: str) -> ReleaseConfig:
    """The :class:`ReleaseConfig` of the metadata's JSON: every field an integer in its bounds."""
    try:
        stored = json.loads(text or "null")
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{source}: its sizes are not valid JSON") from None
    fields = [field.name for field in dataclasses.fields(ReleaseConfig)]
    if not isinstance(stored, dict) or sorted(stored) != sorted(fields):
        raise CheckpointError(f"{source}: its sizes must give exactly {', '.join(fields)}")
    for name, value in stored.items():
        low, high = SIZE_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CheckpointError(f"{source}: size {name} is {value!r}, expected an integer in {low}..{high}")
    config = ReleaseConfig(**stored)
    if config.image_size % PATCH_SIZE or config.vit_dim % config.vit_heads or config.refiner_size & (config.refiner_size - 1):
        raise CheckpointError(f"{source}: sizes {stored} do not make a network (image size a multiple of 14, ViT "
                              "width a multiple of its heads, refiner size a power of two)")  # fmt: skip
    return config
