"""Image and motion metrics of the self-reenactment protocol (the paper's Tables 1-2).

Images are [H, W, 3] float arrays in [0, 1]; landmarks are [N, 2 or 3] pixel coordinates
(only x and y are compared); rotations are [3, 3] head-to-camera rotations as
:mod:`core.tracking.head_pose` gives them.

* PSNR in dB with a data range of 1, capped at :data:`PSNR_CAP_DB` so that identical
  images give a finite number that JSON can hold and means can average.
* SSIM: Wang et al.'s definition as scikit-image computes it with their settings
  (11x11 Gaussian window, sigma 1.5, population covariance), averaged over channels.
* LPIPS: only with weights from a file the user provides (:func:`load_lpips`); never guessed.
* AKD (average keypoint distance): mean Euclidean distance between corresponding
  landmarks, in pixels.
* APD (average pose distance): mean absolute difference of yaw, pitch and roll, degrees.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from core.errors import ModelFileError
from core.evaluation.lpips_network import LpipsNetwork, canonical_keys, trunk_of
from core.model.state_files import mismatch_report, read_state_dict
from core.paths import LPIPS_FILE, resolve_model_file
from core.tracking.head_pose import HeadPose

#: PSNR of identical images (an MSE of 1e-10 at a data range of 1).
PSNR_CAP_DB = 100.0
#: What an LPIPS weights file is, for messages about a missing or wrong one.
LPIPS_HOW_TO = "lpips.LPIPS(net='alex' or 'vgg') saved by safetensors.torch.save_model, see the README's model files"


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``reference`` ([H, W, 3] in [0, 1]), dB."""
    mse = float(np.mean((_float(image) - _float(reference)) ** 2))
    return PSNR_CAP_DB if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0) else -10.0 * math.log10(mse)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity of ``image`` and ``reference`` ([H, W, 3] in [0, 1]); 1 when equal."""
    return float(
        structural_similarity(
            _float(image),
            _float(reference),
            channel_axis=2,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def keypoint_distance(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance in pixels between corresponding points of [N, 2+] ``landmarks`` and ``reference``."""
    if landmarks.shape[0] != reference.shape[0]:
        raise ValueError(f"{landmarks.shape[0]} landmarks against {reference.shape[0]} reference landmarks")
    offsets = np.asarray(landmarks, np.float64)[:, :2] - np.asarray(reference, np.float64)[:, :2]
    return float(np.linalg.norm(offsets, axis=1).mean())


def pose_distance_deg(rotation: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of yaw, pitch and roll between two [3, 3] head rotations, degrees."""
    angles = np.array(_yaw_pitch_roll(rotation)) - np.array(_yaw_pitch_roll(reference))
    wrapped = (angles + 180.0) % 360.0 - 180.0
    return float(np.abs(wrapped).mean())


class Lpips:
    """The LPIPS distance of :class:`~core.evaluation.lpips_network.LpipsNetwork` with a user's weights."""

    def __init__(self, network: LpipsNetwork, path: Path):
        self.network = network
        self.path = path

    def __call__(self, image: np.ndarray, reference: np.ndarray) -> float:
        """LPIPS of ``image`` against ``reference`` ([H, W, 3] in [0, 1]); 0 when equal."""
        with torch.no_grad():
            return float(self.network(_to_lpips_input(image), _to_lpips_input(reference))[0])


def load_lpips(path: str | Path | None = None) -> Lpips | None:
    """The LPIPS metric with the weights in ``path``, or in :data:`core.paths.LPIPS_FILE` of the models folder.

    The file holds the weights of ``lpips.LPIPS(net="alex")`` (or ``net="vgg"``), saved by
    ``safetensors.torch.save_model``, or its state dict as a ``.pth``, read weights-only; nothing in it can run. Returns None when no path is given
    and the default file is absent (LPIPS is then reported as unavailable). A given path that
    is missing, or any file that is not such a state dict, is a :class:`~core.errors.ModelFileError`.
    """
    if path is None:
        path = resolve_model_file(LPIPS_FILE)
        if not path.is_file():
            return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"LPIPS weights not found: {path}")
    if path.suffix == ".pt2":
        raise ModelFileError(
            f"{path.name} is an exported program, which can run code when loaded: LPIPS now reads weights "
            f"only ({LPIPS_HOW_TO})"
        )
    state = canonical_keys(read_state_dict(path))
    trunk = trunk_of(state)
    if trunk is None:
        raise ModelFileError(f"{path.name}: not LPIPS weights (no lin0..lin4 layers of an AlexNet or VGG trunk)")
    with torch.device("meta"):  # every tensor comes from the file: skip the random initialisation
        network = LpipsNetwork(trunk)
    problems = mismatch_report(network.state_dict(), state)
    if problems:
        raise ModelFileError("\n".join([f"{path.name}: does not fit LPIPS ({trunk})", *problems]))
    network.load_state_dict(state, assign=True)
    return Lpips(network.eval().requires_grad_(False), path)


def _float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _to_lpips_input(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] in [0, 1] -> [1, 3, H, W] float32 in [-1, 1]."""
    tensor = torch.as_tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return tensor * 2.0 - 1.0


def _yaw_pitch_roll(rotation: np.ndarray) -> tuple[float, float, float]:
    return HeadPose(np.asarray(rotation, np.float64), np.zeros(3)).yaw_pitch_roll_deg()
