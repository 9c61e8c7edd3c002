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

from core.fileio import AtomicFile
from core.render.gaussians import Gaussians

#: Zeroth-order spherical-harmonic basis constant, 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814

#: Opacities are clamped to [EPS, 1 - EPS] before the logit, scales to >= EPS before the log.
EPS = 1e-7

_COLOUR_CHANNELS = 3


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
    """
    vertex = PlyData.read(str(path))["vertex"]
    names = {prop.name for prop in vertex.properties}
    rest_count = sum(1 for name in names if name.startswith("f_rest_"))
    column = lambda *keys: np.stack([np.asarray(vertex[k], np.float64) for k in keys], axis=1)  # noqa: E731
    rgb = column("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5
    rest = column(*(f"f_rest_{i}" for i in range(rest_count))) if rest_count else np.zeros((len(rgb), 0))
    opacity_logit = np.asarray(vertex["opacity"], np.float64)
    tensor = lambda values: torch.as_tensor(values, dtype=dtype)  # noqa: E731
    return Gaussians(
        means=tensor(column("x", "y", "z")),
        quats=tensor(column("rot_0", "rot_1", "rot_2", "rot_3")),
        scales=tensor(np.exp(column("scale_0", "scale_1", "scale_2"))),
        opacities=tensor(1.0 / (1.0 + np.exp(-opacity_logit))),
        features=tensor(np.concatenate([rgb, rest], axis=1)),
    )


def _named(prefix: str, suffixes, values: np.ndarray) -> dict[str, np.ndarray]:
    """``{prefix + suffix: column}`` for the columns of ``values`` [N, K]."""
    return {f"{prefix}{suffix}": values[:, i] for i, suffix in enumerate(suffixes)}
