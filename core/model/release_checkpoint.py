"""The OMG-Avatar release's checkpoint (``omg_ckpt.pt``), read without running code from it.

The file is a torch file (``torch.save``) of ``{"model": state dict, "meta_cfg": plain nested
dict}``; other top-level entries are tolerated. ``meta_cfg`` holds the YAML config the network was
built from: ``MODEL.DIM``, ``MODEL.N_TRANSFORMER_LAYERS``, ``MODEL.SUBDIVISION`` and
``DATASET.POINT_PLANE_SIZE`` size it (:func:`release_sizes`). The state dict's keys fall in four
classes (:func:`classify_keys`):

* required: the learned keys of the network (``head_base``, ``transformer.*``, the encoder's
  head ``base_dino_model.{projects,resize_layers,layer_rn,refinenet,output_conv}.*``, the
  generators, ``upsampler.*``);
* optional, all or none: ``base_dino_model.dino_model.*``, Meta's frozen DINOv2 ViT-B/14. When
  the file lacks them, Meta's ``dinov2_vitb14_pretrain.pth`` is needed in the models folder
  (:func:`require_dinov2_file`);
* known and ignored: ``percep_loss.*``, the training-only perceptual loss;
* FLAME buffers ``flame_model.*`` and ``subdivider._subdivided_faces``: FLAME comes from the
  FLAME file, so these are only shape-checked against it when present (another shape: the
  network was trained with another FLAME).

Reading is bounded (:data:`MAX_CHECKPOINT_BYTES`, checked before reading) and weights-only
(tensors and plain containers; a pickle that would run code is refused before it runs). The
release's training code may have pickled its config as its own ``dict`` subclass with an
OmegaConf view inside: such objects are read as inert stand-ins (``OrderedDict`` for the
``dict`` subclass, its items kept; :func:`core.torch_files.read_weights_only`). Every
problem is one :class:`~core.errors.CheckpointError` line naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.errors import CheckpointError, ModelFileError
from core.flame.files import FlameModelData
from core.flame.release_state import LANDMARK_SHAPES
from core.model.encoder import PATCH_SIZE, PLANE_PER_PATCH
from core.model.release_network import ReleaseConfig, ReleaseNetwork
from core.model.state_files import KeyDifferences, key_differences
from core.paths import DINOV2_FILE, DINOV2_URL, resolve_model_file
from core.torch_files import read_weights_only

RELEASE_CHECKPOINT_FILE = "omg_ckpt.pt"
#: Largest checkpoint read: the release's network with DINOv2, the perceptual loss and FLAME's
#: buffers is about 0.66 GB in float32.
MAX_CHECKPOINT_BYTES = 2 << 30
DINO_PREFIX = "base_dino_model.dino_model."
IGNORED_PREFIXES = ("percep_loss.",)
FLAME_PREFIX = "flame_model."
SUBDIVIDED_FACES = "subdivider._subdivided_faces"

#: What the release's maths fixes (its encoder and generators hard-code these).
RELEASE_DIM = 256
RELEASE_PLANE_SIZE = 296
MAX_SUBDIVISION = 2  # the release's head splits exist for Sub#0..2


@dataclass(frozen=True)
class FlameSizes:
    """The FLAME model's sizes that shape ``head_base`` and the FLAME buffers."""

    vertices: int = 5023
    faces: int = 9976
    joints: int = 5
    expressions: int = 100
    shape: int = 300

    @classmethod
    def of(cls, model: FlameModelData) -> FlameSizes:
        """Sizes of a FLAME model read by :func:`core.flame.files.load_flame_model`."""
        return cls(
            vertices=model.v_template.shape[0], faces=model.faces.shape[0], joints=model.J_regressor.shape[0],
            expressions=model.exprdirs.shape[2], shape=model.shapedirs.shape[2],
        )  # fmt: skip


@dataclass(frozen=True)
class ReleaseCheckpoint:
    file: Path
    model: dict[str, Tensor]
    meta_cfg: dict
    sizes: ReleaseConfig


@dataclass(frozen=True)
class KeyReport:
    """A release state dict against the expected keys (see the module docstring).

    Attributes:
        differences: missing, unexpected and mis-shaped keys (ignored keys left out; the DINOv2
            keys left out when the file has none; FLAME buffers checked only when present).
        ignored: keys known and not used (the perceptual loss).
        has_dinov2: the file carries the DINOv2 weights.
    """

    differences: KeyDifferences
    ignored: list[str]
    has_dinov2: bool

    @property
    def missing(self) -> list[str]:
        return self.differences.missing

    @property
    def unexpected(self) -> list[str]:
        return self.differences.unexpected

    @property
    def mismatched(self) -> list[dict]:
        return [{"key": key, "file": list(given), "expected": list(wanted)}
                for key, given, wanted in self.differences.mismatched]  # fmt: skip

    def problem(self, source: str) -> str | None:
        """One line on what does not fit, naming the first key of each kind; None when all fit."""
        if not self.differences:
            return None
        parts = []
        for kind, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                parts.append(f"{len(items)} {kind} (first {items[0]})")
        if self.mismatched:
            first = self.mismatched[0]
            parts.append(f"{len(self.mismatched)} mis-shaped (first {first['key']}: file {first['file']}, "
                         f"expected {first['expected']})")  # fmt: skip
        flame = [item["key"] for item in self.mismatched if is_flame_buffer(item["key"])]
        note = f"; its FLAME buffers ({flame[0]}) say it was made for another FLAME model" if flame else ""
        return f"{source}: does not fit the release network: {', '.join(parts)}{note}"


def read_release_checkpoint(path: str | Path) -> ReleaseCheckpoint:
    """The release checkpoint at ``path``: its state dict, ``meta_cfg`` and the sizes it gives."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"release checkpoint not found at {path} (the release's {RELEASE_CHECKPOINT_FILE})")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path.name}: {size:,} bytes, more than a release checkpoint can have "
                              f"({MAX_CHECKPOINT_BYTES:,})")  # fmt: skip
    try:
        content = read_weights_only(path, inert_objects=True)  # its config may be a class of its code
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(content, dict) or not isinstance(content.get("model"), dict) or "meta_cfg" not in content:
        found = f"a {type(content).__name__}"
        if isinstance(content, dict):
            keys = [repr(key)[:40] for key in list(content)[:4]]
            found = ", ".join(keys) + (f", ... ({len(content):,} entries)" if len(content) > 4 else "")
        raise CheckpointError(f"{path.name}: not an OMG-Avatar release checkpoint (expected a dict with a 'model' "
                              f"state dict and 'meta_cfg'; found {found or 'an empty dict'})")  # fmt: skip
    model = content["model"]
    for key, value in model.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(f"{path.name}: 'model' entry {str(key)[:80]!r} holds a {type(value).__name__}, "
                                  "expected a tensor (a state dict)")  # fmt: skip
    meta_cfg = content["meta_cfg"]
    if not isinstance(meta_cfg, dict):
        raise CheckpointError(f"{path.name}: 'meta_cfg' holds a {type(meta_cfg).__name__}, expected a dict")
    _check_plain(meta_cfg, path.name, "meta_cfg")
    return ReleaseCheckpoint(path, model, meta_cfg, release_sizes(meta_cfg, path.name, model))


def release_sizes(meta_cfg: Mapping, source: str, model: Mapping[str, Tensor] | None = None) -> ReleaseConfig:
    """The network configuration of ``meta_cfg``; with ``model`` (the state dict), the
    transformer's layers and the head generators are cross-checked against its keys."""
    plane_size = _meta_int(meta_cfg, "DATASET", "POINT_PLANE_SIZE", source, allowed=(RELEASE_PLANE_SIZE,))
    sizes = ReleaseConfig(
        dim=_meta_int(meta_cfg, "MODEL", "DIM", source, allowed=(RELEASE_DIM,)),
        transformer_layers=_meta_int(meta_cfg, "MODEL", "N_TRANSFORMER_LAYERS", source, minimum=1),
        subdivision=_meta_int(meta_cfg, "MODEL", "SUBDIVISION", source, allowed=tuple(range(MAX_SUBDIVISION + 1))),
        image_size=plane_size * PATCH_SIZE // PLANE_PER_PATCH,
    )
    if model is not None:
        for field, prefix, count, what in (
            ("MODEL.N_TRANSFORMER_LAYERS", "transformer.decoder.layers.", sizes.transformer_layers, "decoder layers"),
            ("MODEL.SUBDIVISION", "gs_head_generators.", sizes.subdivision + 1, "head generators"),
        ):
            found = _numbered_children(model, prefix)
            if found and found != set(range(count)):
                raise CheckpointError(f"{source}: meta_cfg {field} gives {count} {what}, but the weights have "
                                      f"{len(found)} ({prefix}{{{','.join(map(str, sorted(found)))}}})")  # fmt: skip
    return sizes


def expected_release_shapes(sizes: ReleaseConfig, flame: FlameSizes = FlameSizes()) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the release network's state dict (without ``percep_loss.*``) for ``sizes``
    and a FLAME of ``flame``'s sizes: the network's learned modules built on the meta device (no
    memory, no weights), and FLAME's buffers as the release stores them (they depend only on
    FLAME's sizes, which the network would need a FLAME file for)."""
    with torch.device("meta"):
        learned = ReleaseNetwork.learned_modules(sizes)
    shapes = {"head_base": (flame.vertices, sizes.dim)}
    shapes |= {f"{name}.{key}": tuple(value.shape) for name, module in learned.items()
               for key, value in module.state_dict().items()}  # fmt: skip
    v, j = flame.vertices, flame.joints
    flame_buffers = {
        "faces_tensor": (flame.faces, 3), "v_template": (v, 3), "shapedirs": (v, 3, flame.shape + flame.expressions),
        "posedirs": (9 * (j - 1), 3 * v), "J_regressor": (j, v), "parents": (j,), "lbs_weights": (v, j),
        "eye_pose": (1, 6), "neck_pose": (1, 3), **{name: shape for name, (shape, _) in LANDMARK_SHAPES.items()},
        "neck_kin_chain": (2,),
    }  # fmt: skip
    shapes |= {FLAME_PREFIX + key: shape for key, shape in flame_buffers.items()}
    shapes[SUBDIVIDED_FACES] = (4 * flame.faces, 3)  # level-1 faces (the release reuses them at level 2)
    return shapes


def classify_keys(model: Mapping[str, Tensor], expected: Mapping[str, Tensor | tuple[int, ...]]) -> KeyReport:
    """``model`` (a release state dict) against ``expected`` (key -> tensor or shape), with the
    key classes of the module docstring."""
    ignored = [key for key in model if key.startswith(IGNORED_PREFIXES) and key not in expected]
    given = {key: value for key, value in model.items() if key not in ignored}
    has_dinov2 = any(key.startswith(DINO_PREFIX) for key in given)
    wanted = {
        key: shape for key, shape in expected.items()
        if (has_dinov2 or not key.startswith(DINO_PREFIX)) and (not is_flame_buffer(key) or key in given)
    }  # fmt: skip
    return KeyReport(key_differences(wanted, given), ignored, has_dinov2)


def require_dinov2_file(report: KeyReport, path: str | Path | None = None) -> Path | None:
    """The DINOv2 file the network needs beside the checkpoint: None when the checkpoint carries
    the weights, else ``path`` (default: its place in the models folder), which must exist."""
    if report.has_dinov2:
        return None
    path = Path(path) if path else resolve_model_file(DINOV2_FILE)
    if not path.is_file():
        raise ModelFileError(
            f"the checkpoint has no DINOv2 weights ({DINO_PREFIX}*) and the DINOv2 file is not at {path}: download "
            f"dinov2_vitb14_pretrain.pth from {DINOV2_URL} (Meta's ViT-B/14) and put it at {path}"
        )
    return path


def module_counts(model: Mapping[str, Tensor]) -> dict[str, dict[str, int]]:
    """Tensors and elements per top-level module of a state dict, in the file's order."""
    counts: dict[str, dict[str, int]] = {}
    for key, value in model.items():
        entry = counts.setdefault(key.split(".", 1)[0], {"tensors": 0, "elements": 0})
        entry["tensors"] += 1
        entry["elements"] += math.prod(value.shape)
    return counts


def is_flame_buffer(key: str) -> bool:
    """Whether ``key`` is one of FLAME's buffers (``flame_model.*``, the subdivided faces): the
    FLAME file gives them."""
    return key.startswith(FLAME_PREFIX) or key == SUBDIVIDED_FACES


def _numbered_children(model: Mapping[str, Tensor], prefix: str) -> set[int]:
    found = set()
    for key in model:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return found


def _meta_int(
    meta_cfg: Mapping, section: str, field: str, source: str, allowed: tuple[int, ...] = (), minimum: int = 0
) -> int:
    """``meta_cfg[section][field]`` as an int: present, an integer, and one of ``allowed`` (or at
    least ``minimum``), else a one-line CheckpointError."""
    where = f"{source}: meta_cfg {section}.{field}"
    block = meta_cfg.get(section)
    if not isinstance(block, Mapping) or field not in block:
        raise CheckpointError(f"{where} is missing (a release checkpoint's meta_cfg sizes its network with it)")
    value = block[field]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{where} is {value!r}, expected an integer")
    if allowed and value not in allowed:
        expected = " or ".join(filter(None, (", ".join(map(str, allowed[:-1])), str(allowed[-1]))))
        raise CheckpointError(f"{where} is {value}, but the release's network works only with {expected}")
    if value < minimum:
        raise CheckpointError(f"{where} is {value}, expected at least {minimum}")
    return value


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, source: str, where: str) -> None:
    """``value`` is a plain nested dict/list of str, int, float, bool and None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{source}: {where} has the key {repr(key)[:40]}, expected text keys")
            _check_plain(item, source, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, source, f"{where}[{index}]")
    elif not isinstance(value, _PLAIN):
        raise CheckpointError(f"{source}: {where} holds a {type(value).__name__}, expected plain config values")
