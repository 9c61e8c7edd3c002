"""The ``.omg`` avatar file: an uncompressed numpy ``.npz`` archive with a JSON header.

No pickle: it is read with ``allow_pickle=False``, so a file can hold only plain arrays.
The member ``header`` holds UTF-8 JSON::

    {"format": "omg-avatar", "version": 4, "method": "network",
     "provenance": {...}, "first_level": 0, "scheme": "midpoint", "num_lods": 3,
     "camera_size": [512, 512], "flame": {"scale": 5.0} or null,
     "refiner": {"in_channels": 32, "image_size": 512} or null}

and the other members the arrays of :class:`~core.avatar.avatar.Avatar` (names below).

Versions: 1 holds RGB heads and shoulders (members ``lod<k>.colours``,
``shoulders.colours``, [N, 3]) and nothing else; 2 holds C feature channels
(``lod<k>.features``, ``shoulders.features``, [N, C]); 3 holds, for network avatars, the
FLAME rig in the released network's convention (``flame.shape``, ``flame.offsets`` (template
offsets in FLAME metres), ``flame.expression``, ``flame.jaw``, ``flame.eyes``,
``flame.eyelids``: coefficients and offsets, no FLAME model data; see
:mod:`core.avatar.flame_rig`) and its refiner's weights (``refiner.<state-dict key>``, a
:class:`~core.model.style_refiner.StyleRefiner`); 4 adds ``shoulders.rigidity`` [M] (how much of
the head's motion each shoulder Gaussian follows; 0 for older files). Training-free avatars of
every version load;
version 2's network avatars came from an earlier network without trained weights and are
refused with a message saying so.
Files are written atomically (temporary file, then rename). Reading trusts nothing in the
file (:func:`load_avatar`): the format name and version (a newer version is refused with a
message saying so), the header's bounds, every member's shape and dtype before its data is
read, the members' exact sizes and their values; any problem is an :class:`AvatarFileError`,
never a crash, an unbounded allocation or a decompression bomb. Uncompressed so
that loading is a few memory copies (a Sub#2 avatar of about 100K Gaussians is about
10 MB and loads in tens of milliseconds, subdivision operators rebuilt included; a network
avatar's refiner adds 76 MB).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from core.avatar import avatar_file_checks as checks
from core.avatar.avatar import Avatar, AvatarError, HeadLod, HeadRig
from core.avatar.avatar_file_checks import FileCheckError
from core.avatar.flame_rig import FlamePose, FlameRig
from core.errors import first_line
from core.fileio import write_bytes_atomic
from core.geometry.camera import Camera
from core.model.style_refiner import StyleRefiner
from core.render import Gaussians
from core.untrusted_npz import (
    UNREADABLE_ARCHIVE_ERRORS,
    ArchiveError,
    DeclaredMember,
    declared_members,
    read_member,
)

FORMAT = "omg-avatar"
#: The version this code writes and the newest it reads.
VERSION = 4
#: The first version whose network avatars (FLAME rig, refiner) are the released network's.
RELEASE_NETWORK_VERSION = 4
SUFFIX = ".omg"

_GAUSSIAN_FIELDS = ("quats", "scales", "opacities", "features")
_SHOULDER_FIELDS = ("means", "quats", "scales", "opacities", "features")
#: Version 1's name of the features member (RGB only).
_V1_FEATURES = "colours"
_POSE_FIELDS = ("expression", "jaw", "eyes", "eyelids")
MAX_MEMBERS = 512  # a network avatar has about 320 (the refiner 285)
MAX_HEADER_BYTES = 64 * 1024


class AvatarFileError(AvatarError):
    """An avatar file is missing, corrupt, not an avatar, or from a newer version."""


def save_avatar(avatar: Avatar, path: str | Path) -> Path:
    """Write ``avatar`` to ``path`` atomically; returns the path."""
    rig = avatar.rig
    camera = avatar.source_camera
    header = {
        "format": FORMAT,
        "version": VERSION,
        "method": avatar.method,
        "provenance": avatar.provenance,
        "first_level": avatar.first_level,
        "scheme": avatar.scheme,
        "num_lods": avatar.num_lods,
        "camera_size": [camera.width, camera.height],
        "flame": None if avatar.flame is None else {"scale": avatar.flame.scale},
        "refiner": None if avatar.refiner is None else _refiner_header(avatar.refiner),
    }
    arrays = {
        "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        "rig.vertices": rig.vertices.astype(np.float32),
        "rig.faces": rig.faces.astype(np.int32),
        "rig.binding.data": rig.binding.data.astype(np.float32),
        "rig.binding.indices": rig.binding.indices.astype(np.int32),
        "rig.binding.indptr": rig.binding.indptr.astype(np.int32),
        "rig.rigidity": rig.rigidity.astype(np.float32),
        "rig.landmarks": rig.landmarks.astype(np.float32),
        "rig.pivot": rig.pivot.astype(np.float32),
        "rig.centre": rig.centre.astype(np.float32),
        "camera.K": camera.K,
        "camera.R": camera.R,
        "camera.t": camera.t,
    }
    for lod, head in enumerate(avatar.lods):
        arrays.update({f"lod{lod}.{name}": getattr(head, name).numpy() for name in _GAUSSIAN_FIELDS})
    shoulders = dict(zip(_SHOULDER_FIELDS, _gaussian_arrays(avatar.shoulders)))
    arrays.update({f"shoulders.{name}": values for name, values in shoulders.items()})
    arrays["shoulders.rigidity"] = avatar.shoulder_rigidity
    if avatar.flame is not None:
        flame = avatar.flame
        arrays.update({"flame.shape": flame.shape, "flame.offsets": flame.offsets})
        arrays.update({f"flame.{name}": np.asarray(getattr(flame.source, name), np.float32) for name in _POSE_FIELDS})
    if avatar.refiner is not None:
        weights = avatar.refiner.state_dict()
        arrays.update({f"refiner.{key}": value.detach().cpu().numpy() for key, value in weights.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = Path(path)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_avatar(path: str | Path) -> Avatar:
    """Read an avatar written by :func:`save_avatar`, trusting nothing in the file: the header
    is checked against bounds, every member's declared shape and dtype against the header (and
    so against a size budget) before its data is read, then each member's exact bytes are read
    and its values checked (:mod:`core.avatar.avatar_file_checks`).

    Raises:
        AvatarFileError: the file is missing, unreadable, not an avatar file, damaged, out of
            bounds, or written by a newer version; always one line.
    """
    path = Path(path)
    if not path.is_file():
        raise AvatarFileError(f"avatar file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise AvatarFileError(f"{path.name} is not an omg-avatar file (not an npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            if len(archive.infolist()) > MAX_MEMBERS:
                raise ArchiveError(f"{len(archive.infolist())} members, more than an avatar file has ({MAX_MEMBERS})")
            members = declared_members(archive)
            header = _header(archive, members, path.name)
            arrays = _checked_arrays(archive, members, header)
        return _avatar(header, arrays)
    except AvatarFileError:
        raise
    except KeyError as exc:
        raise AvatarFileError(f"{path.name} is damaged: member {exc.args[0]} is missing") from None
    except (ArchiveError, FileCheckError) as exc:
        raise AvatarFileError(f"{path.name} is damaged: {exc}") from None
    except UNREADABLE_ARCHIVE_ERRORS as exc:
        raise AvatarFileError(f"{path.name} is not a readable omg-avatar file ({first_line(exc)})") from None
    except (ValueError, TypeError, IndexError) as exc:
        raise AvatarFileError(f"{path.name} is damaged ({first_line(exc)})") from None


def _header(archive: zipfile.ZipFile, members: dict[str, DeclaredMember], name: str) -> dict:
    declared = members.get("header")
    if declared is None:
        raise AvatarFileError(f"{name} is not an omg-avatar file (no header)")
    if declared.dtype != np.uint8 or len(declared.shape) != 1 or declared.nbytes > MAX_HEADER_BYTES:
        raise AvatarFileError(f"{name} is not an omg-avatar file (the header is not JSON text of up to 64 KiB)")
    try:
        header = json.loads(read_member(archive, declared).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise AvatarFileError(f"{name} is not an omg-avatar file (unreadable header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise AvatarFileError(f"{name} is not an omg-avatar file (format is not '{FORMAT}')")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise AvatarFileError(f"{name} has an invalid format version {version!r}")
    if version > VERSION:
        raise AvatarFileError(
            f"{name} was written by a newer omg-avatar (file format version {version}; "
            f"this version reads up to {VERSION}): update omg-avatar to open it"
        )
    if version < RELEASE_NETWORK_VERSION and (header.get("flame") is not None or header.get("refiner") is not None):
        raise AvatarFileError(
            f"{name} is a network avatar of file format version {version}, made by an earlier network that had "
            "no trained weights: reconstruct it again with the network method"
        )
    checks.check_header(header)
    return header


def _checked_arrays(archive: zipfile.ZipFile, members: dict[str, DeclaredMember], header: dict) -> dict[str, np.ndarray]:
    """The members an avatar of ``header`` has, each read after its declared shape and dtype
    passed, then their values checked. The control mesh is read first: its faces give the
    number of Gaussians at every level, which the LOD members must then declare."""
    rig = checks.rig_shapes(members)
    checks.check_shapes(members, rig)
    arrays = {name: read_member(archive, members[name]) for name in rig}
    subdivisions = header["first_level"] + header["num_lods"] - 1
    counts = checks.level_counts(arrays["rig.faces"], len(arrays["rig.vertices"]), subdivisions)
    names = _gaussian_names(header["version"])
    expected = checks.gaussian_shapes(header, members, counts, names)
    if header.get("flame") is not None:
        expected |= checks.flame_shapes(members)
    if header.get("refiner") is not None:
        expected |= checks.refiner_shapes(header["refiner"])
    checks.check_shapes(members, expected)
    arrays |= {name: read_member(archive, members[name]) for name in expected}
    checks.check_values(arrays)
    return arrays


def _avatar(header: dict, arrays: dict[str, np.ndarray]) -> Avatar:
    """The avatar from a checked header and the archive's checked arrays (raises ValueError
    on members that are inconsistent with each other)."""
    vertices = arrays["rig.vertices"]
    num_landmarks = len(arrays["rig.landmarks"])
    binding = sp.csr_matrix(
        (arrays["rig.binding.data"], arrays["rig.binding.indices"], arrays["rig.binding.indptr"]),
        shape=(len(vertices), num_landmarks),
    )
    binding.check_format(full_check=True)
    rig = HeadRig(
        vertices=vertices,
        faces=arrays["rig.faces"].astype(np.int64),
        binding=binding,
        rigidity=arrays["rig.rigidity"],
        landmarks=arrays["rig.landmarks"],
        pivot=arrays["rig.pivot"],
        centre=arrays["rig.centre"],
    )
    width, height = (int(v) for v in header["camera_size"])
    camera = Camera(arrays["camera.K"], arrays["camera.R"], arrays["camera.t"], width, height)
    names = _gaussian_names(header["version"])
    lods = tuple(
        HeadLod(*(torch.from_numpy(arrays[f"lod{lod}.{name}"]) for name in names))
        for lod in range(int(header["num_lods"]))
    )
    shoulders = Gaussians(*(torch.from_numpy(arrays[f"shoulders.{name}"]) for name in ("means", *names)))
    return Avatar(
        rig=rig,
        lods=lods,
        shoulders=shoulders,
        source_camera=camera,
        method=str(header["method"]),
        provenance=dict(header["provenance"]),
        first_level=int(header["first_level"]),
        scheme=header["scheme"],
        refiner=_refiner(header.get("refiner"), arrays),
        flame=_flame_rig(header.get("flame"), arrays),
        shoulder_rigidity=arrays.get("shoulders.rigidity"),
    )


def _gaussian_names(version: int) -> tuple[str, ...]:
    """The per-Gaussian members of a head level in a file of ``version``."""
    return _GAUSSIAN_FIELDS if version >= 2 else (*_GAUSSIAN_FIELDS[:-1], _V1_FEATURES)


def _flame_rig(header: dict | None, arrays: dict[str, np.ndarray]) -> FlameRig | None:
    if header is None:
        return None
    source = FlamePose(*(arrays[f"flame.{name}"] for name in _POSE_FIELDS))
    return FlameRig(arrays["flame.shape"], arrays["flame.offsets"], source, float(header["scale"]))


def _refiner_header(refiner: torch.nn.Module) -> dict:
    if not isinstance(refiner, StyleRefiner):
        raise TypeError(f"an avatar file stores a StyleRefiner, not a {type(refiner).__name__}")
    return {"in_channels": refiner.in_channels, "image_size": refiner.image_size}


def _refiner(header: dict | None, arrays: dict[str, np.ndarray]) -> StyleRefiner | None:
    """The refiner of the header's sizes with the archive's weights (strict: every key and shape)."""
    if header is None:
        return None
    refiner = StyleRefiner(int(header["in_channels"]), int(header["image_size"]))
    prefix = "refiner."
    state = {key[len(prefix):]: torch.from_numpy(value) for key, value in arrays.items() if key.startswith(prefix)}
    try:
        refiner.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"refiner weights do not fit ({first_line(exc)})") from None
    return refiner


def _gaussian_arrays(gaussians: Gaussians) -> list[np.ndarray]:
    g = gaussians.detach().to("cpu", torch.float32)
    return [g.means.numpy(), g.quats.numpy(), g.scales.numpy(), g.opacities.numpy(), g.features.numpy()]
