"""What a sound ``.omg`` file holds: bounds on its header, the shapes its members must have,
and the ranges of their values. :func:`core.avatar.avatar_file.load_avatar` applies them in
that order, so that nothing is allocated for a member before its declared shape is known to be
one a real avatar has (the bounds below are generous multiples of the largest avatars made:
a FLAME mesh of 5,023 vertices subdivided twice, about 100K Gaussians). Every failure is a
:class:`FileCheckError` whose one-line message names the field or member.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from core.geometry.mesh import unique_edges
from core.geometry.subdivision import SCHEMES
from core.model.style_refiner import StyleRefiner
from core.untrusted_npz import DeclaredMember

MAX_SUBDIVISIONS = 4  # first_level + num_lods - 1
MAX_LODS = 5
MAX_IMAGE_SIDE = 4096
MIN_IMAGE_SIDE = 16
MAX_CHANNELS = 256
MIN_REFINER_SIZE, MAX_REFINER_SIZE = 8, 1024  # powers of two
MAX_CONTROL_VERTICES = 50_000
MAX_CONTROL_FACES = 100_000
MAX_LANDMARKS = 1_000
MAX_COEFFICIENTS = 1_000  # FLAME shape or expression coefficients
MAX_GAUSSIANS = 4_000_000  # all levels and the shoulders together
#: The first file version holding ``shoulders.rigidity`` (older files: shoulders follow only the body).
SHOULDER_RIGIDITY_VERSION = 4
MAX_GAUSSIAN_VALUES = 64_000_000  # their numbers together: 256 MB of float32
MAX_COORDINATE = 1e3  # head-space units: a head is about 1
MAX_SCALE = 1e2
MAX_FEATURE = 1e4
ROTATION_TOLERANCE = 1e-3
_TEXT_FIELD = 256  # characters of the method's name
_INDEX_MEMBERS = frozenset({"rig.faces", "rig.binding.indices", "rig.binding.indptr"})


class FileCheckError(ValueError):
    """The file's header or a member is outside what a sound avatar file holds."""


def check_header(header: dict) -> None:
    """The header fields a loader sizes things by (see :mod:`core.avatar.avatar_file`)."""
    if not isinstance(header.get("method"), str) or len(header["method"]) > _TEXT_FIELD:
        raise FileCheckError(f"header: method {_shown(header.get('method'))}, expected a name")
    if not isinstance(header.get("provenance"), dict):
        raise FileCheckError("header: provenance is not a mapping")
    if header.get("scheme") not in SCHEMES:
        raise FileCheckError(f"header: scheme {_shown(header.get('scheme'))}, expected one of {list(SCHEMES)}")
    first_level = _integer(header, "first_level", 0, MAX_SUBDIVISIONS)
    _integer(header, "num_lods", 1, min(MAX_LODS, MAX_SUBDIVISIONS + 1 - first_level))
    size = header.get("camera_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(side) for side in size)
            and all(MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE for side in size)):  # fmt: skip
        raise FileCheckError(
            f"header: camera_size {_shown(size)}, expected [width, height] in [{MIN_IMAGE_SIDE}, {MAX_IMAGE_SIDE}]"
        )
    flame = header.get("flame")
    if flame is not None:
        scale = flame.get("scale") if isinstance(flame, dict) else None
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= MAX_COORDINATE):
            raise FileCheckError(f"header: flame {_shown(flame)}, expected {{'scale': a positive number}}")
    refiner = header.get("refiner")
    if refiner is not None:
        if not isinstance(refiner, dict):
            raise FileCheckError(f"header: refiner {_shown(refiner)}, expected a mapping")
        _integer(refiner, "in_channels", 3, MAX_CHANNELS, "refiner.")
        size = _integer(refiner, "image_size", MIN_REFINER_SIZE, MAX_REFINER_SIZE, "refiner.")
        if size & (size - 1):
            raise FileCheckError(f"header: refiner.image_size {size}, expected a power of two")


def rig_shapes(members: Mapping[str, DeclaredMember]) -> dict[str, tuple[int, ...]]:
    """The control-mesh and camera members' expected shapes, sized by the members' own
    declared lengths within the bounds; raises for an absent member (KeyError) or a bound."""
    vertices = _length(members, "rig.vertices", MAX_CONTROL_VERTICES)
    faces = _length(members, "rig.faces", MAX_CONTROL_FACES)
    landmarks = _length(members, "rig.landmarks", MAX_LANDMARKS)
    entries = _length(members, "rig.binding.data", vertices * landmarks)
    return {
        "rig.vertices": (vertices, 3),
        "rig.faces": (faces, 3),
        "rig.binding.data": (entries,),
        "rig.binding.indices": (entries,),
        "rig.binding.indptr": (vertices + 1,),
        "rig.rigidity": (vertices,),
        "rig.landmarks": (landmarks, 3),
        "rig.pivot": (3,),
        "rig.centre": (3,),
        "camera.K": (3, 3),
        "camera.R": (3, 3),
        "camera.t": (3,),
    }


def gaussian_shapes(
    header: dict, members: Mapping[str, DeclaredMember], level_counts: list[int], names: tuple[str, ...]
) -> dict[str, tuple[int, ...]]:
    """The Gaussian members' expected shapes: LOD k has ``level_counts[first_level + k]``
    Gaussians (the control mesh's vertices at that level), all have the same C channels, and
    all levels and the shoulders together at most :data:`MAX_GAUSSIANS` and
    :data:`MAX_GAUSSIAN_VALUES` numbers (11 + C a Gaussian: means, quats, scales, opacity,
    features). ``names``: the per-Gaussian fields (quats, scales, opacities, then features or
    v1's colours)."""
    first, count = header["first_level"], header["num_lods"]
    features = names[-1]
    channels = members[f"lod0.{features}"].shape[-1] if f"lod0.{features}" in members else 3
    if not 3 <= channels <= MAX_CHANNELS:
        raise FileCheckError(f"lod0.{features} declares {channels} channels, expected 3 to {MAX_CHANNELS}")
    shoulders = _length(members, f"shoulders.{features}", MAX_GAUSSIANS)
    total = sum(level_counts[first : first + count]) + shoulders
    if total > MAX_GAUSSIANS or total * (11 + channels) > MAX_GAUSSIAN_VALUES:
        raise FileCheckError(
            f"{total} Gaussians of {channels} channels, more than an avatar file may hold "
            f"({MAX_GAUSSIANS} Gaussians, {MAX_GAUSSIAN_VALUES} values)"
        )
    widths = dict(zip(names, (4, 3, None, channels)))
    shapes = {}
    for prefix, size in [(f"lod{k}", level_counts[first + k]) for k in range(count)] + [("shoulders", shoulders)]:
        for name, width in widths.items():
            shapes[f"{prefix}.{name}"] = (size,) if width is None else (size, width)
        if prefix == "shoulders":
            shapes["shoulders.means"] = (size, 3)
    if header["version"] >= SHOULDER_RIGIDITY_VERSION:
        shapes["shoulders.rigidity"] = (shoulders,)
    return shapes


def flame_shapes(members: Mapping[str, DeclaredMember]) -> dict[str, tuple[int, ...]]:
    """The FLAME rig's members: coefficient vectors, the jaw [3], the eyes [6], the eyelids [0 or 2]."""
    return {
        "flame.shape": (_length(members, "flame.shape", MAX_COEFFICIENTS),),
        "flame.offsets": (_length(members, "flame.offsets", MAX_CONTROL_VERTICES), 3),
        "flame.expression": (_length(members, "flame.expression", MAX_COEFFICIENTS),),
        "flame.jaw": (3,),
        "flame.eyes": (6,),
        "flame.eyelids": (_length(members, "flame.eyelids", 2),),
    }


def refiner_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    """``refiner.<key>`` -> the shape a refiner of the header's sizes has (built without memory)."""
    with torch.device("meta"):
        refiner = StyleRefiner(header["in_channels"], header["image_size"])
    return {f"refiner.{key}": tuple(value.shape) for key, value in refiner.state_dict().items()}


def check_shapes(members: Mapping[str, DeclaredMember], expected: Mapping[str, tuple[int, ...]]) -> None:
    """Every expected member present (KeyError names a missing one) with its shape, and
    holding integers (indices) or floating-point numbers (everything else) as it should."""
    for name, shape in expected.items():
        member = members[name]
        if member.shape != shape:
            raise FileCheckError(f"{name} has shape {list(member.shape)}, expected {list(shape)}")
        kind = "i" if name in _INDEX_MEMBERS else "f"
        if member.dtype.kind != kind:
            raise FileCheckError(f"{name} holds {member.dtype} values, expected {'integers' if kind == 'i' else 'floats'}")


def level_counts(faces: np.ndarray, num_vertices: int, levels: int) -> list[int]:
    """Vertices of the control mesh ``faces`` [F, 3] subdivided 0 .. ``levels`` times: every
    edge gains a vertex and every triangle becomes four (Loop and midpoint alike)."""
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise FileCheckError(f"rig.faces index vertices outside [0, {num_vertices})")
    vertices, edge_count, face_count = num_vertices, len(unique_edges(faces)[0]), len(faces)
    counts = [num_vertices]
    for _ in range(levels):
        vertices, edge_count, face_count = vertices + edge_count, 2 * edge_count + 3 * face_count, 4 * face_count
        counts.append(vertices)
    return counts


def check_values(arrays: Mapping[str, np.ndarray]) -> None:
    """Finite numbers everywhere, and each kind of member in its range."""
    for name, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise FileCheckError(f"{name} holds NaN or infinite values")
    ranges = {
        "opacities": (0.0, 1.0),
        "scales": (np.finfo(np.float32).tiny, MAX_SCALE),
        "features": (-MAX_FEATURE, MAX_FEATURE),
        "colours": (0.0, 1.0),
        "means": (-MAX_COORDINATE, MAX_COORDINATE),
        "rig.vertices": (-MAX_COORDINATE, MAX_COORDINATE),
        "rig.landmarks": (-MAX_COORDINATE, MAX_COORDINATE),
        "rig.pivot": (-MAX_COORDINATE, MAX_COORDINATE),
        "rig.centre": (-MAX_COORDINATE, MAX_COORDINATE),
        "rig.rigidity": (0.0, 1.0),
        "shoulders.rigidity": (0.0, 1.0),
        "flame.offsets": (-MAX_COORDINATE, MAX_COORDINATE),
        "camera.t": (-MAX_COORDINATE, MAX_COORDINATE),
    }
    for name, values in arrays.items():
        bounds = ranges.get(name) or ranges.get(name.rsplit(".", 1)[-1])
        if bounds and values.size and (values.min() < bounds[0] or values.max() > bounds[1]):
            raise FileCheckError(
                f"{name} holds values in [{values.min():.3g}, {values.max():.3g}], expected [{bounds[0]:.3g}, {bounds[1]:.3g}]"
            )
        if name.endswith("quats") and values.size and (np.linalg.norm(values, axis=1) < 1e-8).any():
            raise FileCheckError(f"{name} holds zero-length rotations")
    _check_camera(arrays["camera.K"], arrays["camera.R"])


def _check_camera(intrinsics: np.ndarray, rotation: np.ndarray) -> None:
    if not (intrinsics[0, 0] > 0 and intrinsics[1, 1] > 0 and np.allclose(intrinsics[2], [0, 0, 1])):
        raise FileCheckError("camera.K is not a pinhole camera matrix (positive focal lengths, last row 0 0 1)")
    if np.abs(rotation @ rotation.T - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
        raise FileCheckError("camera.R is not a rotation")


def _length(members: Mapping[str, DeclaredMember], name: str, limit: int) -> int:
    """The declared length (first side) of member ``name``, at most ``limit``."""
    shape = members[name].shape
    if not shape or shape[0] > limit:
        raise FileCheckError(f"{name} declares the shape {list(shape)}, more than {limit} rows")
    return shape[0]


def _integer(mapping: dict, key: str, low: int, high: int, prefix: str = "") -> int:
    value = mapping.get(key)
    if not (_is_int(value) and low <= value <= high):
        raise FileCheckError(f"header: {prefix}{key} {_shown(value)}, expected an integer in [{low}, {high}]")
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value) -> str:
    """A header value for a message: its JSON-ish text, shortened."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
