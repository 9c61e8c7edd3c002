"""3DGS PLY export: the standard layout viewers expect, and an exact round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData

from core.errors import OmgError
from core.render import Gaussians, PlyFileError, load_ply, save_ply
from core.render.ply import SH_C0
from core.render.scenes import head_scene


def _standard_names(rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


@pytest.mark.parametrize("channels", [3, 32])
def test_round_trip_through_plyfile(tmp_path, channels):
    g = head_scene(300, 50, channels=channels, seed=4)
    path = save_ply(g, tmp_path / "avatar.ply")
    assert [p.name for p in PlyData.read(str(path))["vertex"].properties] == _standard_names(channels - 3)
    back = load_ply(path)
    assert len(back) == len(g) and back.num_channels == channels
    for name in ("means", "quats", "scales", "opacities", "features"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), rtol=2e-6, atol=2e-6)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_stored_values_follow_the_3dgs_conventions(tmp_path):
    g = Gaussians(
        means=torch.tensor([[1.0, 2.0, 3.0]]),
        quats=torch.tensor([[0.5, 0.5, -0.5, 0.5]]),
        scales=torch.tensor([[0.01, 0.02, 0.0]]),
        opacities=torch.tensor([0.8]),
        features=torch.tensor([[0.5, 1.0, 0.0, 7.0]]),
    )
    vertex = PlyData.read(str(save_ply(g, tmp_path / "one.ply")))["vertex"]
    assert vertex["opacity"][0] == pytest.approx(np.log(0.8 / 0.2), rel=1e-6)  # logit
    assert vertex["scale_0"][0] == pytest.approx(np.log(0.01), rel=1e-6)  # log
    assert np.isfinite(vertex["scale_2"][0])  # a zero scale is clamped, not -inf
    f_dc = [vertex[f"f_dc_{i}"][0] for i in range(3)]
    assert f_dc == pytest.approx([0.0, 0.5 / SH_C0, -0.5 / SH_C0], abs=1e-6)
    assert vertex["f_rest_0"][0] == pytest.approx(7.0)
    assert [vertex[f"rot_{i}"][0] for i in range(4)] == [0.5, 0.5, -0.5, 0.5]  # w first
    assert [vertex[name][0] for name in ("nx", "ny", "nz")] == [0.0, 0.0, 0.0]


def test_colour_only_export_and_too_few_channels(tmp_path):
    g = head_scene(100, 10, channels=32)
    path = save_ply(g, tmp_path / "rgb.ply", extra_channels=False)
    assert [p.name for p in PlyData.read(str(path))["vertex"].properties] == _standard_names(0)
    torch.testing.assert_close(load_ply(path).features, g.features[:, :3], rtol=2e-6, atol=2e-6)
    with pytest.raises(ValueError, match="at least 3"):
        save_ply(Gaussians.empty(2), tmp_path / "grey.ply")


def _ply_text(properties: list[str], rows: list[list[float]], count: int | None = None) -> bytes:
    header = ["ply", "format ascii 1.0", f"element vertex {len(rows) if count is None else count}"]
    header += [f"property float {name}" for name in properties] + ["end_header"]
    return ("\n".join(header + [" ".join(map(str, row)) for row in rows]) + "\n").encode()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable PLY file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "not a readable PLY file"),
        (_ply_text(["x", "y", "z"], [[0, 0, 0]]), "its vertices lack f_dc_0, f_dc_1"),
        (_ply_text(_standard_names(0), [[0] * 17], count=10**12), "not a readable PLY file"),
        (_ply_text(_standard_names(0), [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 900, 0, 0, 1, 0, 0, 0]]), "scales hold values"),
        (_ply_text(_standard_names(0), [[float("nan")] + [0] * 16]), "means hold values that are not finite"),
        (_ply_text(_standard_names(2)[:9] + ["f_rest_1"] + _standard_names(0)[9:], [[0] * 18]), "not numbered"),
    ],
    ids=["empty", "png", "no-colour", "count-bomb", "huge-scale", "nan", "rest-gap"],
)
def test_bad_ply_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(PlyFileError, match=message) as error:
        load_ply(path)
    assert "\n" not in str(error.value) and isinstance(error.value, OmgError)
    with pytest.raises(PlyFileError, match="PLY file not found"):
        load_ply(tmp_path / "absent.ply")
