"""YAML configuration read into typed, frozen dataclasses.

``load_config("paper")`` reads ``assets/configs/paper.yaml``; a path reads that file.
Every key must be a field of the dataclass it lands in: unknown or missing keys and
values of the wrong type are :class:`~core.errors.ConfigError`, never silently ignored.
Modules take the section they need (``config.tracking.fitter``), not the whole config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from core.paths import CONFIG_DIR


@dataclass(frozen=True)
class CameraConfig:
    focal_normalized: float  # fx = fy = focal_normalized * min(W, H) / 2
    distance: float  # camera to head centre, in (scaled) FLAME units


@dataclass(frozen=True)
class FlameConfig:
    model_file: str  # relative to the models folder (core.paths.models_dir) or absolute
    landmark_embedding_file: str  # MediaPipe landmark embedding npz, same rules
    n_shape: int
    n_expression: int
    scale: float  # FLAME metres -> world units (GAGAvatar scales FLAME by 5)


@dataclass(frozen=True)
class LodConfig:
    scheme: str  # "loop" or "midpoint"
    levels: int  # K: subdivision levels above level 0
    head_gaussians: list[int]  # expected head Gaussians per level with real FLAME
    shoulder_gaussians: int  # approximate shoulder Gaussians added at every level


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    backbone_image_size: int
    feature_plane_size: int
    feature_dim: int
    global_layers: int
    global_heads: int
    splat_channels: int
    render_size: int


@dataclass(frozen=True)
class LossConfig:
    l2: float
    ssim: float
    perceptual: float
    offset: float


@dataclass(frozen=True)
class TrainingConfig:
    learning_rate: float  # Adam
    batch_size: int  # global: split over the processes of a distributed run
    epochs: int  # passes over the training frames (``omg-avatar train --steps`` overrides)
    loss: LossConfig
    scheduler: str  # learning-rate schedule: "cosine" (to 0 at the last step) or "constant"
    lod_schedule: list[float]  # per level 0..K, the fraction of the steps after which it joins
    seed: int  # model initialisation, data order and pair choice
    validation_every: int  # steps between validations (and image grids)
    validation_pairs: int  # fixed (source, driving) pairs from the validation clips
    checkpoint_every: int  # steps between resumable checkpoints
    perceptual_weights: str  # LPIPS weights (.safetensors) for the perceptual term; "" = term off
    data_workers: int  # DataLoader worker processes (0: load in the training process)


@dataclass(frozen=True)
class CropConfig:
    output_size: int  # square crop side in pixels
    face_scale: float  # crop side / face size (face size: max of landmark box sides)
    vertical_offset: float  # crop centre below the face centre, in face sizes


@dataclass(frozen=True)
class PhotoConfig:
    max_detect_side: int  # larger photos are downscaled before detection
    min_face_size: int  # faces smaller than this, in original pixels, are rejected


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff: float  # One-Euro minimum cutoff frequency (Hz)
    beta: float  # One-Euro cutoff increase per unit of speed (Hz per px/s for landmarks)
    d_cutoff: float  # One-Euro cutoff of the speed estimate (Hz)


#: Landmark groups smoothed with their own One-Euro parameters (core.tracking.smoothing):
#: the rigid head motion, then the expression of eyelids, lips, irises and every other point.
SMOOTHING_GROUPS = ("pose", "eyelids", "lips", "irises", "rest")


@dataclass(frozen=True)
class SmoothingConfig:
    """One-Euro landmark smoothing: the three scalars are every group's defaults; a group's
    entry (a mapping with any of the three keys) overrides them. YAML files from before the
    groups existed carry only the scalars and still load."""

    min_cutoff: float  # One-Euro minimum cutoff frequency (Hz)
    beta: float  # One-Euro speed coefficient
    d_cutoff: float  # One-Euro cutoff for the derivative (Hz)
    pose: OneEuroConfig | None = None
    eyelids: OneEuroConfig | None = None
    lips: OneEuroConfig | None = None
    irises: OneEuroConfig | None = None
    rest: OneEuroConfig | None = None

    def group(self, name: str) -> OneEuroConfig:
        """The parameters of group ``name`` (one of :data:`SMOOTHING_GROUPS`)."""
        own = getattr(self, name)
        return own if own is not None else OneEuroConfig(self.min_cutoff, self.beta, self.d_cutoff)


@dataclass(frozen=True)
class FitterConfig:
    n_expression: int  # expression coefficients solved per frame
    iterations: int  # Levenberg-Marquardt iterations per frame (warm-started)
    calibration_frames: int  # frames used once to estimate shape
    shape_iterations: int  # iterations of the joint solve on the calibration frames
    damping: float  # initial Levenberg-Marquardt damping
    expression_prior: float  # weight of ||expression||^2
    shape_prior: float  # weight of ||shape||^2
    pose_prior: float  # weight of ||jaw, eyes, eyelids||^2
    iris_weight: float
    contour_weight: float


@dataclass(frozen=True)
class TrackingConfig:
    refine_landmarks: bool  # MediaPipe iris refinement (478 points instead of 468)
    min_detection_confidence: float
    min_tracking_confidence: float
    max_faces: int  # faces MediaPipe looks for: photos use the largest, videos follow one person
    crop: CropConfig
    photo: PhotoConfig
    smoothing: SmoothingConfig
    fitter: FitterConfig


@dataclass(frozen=True)
class Config:
    name: str
    image_size: int
    camera: CameraConfig
    flame: FlameConfig
    lod: LodConfig
    model: ModelConfig
    training: TrainingConfig
    tracking: TrackingConfig


def available_configs() -> list[str]:
    """Names of the configs shipped in assets/configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path = "paper") -> Config:
    """Read a shipped config by name (``paper``, ``tiny``) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown config '{name_or_path}': choose one of {', '.join(available_configs())} "
                "or give a .yaml path"
            )
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return from_dict(Config, data, where=str(path))


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, strictly (see module docstring)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} in {cls.__name__}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)} in {cls.__name__}")
    return cls(**{n: _convert(hints[n], data[n], f"{where}: {n}") for n in names})


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain dicts and lists (JSON-ready); :func:`from_dict` reads it back."""
    return dataclasses.asdict(config)


def _smoothing_from_dict(data: Any, where: str) -> SmoothingConfig:
    """:class:`SmoothingConfig` from a mapping: the three scalars are required, each group
    entry is optional (absent or null: the scalars) and may give only some of the keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for SmoothingConfig, got {type(data).__name__}")
    scalars = {key: data[key] for key in ("min_cutoff", "beta", "d_cutoff") if key in data}
    defaults = from_dict(OneEuroConfig, scalars, where)
    unknown = sorted(set(data) - set(scalars) - set(SMOOTHING_GROUPS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} in SmoothingConfig")
    groups = {}
    for name in SMOOTHING_GROUPS:
        entry = data.get(name)
        if entry is not None:
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: {name}: expected a mapping, got {entry!r}")
            groups[name] = from_dict(OneEuroConfig, {**dataclasses.asdict(defaults), **entry}, f"{where}: {name}")
    return SmoothingConfig(defaults.min_cutoff, defaults.beta, defaults.d_cutoff, **groups)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if hint is SmoothingConfig:
        return _smoothing_from_dict(value, where)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value  # only Optional scalars are used; YAML already typed them
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
