"""LPIPS from a weights file: the same distances as the reference ``lpips`` package with the same
weights, and files that could run code (exported programs, pickles) refused without running it."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import safetensors.torch
import torch

from core.errors import ModelFileError
from core.evaluation.lpips_network import MIN_SIDE, LpipsNetwork
from core.evaluation.metrics import load_lpips
from lpips_stand_in import write_stand_in_lpips


class _CreatesFile:
    """Unpickling this opens (so creates) ``path``: the side effect a hostile file would have."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def _reference_lpips(trunk: str):
    """The ``lpips`` package's LPIPS: its own learned layers, a seeded random trunk (its ImageNet
    trunk would be a download)."""
    import lpips

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its trunk goes through torchvision's deprecated pretrained=
        return lpips.LPIPS(pretrained=True, net=trunk, pnet_rand=True, verbose=False).eval()


def _photo_pair(samples_dir: Path, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Two different sample portraits, [side, side, 3] in [0, 1]."""
    photos = (samples_dir / "photos" / "einstein.jpg", samples_dir / "photos" / "woman_pearls.jpg")
    return tuple(cv2.resize(cv2.imread(str(p))[..., ::-1], (side, side)).astype(np.float32) / 255 for p in photos)


@pytest.mark.parametrize("trunk", ["alex", "vgg"])
def test_distances_match_the_lpips_package_with_its_weights_saved_by_safetensors(trunk, samples_dir, tmp_path):
    reference = _reference_lpips(trunk)
    weights = tmp_path / f"lpips_{trunk}.safetensors"
    safetensors.torch.save_model(reference, str(weights))
    ours = load_lpips(weights)
    a, b = _photo_pair(samples_dir, 96)
    with torch.no_grad():
        expected = float(reference(*(torch.from_numpy(x).permute(2, 0, 1)[None] * 2 - 1 for x in (a, b))))
    assert expected > 0.01
    assert ours(a, b) == pytest.approx(expected, rel=1e-5)
    assert ours(a, a) == 0.0


def test_a_pth_state_dict_of_the_package_loads_weights_only(tmp_path, samples_dir):
    reference = _reference_lpips("alex")
    weights = tmp_path / "lpips_alex.pth"
    torch.save(reference.state_dict(), weights)
    a, b = _photo_pair(samples_dir, 64)
    assert load_lpips(weights)(a, b) == pytest.approx(load_lpips(_as_safetensors(reference, tmp_path))(a, b), rel=1e-6)


def _as_safetensors(module: torch.nn.Module, folder: Path) -> Path:
    path = folder / "weights.safetensors"
    safetensors.torch.save_model(module, str(path))
    return path


def _hostile_exported_program(path: Path, marker: Path) -> Path:
    """A valid ``torch.export`` archive whose sample inputs unpickle to ``open(marker, "w")``."""

    class Distance(torch.nn.Module):
        def forward(self, a, b):
            return (a - b).abs().mean()

    exported = path.with_suffix(".valid.pt2")
    torch.export.save(torch.export.export(Distance(), (torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8))), str(exported))
    payload = io.BytesIO()
    torch.save((_CreatesFile(marker), {}), payload)
    with zipfile.ZipFile(exported) as valid, zipfile.ZipFile(path, "w") as hostile:
        for member in valid.infolist():
            inputs = member.filename.endswith("sample_inputs/model.pt")
            hostile.writestr(member, payload.getvalue() if inputs else valid.read(member.filename))
    return path


def test_a_crafted_exported_program_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "marker"
    hostile = _hostile_exported_program(tmp_path / "lpips_alex.pt2", marker)
    # The file is really hostile: torch.export.load (what LPIPS used to load with) runs its payload.
    subprocess.run([sys.executable, "-c", f"import torch; torch.export.load({str(hostile)!r})"],
                   capture_output=True, timeout=120)  # fmt: skip
    assert marker.exists()
    marker.unlink()
    for name in ("lpips_alex.pt2", "lpips_alex.safetensors", "lpips_alex.pth"):
        renamed = hostile.rename(tmp_path / name)
        with pytest.raises(ModelFileError) as error:
            load_lpips(renamed)
        assert "\n" not in str(error.value) and name in str(error.value)
        hostile = renamed
    assert not marker.exists()


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    hostile = tmp_path / "lpips_alex.pth"
    torch.save({"lin0.model.1.weight": _CreatesFile(marker)}, hostile)
    with pytest.raises(ModelFileError, match="lpips_alex.pth: refers to .*refused"):
        load_lpips(hostile)
    assert not marker.exists()


def test_weights_of_another_network_or_shape_are_refused_with_the_reason(tmp_path):
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(other))
    with pytest.raises(ModelFileError, match="other.safetensors: not LPIPS weights"):
        load_lpips(other)
    state = LpipsNetwork("alex").state_dict()
    state["net.slice1.0.weight"] = torch.zeros(64, 3, 5, 5)
    wrong = tmp_path / "wrong.safetensors"
    safetensors.torch.save_file(state, str(wrong))
    with pytest.raises(ModelFileError, match=r"wrong.safetensors: does not fit LPIPS \(alex\)") as error:
        load_lpips(wrong)
    assert "net.slice1.0.weight: file [64, 3, 5, 5], model [64, 3, 11, 11]" in str(error.value)


def test_images_smaller_than_the_trunk_allows_are_a_clear_error(tmp_path):
    lpips = load_lpips(write_stand_in_lpips(tmp_path / "alex.safetensors"))
    small = np.zeros((MIN_SIDE["alex"] - 1,) * 2 + (3,), np.float32)
    with pytest.raises(ValueError, match="at least 32 pixels a side"):
        lpips(small, small)
    large_enough = np.zeros((MIN_SIDE["alex"],) * 2 + (3,), np.float32)
    assert lpips(large_enough, large_enough) == 0.0
