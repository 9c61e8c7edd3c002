"""Standard 3D Gaussian Splatting PLY files (the format of the 3DGS paper's code and viewers).

One ``vertex`` element of float32 properties, in the usual order: ``x y z``, ``nx ny nz``
(zeros), ``f_dc_0..2``, ``f_rest_0..K-1``, ``opacity`` (logit), ``scale_0..2`` (log),
``rot_0..3`` (quaternion w, x, y, z). The first three feature channels are the colour:
``f_dc = (rgb - 0.5) / SH_C0``, so viewers that evaluate degree-0 spherical harmonics show
``rgb``. Further channels are stored unchanged as ``f_rest_*``. Viewers infer an SH degree
from the ``f_rest`` count (9, 24 or 45); other counts, such as the 29 extra channels of a
32-channel avatar, are ignored by them or, with ``extra_channels=False``, not written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from core.errors import OmgError, first_line
from core.fileio import AtomicFile
from core.render.gaussians import Gaussians

#: Zeroth-order spherical-harmonic basis constant, 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814

#: Opacities are clamped to [EPS, 1 - EPS] before the logit, scales to >= EPS before the log.
EPS = 1e-7

_COLOUR_CHANNELS = 3
_REQUIRED_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                        "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip


class PlyFileError(OmgError):
    """A PLY file is missing, unreadable, or not a 3D Gaussian Splatting point cloud."""


def save_ply(gaussians: Gaussians, path: str | Path, extra_channels: bool = True) -> Path:
    """Write ``gaussians`` (C >= 3 channels) to ``path`` atomically (:class:`~core.fileio.AtomicFile`),
    so a failed write leaves nothing half-written. Returns the path."""
    if gaussians.num_channels < _COLOUR_CHANNELS:
        raise ValueError(f"PLY export needs at least 3 feature channels (RGB), got {gaussians.num_channels}")
    g = gaussians.detach().to("cpu", torch.float64)
    features = g.features.numpy()
    rest = features[:, _COLOUR_CHANNELS:] if extra_channels else features[:, :0]
    opacity = np.clip(g.opacities.numpy(), EPS, 1 - EPS)
    columns = {
        **_named("", ("x", "y", "z"), g.means.numpy()),
        **_named("", ("nx", "ny", "nz"), np.zeros((len(g), 3))),
        **_named("f_dc_", range(3), (features[:, :_COLOUR_CHANNELS] - 0.5) / SH_C0),
        **_named("f_rest_", range(rest.shape[1]), rest),
        "opacity": np.log(opacity / (1 - opacity)),
        **_named("scale_", range(3), np.log(np.maximum(g.scales.numpy(), EPS))),
        **_named("rot_", range(4), g.quats.numpy()),
    }
    vertex = np.empty(len(g), dtype=[(name, "<f4") for name in columns])
    for name, values in columns.items():
        vertex[name] = values
    path = Path(path)
    with AtomicFile(path) as temporary, temporary.open("wb") as stream:
        PlyData([PlyElement.describe(vertex, "vertex")]).write(stream)
    return path


def load_ply(path: str | Path, dtype: torch.dtype = torch.float32) -> Gaussians:
    """Read a 3DGS PLY written by :func:`save_ply` or another 3DGS tool.

    Features are ``rgb`` from ``f_dc`` followed by every ``f_rest_*`` in index order.
    plyfile maps binary data and checks element counts against the file's size, so a
    header cannot make it allocate more than the file holds.

    Raises:
        PlyFileError: missing, unreadable, not a 3DGS vertex element, or values that are
            not finite; always one line.
    """
    path = Path(path)
    if not path.is_file():
        raise PlyFileError(f"PLY file not found: {path}")
    try:
        vertex = PlyData.read(str(path))["vertex"]
    except KeyError:
        raise PlyFileError(f"{path.name} has no vertex element") from None
    except Exception as exc:  # untrusted bytes can fail the parser in any way; all mean "unreadable"
        raise PlyFileError(f"{path.name} is not a readable PLY file ({first_line(exc)})") from None
    names = {prop.name for prop in vertex.properties}
    missing = [name for name in _REQUIRED_PROPERTIES if name not in names]
    if missing:
        raise PlyFileError(f"{path.name} is not a 3DGS PLY file: its vertices lack {', '.join(missing)}")
    rest_count = sum(1 for name in names if name.startswith("f_rest_"))
    if any(f"f_rest_{i}" not in names for i in range(rest_count)):
        raise PlyFileError(f"{path.name}: its f_rest_* properties are not numbered 0 to {rest_count - 1}")
    column = lambda *keys: np.stack([np.asarray(vertex[k], np.float64) for k in keys], axis=1)  # noqa: E731
    with np.errstate(all="ignore"):  # whatever the file holds becomes numbers; non-finite ones are refused below
        rgb = column("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5
        rest = column(*(f"f_rest_{i}" for i in range(rest_count))) if rest_count else np.zeros((len(rgb), 0))
        opacity_logit = np.asarray(vertex["opacity"], np.float64)
        arrays = {
            "means": column("x", "y", "z"),
            "quats": column("rot_0", "rot_1", "rot_2", "rot_3"),
            "scales": np.exp(column("scale_0", "scale_1", "scale_2")),
            "opacities": 1.0 / (1.0 + np.exp(-opacity_logit)),
            "features": np.concatenate([rgb, rest], axis=1),
        }
    for name, values in arrays.items():
        if not np.isfinite(values).all():
            raise PlyFileError(f"{path.name}: the Gaussians' {name} hold values that are not finite numbers")
    return Gaussians(**{name: torch.as_tensor(values, dtype=dtype) for name, values in arrays.items()})


def _named(prefix: str, suffixes, values: np.ndarray) -> dict[str, np.ndarray]:
    """``{prefix + suffix: column}`` for the columns of ``values`` [N, K]."""
    return {f"{prefix}{suffix}": values[:, i] for i, suffix in enumerate(suffixes)}
