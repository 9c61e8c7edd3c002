"""The avatar: multi-LOD head Gaussians on an animatable control mesh, plus shoulders.

Every reconstruction method produces this one type. The head's Gaussians sit on the
vertices of a subdivided control mesh (one Gaussian per vertex, as in the paper); their
rotations, scales, opacities and features are fixed per level of detail, and only their
positions change per frame: a :class:`DrivingState` poses the control mesh (expression
offsets through the rig's landmark binding, or FLAME re-posed when the avatar has a
:class:`~core.avatar.flame_rig.FlameRig` and the state a FLAME part, then the head's
rotation and translation, faded down the neck), and the posed mesh is subdivided to the
level asked for (the paper's "new FLAME expression and pose, then subdivision").

Heads carry C feature channels per Gaussian, the first 3 a coarse RGB: C = 3 for the
training-free method, 32 for the network (the release's), whose avatars also hold
its neural refiner (splatted features [H, W, C] -> RGB, :meth:`Avatar.rgb`).

    avatar = reconstruct(portrait)                        # core.avatar.reconstruct
    gaussians = avatar.gaussians(lod=1)                   # neutral: the photo's expression
    gaussians = avatar.gaussians(1, animator.drive(frame))  # driven (core.avatar.animation)
    image = avatar.rgb(render(gaussians, avatar.camera()).features)  # the source view

Head space is the avatar's world space: FLAME's axes (+x the subject's left, +y up, +z
out of the face), FLAME units x5, origin between the eyes and the nose base (network
avatars: FLAME's own origin, the head pose being the source camera's extrinsic).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from core.avatar.flame_rig import AttachedFlame, FlamePose, FlameRig
from core.avatar.levels import LevelChain, subdivide
from core.errors import OmgError
from core.geometry.camera import Camera
from core.geometry.subdivision import Scheme
from core.render import Gaussians


class AvatarError(OmgError):
    """An avatar cannot do what was asked (a level of detail it does not have), or an
    avatar file is unreadable (see :mod:`core.avatar.avatar_file`)."""


@dataclass(frozen=True)
class DrivingState:
    """One frame of driving, in the avatar's head space.

    Attributes:
        landmark_offsets: [478, 3] expression displacement of each of the avatar's landmarks.
        rotation: [3, 3] head rotation relative to the neutral pose, about ``HeadRig.pivot``.
        translation: [3] head translation applied after the rotation.
        flame: the frame's FLAME expression, jaw, eyes and eyelids, or None (landmark-only
            driving: an avatar with a FLAME rig keeps its source expression).
        body_translation: [3] translation of the shoulders and of the neck's base (the
            driver leaning in or drifting sideways); the neck blends it into the head's
            motion, so head and body stay joined.
    """

    landmark_offsets: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    flame: FlamePose | None = None
    body_translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def neutral(cls, num_landmarks: int) -> DrivingState:
        """No expression change, no head motion."""
        return cls(np.zeros((num_landmarks, 3)), np.eye(3), np.zeros(3))


@dataclass(frozen=True)
class HeadRig:
    """The head's control mesh and how it moves.

    Attributes:
        vertices: [V, 3] float32 neutral control-mesh positions.
        faces: [F, 3] int64 control-mesh triangles.
        binding: [V, L] CSR; ``binding @ landmark_offsets`` is the vertices' expression offset.
        rigidity: [V] float32 in [0, 1]: the share of the head's rotation and translation a
            vertex follows (1 on the head, fading to 0 down the neck).
        landmarks: [L, 3] float32 the avatar's neutral landmarks (the source photo's, lifted).
        pivot: [3] the head's rotation centre (top of the neck).
        centre: [3] the head's centre (what orbit cameras look at).
    """

    vertices: np.ndarray
    faces: np.ndarray
    binding: sp.csr_matrix
    rigidity: np.ndarray
    landmarks: np.ndarray
    pivot: np.ndarray
    centre: np.ndarray

    def __post_init__(self) -> None:
        for name in ("vertices", "rigidity", "landmarks", "pivot", "centre"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        num_vertices, num_landmarks = len(self.vertices), len(self.landmarks)
        if self.binding.shape != (num_vertices, num_landmarks) or self.rigidity.shape != (num_vertices,):
            raise ValueError(
                f"rig of {num_vertices} vertices and {num_landmarks} landmarks has a binding of shape "
                f"{list(self.binding.shape)} and {len(self.rigidity)} rigidities"
            )

    def posed(self, state: DrivingState, expressed: np.ndarray | None = None) -> np.ndarray:
        """[V, 3] float32 control-mesh positions for ``state``.

        ``expressed``: [V, 3] the vertices with the frame's expression already applied (a
        FLAME rig's); default: the neutral vertices moved through the landmark binding.
        """
        if expressed is None:
            expressed = self.vertices + (self.binding @ state.landmark_offsets).astype(np.float32)
        return self.follow(expressed, self.rigidity, state)

    def follow(self, points: np.ndarray, rigidity: np.ndarray, state: DrivingState) -> np.ndarray:
        """[N, 3] float32 ``points`` [N, 3] moved by ``state``: each by the body's translation,
        blended towards the head's rigid motion (about ``pivot``) by its ``rigidity`` [N]."""
        points = np.asarray(points, dtype=np.float32)
        rotation = np.asarray(state.rotation, dtype=np.float32)
        rigid = (points - self.pivot) @ rotation.T + self.pivot + np.asarray(state.translation, np.float32)
        with_body = points + np.asarray(state.body_translation, np.float32)
        return with_body + rigidity[:, None] * (rigid - with_body)


@dataclass(frozen=True)
class HeadLod:
    """The head's Gaussians at one level of detail, except their positions.

    Attributes (float32 tensors, N Gaussians = the level's vertices):
        quats: [N, 4] rotations (w, x, y, z).
        scales: [N, 3] standard deviations.
        opacities: [N] in [0, 1].
        features: [N, C] splatted features, C >= 3, the first 3 RGB in [0, 1].
    """

    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    features: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.quats)
        expected = {"quats": (n, 4), "scales": (n, 3), "opacities": (n,), "features": (n, -1)}
        for name, shape in expected.items():
            value = torch.as_tensor(getattr(self, name), dtype=torch.float32)
            if value.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, value.shape)):
                raise ValueError(f"HeadLod.{name} has shape {list(value.shape)}, expected {list(shape)}")
            object.__setattr__(self, name, value)
        if self.features.shape[1] < 3:
            raise ValueError(f"HeadLod.features has {self.features.shape[1]} channels, at least 3 (RGB) expected")

    def __len__(self) -> int:
        return self.quats.shape[0]

    @property
    def num_channels(self) -> int:
        """C, the features per Gaussian."""
        return self.features.shape[1]


@dataclass(frozen=True, eq=False)
class Avatar:
    """A reconstructed avatar (see the module docstring).

    Attributes:
        rig: the head's control mesh and its animation data.
        lods: the head's Gaussians per level of detail, coarsest first.
        shoulders: shoulder Gaussians (the heads' C feature channels), moved by a state's
            ``body_translation`` and, per ``shoulder_rigidity``, by the head's motion.
        source_camera: the view of the source photo (head space is its world).
        method: the reconstruction method that made it.
        provenance: where it came from (photo name and hash, date, versions, config).
        first_level: LOD ``k`` is the control mesh subdivided ``first_level + k`` times.
        scheme: the subdivision scheme (``"loop"`` or ``"midpoint"``).
        levels: the control mesh's subdivision chain; built from ``rig.faces`` when not given.
        refiner: the neural refiner, [1, C, S, S] features -> [1, 3, S, S] RGB (the
            network's :class:`~core.model.style_refiner.StyleRefiner`; images of another
            size are resized to its ``image_size`` and back), or None.
        flame: the FLAME rig (network avatars), or None: expressions come from the
            landmark binding.
        shoulder_rigidity: [M] float32 in [0, 1], the share of the head's rotation and
            translation each shoulder Gaussian follows, as ``rig.rigidity`` for the mesh
            (hair falling onto the shoulders goes with the head near the jaw and with the
            body lower down); None: 0 for all, the shoulders move only with the body.
    """

    rig: HeadRig
    lods: tuple[HeadLod, ...]
    shoulders: Gaussians
    source_camera: Camera
    method: str
    provenance: dict
    first_level: int
    scheme: Scheme
    levels: LevelChain | None = field(default=None, repr=False)
    refiner: torch.nn.Module | None = field(default=None, repr=False)
    flame: FlameRig | None = field(default=None, repr=False)
    shoulder_rigidity: np.ndarray | None = field(default=None, repr=False)
    _neutral_means: dict[int, torch.Tensor] = field(init=False, repr=False, default_factory=dict)
    _fixed_attributes: dict[int, tuple[torch.Tensor, ...]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        count = self.first_level + len(self.lods) - 1
        levels = self.levels or subdivide(self.rig.faces, len(self.rig.vertices), count, self.scheme)
        if len(levels.steps) < count:
            raise ValueError(f"{len(levels.steps)} subdivision steps given, {count} needed")
        for lod, head in enumerate(self.lods):
            expected = levels.num_vertices[self.first_level + lod]
            if len(head) != expected:
                raise ValueError(f"LOD {lod} has {len(head)} Gaussians, its level has {expected} vertices")
        channels = {head.num_channels for head in self.lods} | {self.shoulders.num_channels}
        if len(channels) != 1:
            raise ValueError(f"heads and shoulders disagree on the feature channels: {sorted(channels)}")
        if self.flame is not None and len(self.flame.offsets) != len(self.rig.vertices):
            rig, mesh = len(self.flame.offsets), len(self.rig.vertices)
            raise ValueError(f"FLAME rig of {rig} vertices, control mesh of {mesh}")
        if self.refiner is not None:
            self.refiner.eval()
        object.__setattr__(self, "levels", levels)
        rigidity = np.zeros(len(self.shoulders), np.float32) if self.shoulder_rigidity is None else self.shoulder_rigidity
        rigidity = np.ascontiguousarray(rigidity, dtype=np.float32)
        if rigidity.shape != (len(self.shoulders),):
            raise ValueError(f"{len(self.shoulders)} shoulder Gaussians, {list(rigidity.shape)} shoulder rigidities")
        object.__setattr__(self, "shoulder_rigidity", rigidity)

    # ------------------------------------------------------------------ sizes
    @property
    def num_lods(self) -> int:
        return len(self.lods)

    @property
    def num_channels(self) -> int:
        """C, the feature channels per Gaussian (3: RGB only)."""
        return self.shoulders.num_channels

    def num_gaussians(self, lod: int) -> int:
        """Head plus shoulder Gaussians at ``lod``."""
        return len(self._lod(lod)) + len(self.shoulders)

    # ------------------------------------------------------------------ views
    def camera(self, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> Camera:
        """The source view, orbited about the head's centre.

        Positive yaw moves the camera towards the subject's left (about head +y), positive
        pitch moves it up (about the source camera's horizontal axis), as in
        :meth:`Camera.orbit`. ``camera()`` is the source photo's own view.
        """
        source = self.source_camera
        turn = Rotation.from_rotvec(math.radians(yaw_deg) * np.array([0.0, 1.0, 0.0])) * Rotation.from_rotvec(
            -math.radians(pitch_deg) * source.R[0]
        )
        centre = self.rig.centre.astype(np.float64)
        eye = centre + turn.apply(source.center - centre)
        rotation = source.R @ turn.as_matrix().T
        return Camera(source.K, rotation, -rotation @ eye, source.width, source.height)

    # ------------------------------------------------------------------ Gaussians
    def gaussians(self, lod: int, state: DrivingState | None = None) -> Gaussians:
        """Head and shoulder Gaussians at ``lod``, neutral or posed by ``state``.

        Only ``means`` is new per call; the other tensors are shared between calls (do not
        modify them in place).
        """
        if lod not in self._fixed_attributes:
            head = self._lod(lod)
            self._fixed_attributes[lod] = tuple(
                torch.from_numpy(np.concatenate([getattr(head, name).numpy(), getattr(self.shoulders, other).numpy()]))
                for name, other in (("quats", "quats"), ("scales", "scales"), ("opacities", "opacities"),
                                    ("features", "features"))
            )  # fmt: skip
        # numpy, not torch.cat: torch's thread pool stalls for milliseconds on a busy machine.
        shoulders = self.shoulders.means.numpy()
        if state is not None:
            shoulders = self.rig.follow(shoulders, self.shoulder_rigidity, state)
        means = np.concatenate([self.head_means(lod, state).numpy(), shoulders])
        return Gaussians(torch.from_numpy(means), *self._fixed_attributes[lod])

    def head_means(self, lod: int, state: DrivingState | None = None) -> torch.Tensor:
        """[N, 3] float32 positions of the head's Gaussians at ``lod`` (neutral when ``state`` is None)."""
        self._lod(lod)
        if state is None:
            if lod not in self._neutral_means:
                self._neutral_means[lod] = self._refined(self.rig.vertices, lod)
            return self._neutral_means[lod]
        expressed = None if state.flame is None or self.flame is None else self.flame.posed(state.flame)
        return self._refined(self.rig.posed(state, expressed), lod)

    # ------------------------------------------------------------------ images
    def rgb(self, features: torch.Tensor, use_refiner: bool = True) -> torch.Tensor:
        """[H, W, 3] RGB of a splatted feature image [H, W, C]: the refiner's when the avatar
        has one and ``use_refiner``, else the coarse RGB (the first 3 channels)."""
        if self.refiner is None or not use_refiner:
            return features[..., :3]
        image = features.permute(2, 0, 1)[None]
        weight = next(self.refiner.parameters(), None)
        if weight is not None and weight.device != image.device:
            self.refiner.to(image.device)  # once: gsplat's features stay on the GPU
        size = getattr(self.refiner, "image_size", None)  # a refiner of one image size
        resized = size is not None and tuple(image.shape[2:]) != (size, size)
        with torch.no_grad():
            if resized:
                image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
            refined = self.refiner(image)
            if resized:
                refined = F.interpolate(refined, size=tuple(features.shape[:2]), mode="bilinear", align_corners=False)
        return refined[0].permute(1, 2, 0)

    def feature_background(self, background: float | tuple[float, ...]) -> float | tuple[float, ...]:
        """A render background for the C channels: one value for all, or an RGB triple
        followed by zeros (the coarse RGB gets the colour)."""
        if np.ndim(background) == 0 or self.num_channels == len(background):
            return background
        return (*background, *[0.0] * (self.num_channels - len(background)))

    # ------------------------------------------------------------------ FLAME
    def with_flame(self, model: AttachedFlame) -> Avatar:
        """This avatar with the FLAME model its rig needs to pose expressions (see
        :meth:`FlameRig.with_model`); the other data is shared."""
        if self.flame is None:
            raise AvatarError(f"this {self.method} avatar has no FLAME rig")
        return dataclasses.replace(self, levels=self.levels, flame=self.flame.with_model(model))

    def _refined(self, control: np.ndarray, lod: int) -> torch.Tensor:
        refined = self.levels.refine(np.asarray(control, dtype=np.float32), self.first_level + lod)
        return torch.from_numpy(np.ascontiguousarray(refined))

    def _lod(self, lod: int) -> HeadLod:
        if not 0 <= lod < len(self.lods):
            raise AvatarError(f"LOD {lod} does not exist: this avatar has LODs 0 to {len(self.lods) - 1}")
        return self.lods[lod]
