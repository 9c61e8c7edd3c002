"""Image and motion metrics of the self-reenactment protocol (the paper's Tables 1-2).

Images are [H, W, 3] float arrays in [0, 1]; landmarks are [N, 2 or 3] pixel coordinates
(only x and y are compared); rotations are [3, 3] head-to-camera rotations as
:mod:`core.tracking.head_pose` gives them.

* PSNR in dB with a data range of 1, capped at :data:`PSNR_CAP_DB` so that identical
  images give a finite number that JSON can hold and means can average.
* SSIM: Wang et al.'s definition as scikit-image computes it with their settings
  (11x11 Gaussian window, sigma 1.5, population covariance), averaged over channels.
* LPIPS: only from a model file the user provides (:func:`load_lpips`); never guessed.
* AKD (average keypoint distance): mean Euclidean distance between corresponding
  landmarks, in pixels.
* APD (average pose distance): mean absolute difference of yaw, pitch and roll, degrees.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from core.errors import ModelFileError
from core.paths import LPIPS_FILE, resolve_model_file
from core.tracking.head_pose import HeadPose

#: PSNR of identical images (an MSE of 1e-10 at a data range of 1).
PSNR_CAP_DB = 100.0


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
    """LPIPS distance from an exported PyTorch program (``torch.export``, a ``.pt2`` file).

    The program is called as ``program(a, b)`` with two [1, 3, H, W] float32 images in
    [-1, 1] and returns the distance (any shape with one element): how the reference
    ``lpips.LPIPS(net="alex")`` behaves, exported with ``torch.export.export(model, (a, b))``
    for the evaluation's 512x512 images (``a``, ``b`` of that shape) and saved with
    ``torch.export.save``.
    """

    def __init__(self, program: torch.nn.Module, path: Path):
        self.program = program
        self.path = path

    def __call__(self, image: np.ndarray, reference: np.ndarray) -> float:
        """LPIPS of ``image`` against ``reference`` ([H, W, 3] in [0, 1]); 0 when equal."""
        with torch.no_grad():
            distance = self.program(_to_lpips_input(image), _to_lpips_input(reference))
        return float(torch.as_tensor(distance).reshape(-1)[0])


def load_lpips(path: str | Path | None = None) -> Lpips | None:
    """The LPIPS metric from ``path``, or from :data:`core.paths.LPIPS_FILE` in the models folder.

    Returns None when no path is given and the default file is absent (LPIPS is then
    reported as unavailable). A given path that is missing, or any file that is not an
    exported program, is a :class:`~core.errors.ModelFileError`.
    """
    if path is None:
        path = resolve_model_file(LPIPS_FILE)
        if not path.is_file():
            return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"LPIPS model not found: {path}")
    try:
        with _torch_export_logging_silenced():
            program = torch.export.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - whatever a foreign file makes the loader raise
        raise ModelFileError(f"{path.name} is not an exported LPIPS program ({type(exc).__name__})") from None
    return Lpips(program, path)


@contextlib.contextmanager
def _torch_export_logging_silenced() -> Iterator[None]:
    """torch.export logs a traceback for files it cannot read before it raises; we report one line."""
    logger = logging.getLogger("torch.export")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def _float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _to_lpips_input(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] in [0, 1] -> [1, 3, H, W] float32 in [-1, 1]."""
    tensor = torch.as_tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return tensor * 2.0 - 1.0


def _yaw_pitch_roll(rotation: np.ndarray) -> tuple[float, float, float]:
    return HeadPose(np.asarray(rotation, np.float64), np.zeros(3)).yaw_pitch_roll_deg()
