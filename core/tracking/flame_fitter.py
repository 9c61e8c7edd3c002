"""FLAME fitting to MediaPipe landmarks, per frame, by Levenberg-Marquardt.

Per frame the fitter solves expression (``FitterConfig.n_expression`` components), jaw,
eyes, eyelids (when the model has them) and the rigid head pose, warm-started from the
previous frame; the shape is solved once, jointly over calibration frames
(:meth:`FlameFitter.calibrate`).

World space is FLAME's, scaled: a FLAME vertex ``x`` (metres, zero global rotation and
neck) lands at ``scale * R(rotation) @ x + translation``; the camera is fixed. The same
head pose as a camera extrinsic (GAGAvatar's convention) is
:meth:`core.flame.FlameParams.camera_extrinsic`.

Residuals, in pixels of the camera's image (costs are ``weight * residual^2``):

* landmarks: the embedding's FLAME surface points against MediaPipe's matching points;
* irises: the front of each eyeball (the most forward vertex skinned mainly to an eye
  joint) against MediaPipe's iris centres 468 and 473, weight ``iris_weight``;
* contour: MediaPipe's lower face-oval points against the model's silhouette, weight
  ``contour_weight``. Each iteration finds the silhouette (edges between faces turned
  towards and away from the camera) among the lower-face vertices of the current mesh,
  pairs each oval point with the nearest silhouette vertex and measures the distance
  along the silhouette's normal, so points slide along the contour. Occlusion is ignored.
* priors ``expression_prior * |expression|^2``, ``shape_prior * |shape|^2`` and
  ``pose_prior * |jaw, eyes, eyelids|^2``. Eyes turn about axes in the face plane only:
  their roll about the gaze does not move the iris centre.

Speed: LBS runs only at the vertices these residuals use, the Jacobian is analytic
(:meth:`FlameFitter._posed_with_jacobian`), the normal equations are small and dense (solved
by :func:`core.geometry.least_squares.levenberg_marquardt`), and
the solve runs on one thread (its tensors are small; a second thread only adds waiting,
10x slower when another process keeps the second core busy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.config import FitterConfig
from core.flame.files import MEDIAPIPE_POINTS
from core.flame.layer import FLAME_JOINTS, FlameLayer
from core.flame.lbs import (
    batch_rodrigues,
    batch_rodrigues_derivative,
    blend_shapes,
    pose_features,
    pose_rest_points,
)
from core.flame.params import FlameParams
from core.geometry.camera import Camera
from core.geometry.least_squares import NormalEquations, levenberg_marquardt
from core.geometry.mesh import face_normals, interior_edges, vertex_normals

#: MediaPipe iris centres: the subject's right eye, then the left (478-point mesh).
IRIS_CENTRES = (468, 473)
#: MediaPipe face-oval points from the subject's left ear, under the chin, to the right ear.
LOWER_FACE_OVAL = (454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
                   148, 176, 149, 150, 136, 172, 58, 132, 93, 234)  # fmt: skip
#: An oval point farther than this fraction of the face size from every silhouette vertex
#: is left out of that iteration (the silhouette there belongs to something else).
CONTOUR_GATE = 0.1
#: Lower-face vertices whose rest normal points further back than this (z component) never
#: form the face's contour; leaving them out drops the back of the head and neck.
CONTOUR_MIN_NORMAL_Z = -0.5
#: Pose parameters after the blendshape coefficients: jaw 3, eyes 4, rotation 3, translation 3.
#: Each eye turns about axes in the face plane (x, y); its roll about the gaze cannot be
#: seen in an iris centre, so it stays 0.
POSE_SIZE = 13
_LEAF, _ROTATION, _TRANSLATION = slice(0, 7), slice(7, 10), slice(10, 13)
#: Where the leaf parameters go in the jaw, left eye, right eye rotation vectors [3 x 3].
_LEAF_COMPONENTS = torch.tensor([0, 1, 2, 3, 4, 6, 7])


@dataclass(frozen=True)
class _PosingModel:
    """FLAME as the fitter poses it (float64), for some or all of its vertices: rest points
    and joints linear in the solved coefficients ``c`` [K].

    Attributes:
        template: [V, 3] rest vertices at ``c = 0``.
        dirs: [V, 3, K] their blendshapes.
        joint_template: [J, 3], joint_dirs: [J, 3, K]: the rest joints (of the whole mesh).
        posedirs: [V, 3, P], lbs_weights: [V, J], parents: [J].
    """

    template: Tensor
    dirs: Tensor
    joint_template: Tensor
    joint_dirs: Tensor
    posedirs: Tensor
    lbs_weights: Tensor
    parents: Tensor

    def with_fixed(self, coefficients: Tensor) -> "_PosingModel":
        """The model with its first ``len(coefficients)`` coefficients baked into the template."""
        count = coefficients.shape[0]
        return _PosingModel(
            self.template + blend_shapes(coefficients[None], self.dirs[..., :count])[0],
            self.dirs[..., count:],
            self.joint_template + blend_shapes(coefficients[None], self.joint_dirs[..., :count])[0],
            self.joint_dirs[..., count:],
            self.posedirs,
            self.lbs_weights,
            self.parents,
        )

    def rows(self, vertex_ids: Tensor) -> "_PosingModel":
        """The model of the vertices ``vertex_ids`` [S] only (joints unchanged)."""
        return _PosingModel(
            self.template[vertex_ids], self.dirs[vertex_ids], self.joint_template, self.joint_dirs,
            self.posedirs[vertex_ids], self.lbs_weights[vertex_ids], self.parents,
        )  # fmt: skip

    def followed_by(self, other: "_PosingModel") -> "_PosingModel":
        """This model's rows, then ``other``'s (the same mesh and shape state)."""
        return _PosingModel(
            torch.cat([self.template, other.template]), torch.cat([self.dirs, other.dirs]),
            self.joint_template, self.joint_dirs, torch.cat([self.posedirs, other.posedirs]),
            torch.cat([self.lbs_weights, other.lbs_weights]), self.parents,
        )  # fmt: skip


@dataclass(frozen=True)
class _ModelViews:
    """One shape state's models: the whole mesh, the vertices every frame measures (the
    landmarks' face corners [3 L], then the eyeball fronts [2]) and the contour region."""

    whole: _PosingModel
    fixed: _PosingModel
    region: _PosingModel


@dataclass(frozen=True)
class _FrameTargets:
    """One frame's observations, in pixels: landmarks [L, 2], irises [2, 2], oval [C, 2]."""

    landmarks: Tensor
    irises: Tensor
    oval: Tensor
    face_size: float


@dataclass(frozen=True)
class _Correspondences:
    """What one linearisation measures.

    Attributes:
        measured: the model of the measured vertices [3 L + 2 + C]: the landmarks' face
            corners, the eyeball fronts and the silhouette vertices matched to C oval points.
        targets: [L + 2 + C, 2] pixels: landmarks, iris centres, matched oval points.
        contour_normals: [C, 2] unit image normals of the silhouette at those vertices.
    """

    measured: _PosingModel
    targets: Tensor
    contour_normals: Tensor


class FlameFitter:
    """Fits FLAME to a stream of MediaPipe landmarks seen by one fixed camera.

    Args:
        layer: the FLAME layer, built with its MediaPipe landmark embedding.
        camera: the camera of the landmarks' image (world = FLAME space scaled by ``scale``).
        config: iteration counts, damping, priors and weights.
        scale: ``FlameConfig.scale``, FLAME metres to world units.

    ``fit`` warm-starts from the previous frame's result with ``iterations`` iterations.
    The first frame (and the first after :meth:`reset`) has none: it starts from a pose
    guessed from the landmarks and gets ``shape_iterations`` iterations for the rigid pose,
    then as many for everything.
    """

    def __init__(self, layer: FlameLayer, camera: Camera, config: FitterConfig, scale: float) -> None:
        if not layer.has_landmarks:
            raise ValueError("the FLAME layer needs its MediaPipe landmark embedding to be fitted")
        if not 0 < config.n_expression <= layer.n_expression:
            raise ValueError(
                f"the fitter solves {config.n_expression} expression components, "
                f"the layer has {layer.n_expression}"
            )
        self.camera, self.config, self.scale = camera, config, scale
        self.n_shape, self.n_expression = layer.n_shape, config.n_expression
        self.n_eyelids = 2 if layer.has_eyelids else 0
        solved = [*range(layer.n_shape + config.n_expression)]
        solved += [layer.n_shape + layer.n_expression + i for i in range(self.n_eyelids)]
        unshaped = _PosingModel(
            _f64(layer.v_template), _f64(layer.blenddirs[..., solved]), _f64(layer.joint_template),
            _f64(layer.joint_dirs[..., solved]), _f64(layer.posedirs), _f64(layer.lbs_weights), layer.parents,
        )  # fmt: skip
        self._landmark_mediapipe = layer.landmark_mediapipe  # [L] MediaPipe indices
        self._landmark_weights = _f64(layer.landmark_weights)  # [L, 3]
        self._landmark_count = self._landmark_weights.shape[0]
        self._fixed_ids = torch.cat([layer.landmark_vertices.flatten(), _eye_front_vertices(unshaped)])
        self._contour = _ContourRegion(unshaped, layer.faces)
        self._unshaped = self._views(unshaped)
        self.shape = np.zeros(layer.n_shape)
        self._shaped = self._views(unshaped.with_fixed(torch.zeros(layer.n_shape, dtype=torch.float64)))
        # per-frame parameters: expression, eyelids, jaw 3, eyes 4, rotation 3, translation 3
        weights = [config.expression_prior] * config.n_expression + [config.pose_prior] * (self.n_eyelids + 7)
        self._prior = torch.tensor(weights + [0.0] * 6, dtype=torch.float64)
        self._previous: Tensor | None = None
        self.last_solve_ms = 0.0  # duration of the last fit or calibration

    # ------------------------------------------------------------------ public
    def fit(self, landmarks: np.ndarray) -> FlameParams:
        """Fit one frame.

        Args:
            landmarks: [478, 2] or [478, 3] MediaPipe points (x, y in pixels of the camera's image).
        """
        started = time.perf_counter()
        targets = self._frame_targets(landmarks)
        with _one_thread():
            if self._previous is None:
                self._previous = self._cold_fit(targets)
            else:
                self._previous = self._fit_frame(self._previous, targets, self.config.iterations)
            residual = self._landmark_rms(self._previous, targets)
        self.last_solve_ms = 1000.0 * (time.perf_counter() - started)
        return self._params(self._previous, residual)

    def calibrate(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Estimate the shape once, jointly over up to ``calibration_frames`` of ``frames``.

        Each frame ([478, 2 or 3] landmarks) is first fitted alone, then the shape and every
        frame's parameters are refined together for ``shape_iterations`` iterations. Later
        fits use this shape and warm-start from the last calibration frame.

        Returns:
            [n_shape] the shape coefficients (also kept in ``self.shape``).
        """
        if len(frames) == 0:
            raise ValueError("calibration needs at least one frame of landmarks")
        started = time.perf_counter()
        spread = np.linspace(0, len(frames) - 1, self.config.calibration_frames)
        chosen = np.unique(spread.round().astype(int))
        targets = [self._frame_targets(frames[i]) for i in chosen]
        with _one_thread():
            shape, self._previous = self._solve_shape(targets)
        self.shape = shape.numpy().copy()
        self._shaped = self._views(self._unshaped.whole.with_fixed(shape))
        self.last_solve_ms = 1000.0 * (time.perf_counter() - started)
        return self.shape.copy()

    def reset(self) -> None:
        """Forget the previous frame (the face was lost); the shape is kept."""
        self._previous = None

    # ------------------------------------------------------------------ solving
    def _views(self, model: _PosingModel) -> _ModelViews:
        return _ModelViews(model, model.rows(self._fixed_ids), model.rows(self._contour.vertex_ids))

    def _frame_targets(self, landmarks: np.ndarray) -> _FrameTargets:
        points = np.asarray(landmarks, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] != MEDIAPIPE_POINTS or points.shape[1] not in (2, 3):
            raise ValueError(
                f"expected [{MEDIAPIPE_POINTS}, 2 or 3] MediaPipe landmarks, got {list(points.shape)}"
            )
        xy = torch.as_tensor(points[:, :2])
        observed = xy[self._landmark_mediapipe]
        face_size = float((observed.max(dim=0).values - observed.min(dim=0).values).max())
        return _FrameTargets(observed, xy[list(IRIS_CENTRES)], xy[list(LOWER_FACE_OVAL)], face_size)

    def _cold_fit(self, targets: _FrameTargets) -> Tensor:
        """Fit a frame without a previous one: from the guessed pose, the rigid pose alone,
        then everything; solving the face before the head is placed would bend jaw and
        eyes to make up for the misplaced head."""
        start = self._guess_pose(targets)
        rigid = torch.zeros_like(start, dtype=torch.bool)
        rigid[-POSE_SIZE:][_ROTATION] = rigid[-POSE_SIZE:][_TRANSLATION] = True
        placed = self._fit_frame(start, targets, self.config.shape_iterations, free=rigid)
        return self._fit_frame(placed, targets, self.config.shape_iterations)

    def _guess_pose(self, targets: _FrameTargets) -> Tensor:
        """[K + 13] a neutral face turned to the camera, placed where the landmarks are.

        The depth makes the neutral landmarks as spread as the observed ones (focal length
        times size over pixel size); their centre goes on the ray of the observed centre.
        """
        x = torch.zeros(self._shaped.whole.dirs.shape[2] + POSE_SIZE, dtype=torch.float64)
        corners = self._world_points(self._shaped.fixed, x[:-POSE_SIZE], x[-POSE_SIZE:])
        neutral = self._measured(corners)[: self._landmark_count]  # [L, 3] world units, head at the origin
        rotation, translation = torch.as_tensor(self.camera.R), torch.as_tensor(self.camera.t)
        in_camera = neutral @ rotation.T
        spread_world = (in_camera[:, :2] - in_camera[:, :2].mean(dim=0)).square().sum(dim=1).mean().sqrt()
        spread_pixels = (targets.landmarks - targets.landmarks.mean(dim=0)).square().sum(dim=1).mean().sqrt()
        depth = float(self.camera.K[0, 0]) * spread_world / spread_pixels
        centre = torch.cat([targets.landmarks.mean(dim=0), torch.ones(1, dtype=torch.float64)])
        ray = torch.linalg.solve(torch.as_tensor(self.camera.K), centre)
        x[-POSE_SIZE:][_TRANSLATION] = rotation.T @ (depth * ray - translation) - neutral.mean(dim=0)
        return x

    def _fit_frame(
        self, start: Tensor, targets: _FrameTargets, iterations: int, free: Tensor | None = None
    ) -> Tensor:
        """[K + 13] per-frame parameters (expression, eyelids, pose) after ``iterations``,
        solving only the ``free`` ones [K + 13] (bool) when given."""
        n_blend = start.shape[0] - POSE_SIZE

        def linearize(x: Tensor) -> NormalEquations:
            coefficients, pose = x[:n_blend], x[n_blend:]
            correspondences = self._correspond(self._shaped, coefficients, pose, targets)
            residual, jacobian = self._linearize(correspondences, coefficients, pose)
            return NormalEquations(
                jacobian.T @ jacobian,
                jacobian.T @ residual,
                float(residual @ residual),
                lambda x_new: self._residual_at(correspondences, x_new[:n_blend], x_new[n_blend:]),
            )

        return levenberg_marquardt(start, linearize, self._prior, iterations, self.config.damping, free)

    def _solve_shape(self, targets: list[_FrameTargets]) -> tuple[Tensor, Tensor]:
        """Shape [n_shape] and the last frame's parameters [K + 13], solved jointly over the
        frames from each frame's own fit with the current shape."""
        per_frame = [self._cold_fit(t) for t in targets]
        n_shape, size = self.n_shape, per_frame[0].shape[0]
        n_blend = size - POSE_SIZE

        def frame_parts(z: Tensor, frame: int) -> tuple[Tensor, Tensor]:
            """All parameters [n_shape + F (K + 13)] -> one frame's coefficients (shape first) and pose."""
            x = z[n_shape + frame * size : n_shape + (frame + 1) * size]
            return torch.cat([z[:n_shape], x[:n_blend]]), x[n_blend:]

        def linearize(z: Tensor) -> NormalEquations:
            JtJ, Jtr = z.new_zeros(z.shape[0], z.shape[0]), z.new_zeros(z.shape[0])
            matched, squared = [], 0.0
            for frame, frame_targets in enumerate(targets):
                coefficients, pose = frame_parts(z, frame)
                correspondences = self._correspond(self._unshaped, coefficients, pose, frame_targets)
                residual, jacobian = self._linearize(correspondences, coefficients, pose)
                columns = torch.cat([torch.arange(n_shape), n_shape + frame * size + torch.arange(size)])
                JtJ[columns[:, None], columns] += jacobian.T @ jacobian
                Jtr[columns] += jacobian.T @ residual
                matched.append(correspondences)
                squared += float(residual @ residual)

            def residual_at(z_new: Tensor) -> Tensor:
                return torch.cat([
                    self._residual_at(correspondences, *frame_parts(z_new, frame))
                    for frame, correspondences in enumerate(matched)
                ])  # fmt: skip

            return NormalEquations(JtJ, Jtr, squared, residual_at)

        start = torch.cat([torch.as_tensor(self.shape, dtype=torch.float64), *per_frame])
        prior = torch.cat([torch.full((n_shape,), self.config.shape_prior, dtype=torch.float64)]
                          + [self._prior] * len(targets))  # fmt: skip
        iterations, damping = self.config.shape_iterations, self.config.damping
        solution = levenberg_marquardt(start, linearize, prior, iterations, damping)
        return solution[:n_shape], solution[-size:]

    def _landmark_rms(self, x: Tensor, targets: _FrameTargets) -> float:
        n_blend = x.shape[0] - POSE_SIZE
        world = self._world_points(self._shaped.fixed, x[:n_blend], x[n_blend:])
        pixels, _ = self.camera.project(self._measured(world)[: self._landmark_count])
        return float((pixels - targets.landmarks).square().sum(dim=1).mean().sqrt())

    def _params(self, x: Tensor, residual_px: float) -> FlameParams:
        values = x.numpy().copy()
        n_expression, n_blend = self.n_expression, values.shape[0] - POSE_SIZE
        pose = values[n_blend:]
        leaf = np.zeros(9)
        leaf[_LEAF_COMPONENTS.numpy()] = pose[_LEAF]
        return FlameParams(
            shape=self.shape.copy(),
            expression=values[:n_expression],
            jaw=leaf[0:3],
            eyes=leaf[3:9],
            eyelids=values[n_expression:n_blend],
            rotation=pose[_ROTATION],
            translation=pose[_TRANSLATION],
            residual_px=residual_px,
        )

    # ------------------------------------------------------------------ residuals
    def _correspond(self, views: _ModelViews, coefficients: Tensor, pose: Tensor,
                    targets: _FrameTargets) -> _Correspondences:  # fmt: skip
        """Pair the oval points with the current silhouette; gather the measured vertices."""
        world = self._world_points(views.region, coefficients, pose)
        local, normals = self._contour.silhouette(world, self.camera.center)
        pixels, _ = self.camera.project(world[local])
        in_image = normals @ torch.as_tensor(self.camera.R).T[:, :2]  # weak-perspective image normals
        in_image = in_image / in_image.norm(dim=1, keepdim=True).clamp_min(1e-12)
        kept = torch.zeros(targets.oval.shape[0], dtype=torch.bool)
        nearest = torch.zeros(targets.oval.shape[0], dtype=torch.int64)
        if local.numel():
            distance, nearest = torch.cdist(targets.oval, pixels).min(dim=1)
            kept = distance < CONTOUR_GATE * targets.face_size
        chosen = nearest[kept]
        contour = views.whole.rows(self._contour.vertex_ids[local[chosen]])
        return _Correspondences(
            measured=views.fixed.followed_by(contour),
            targets=torch.cat([targets.landmarks, targets.irises, targets.oval[kept]]),
            contour_normals=in_image[chosen],
        )

    def _residual_at(self, correspondences: _Correspondences, coefficients: Tensor, pose: Tensor) -> Tensor:
        """Residuals [2 L + 4 + C] in pixels (weighted)."""
        world = self._world_points(correspondences.measured, coefficients, pose)
        pixels, _ = self.camera.project(self._measured(world))
        return self._rows(pixels - correspondences.targets, correspondences)

    def _linearize(self, correspondences: _Correspondences, coefficients: Tensor,
                   pose: Tensor) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Residuals [R] and their Jacobian [R, K + 13] in the coefficients and the pose."""
        world, d_world = self._posed_with_jacobian(correspondences.measured, coefficients, pose)
        points, d_points = self._measured(world), self._measured(d_world)
        pixels, _ = self.camera.project(points)
        d_pixels = _projection_jacobian(self.camera, points) @ d_points  # [N, 2, K + 13]
        residual = self._rows(pixels - correspondences.targets, correspondences)
        return residual, self._rows(d_pixels, correspondences)

    def _measured(self, per_vertex: Tensor) -> Tensor:
        """[3 L + 2 + C, 3, ...] per measured vertex -> [L + 2 + C, 3, ...] per measured point:
        the landmarks (barycentric on their face corners), the eyeball fronts, the contour."""
        count = self._landmark_count
        corners = per_vertex[: 3 * count].unflatten(0, (count, 3))  # [L, 3 corners, 3, ...]
        weights = self._landmark_weights.view(count, 3, *[1] * (per_vertex.dim() - 1))
        return torch.cat([(corners * weights).sum(dim=1), per_vertex[3 * count :]])

    def _rows(self, per_point: Tensor, correspondences: _Correspondences) -> Tensor:
        """[L + 2 + C, 2, ...] pixel quantities -> residual rows [2 L + 4 + C, ...], weighted,
        the contour ones measured along the silhouette normal."""
        count = self._landmark_count
        normals = correspondences.contour_normals.view(-1, 2, *[1] * (per_point.dim() - 2))
        return torch.cat([
            per_point[:count].flatten(0, 1),
            self.config.iris_weight**0.5 * per_point[count : count + 2].flatten(0, 1),
            self.config.contour_weight**0.5 * (per_point[count + 2 :] * normals).sum(dim=1),
        ])  # fmt: skip

    # ------------------------------------------------------------------ posing
    def _world_points(self, model: _PosingModel, coefficients: Tensor, pose: Tensor) -> Tensor:
        """World positions [V, 3] of the model's vertices, by FLAME's LBS."""
        rest = model.template + blend_shapes(coefficients[None], model.dirs)[0]
        rest_joints = model.joint_template + blend_shapes(coefficients[None], model.joint_dirs)[0]
        rotvecs = torch.cat([pose.new_zeros(6), _leaf_rotvecs(pose).flatten()]).view(1, FLAME_JOINTS, 3)
        points, _ = pose_rest_points(
            rest[None], rest_joints[None], rotvecs, model.posedirs, model.parents, model.lbs_weights
        )
        head_rotation = batch_rodrigues(pose[None, _ROTATION])[0]
        return self.scale * points[0] @ head_rotation.T + pose[_TRANSLATION]

    def _posed_with_jacobian(
        self, model: _PosingModel, coefficients: Tensor, pose: Tensor
    ) -> tuple[Tensor, Tensor]:
        """World positions [V, 3] of the model's vertices and their Jacobian [V, 3, K + 13].

        The fitter never rotates the global and neck joints (the head pose is applied
        rigidly afterwards), so skinning reduces to
        ``x = (sum_j w_j R_j) y + sum_k w_k (I - R_k) J_k`` (``R`` = I for the global and
        neck joints, ``k`` over the jaw and eyes), with ``y`` the rest point plus pose
        correctives. Its derivatives are written out here; :meth:`_world_points` (FLAME's
        general LBS) is the reference the tests hold this to.
        """
        n_points = model.template.shape[0]
        unrotated_weight = model.lbs_weights[:, :2].sum(dim=1)  # [V]: global and neck
        weights = model.lbs_weights[:, 2:]  # [V, 3]: jaw, left eye, right eye
        rest = model.template + blend_shapes(coefficients[None], model.dirs)[0]
        joints = (model.joint_template + blend_shapes(coefficients[None], model.joint_dirs)[0])[2:]
        rotvecs = _leaf_rotvecs(pose)
        rotations = batch_rodrigues(rotvecs)  # [3, 3, 3]
        d_rotations = batch_rodrigues_derivative(rotvecs)  # [3 joints, 3 components, 3, 3]
        identity = torch.eye(3, dtype=pose.dtype)
        unrotated = identity.expand(2, 3, 3)  # global and neck
        features = pose_features(torch.cat([unrotated, rotations])[None])[0]
        y = rest + torch.einsum("vap,p->va", model.posedirs, features)
        turn = rotations - identity
        blended = unrotated_weight[:, None, None] * identity + torch.einsum("vj,jab->vab", weights, rotations)
        x = torch.einsum("vab,vb->va", blended, y) - weights @ torch.einsum("jab,jb->ja", turn, joints)

        head_rotvec = pose[None, _ROTATION]
        head, d_head = batch_rodrigues(head_rotvec)[0], batch_rodrigues_derivative(head_rotvec)[0]
        to_world = self.scale * head  # world = to_world @ x + translation

        # coefficients move y (blendshapes) and the joints (joint blendshapes)
        world_blended = to_world @ blended  # [V, 3, 3]
        turned_joint_dirs = torch.einsum("jab,jbk->jak", to_world @ turn, model.joint_dirs[2:])
        d_coefficients = torch.einsum("vab,vbk->vak", world_blended, model.dirs) - torch.einsum(
            "vj,jak->vak", weights, turned_joint_dirs
        )
        # jaw and eye rotations turn their vertices and change the pose correctives
        leaf_posedirs = model.posedirs[:, :, 9:].reshape(n_points, 3, 3, 9)  # after the neck's block
        d_y = torch.einsum("vajm,jim->vaji", leaf_posedirs, d_rotations.flatten(start_dim=2))
        d_turned = torch.einsum("jiab,vjb->vaji", d_rotations, y[:, None] - joints[None])
        d_leaf = weights[:, None, :, None] * d_turned + torch.einsum("vab,vbji->vaji", blended, d_y)
        d_leaf = to_world @ d_leaf.reshape(n_points, 3, 9)[:, :, _LEAF_COMPONENTS]

        jacobian = torch.cat([
            d_coefficients,
            d_leaf,
            self.scale * torch.einsum("iab,vb->vai", d_head, x),
            identity.expand(n_points, 3, 3),
        ], dim=2)  # fmt: skip
        return x @ to_world.T + pose[_TRANSLATION], jacobian


def _leaf_rotvecs(pose: Tensor) -> Tensor:
    """[3, 3] axis-angle of the jaw, left eye and right eye from the pose parameters [13]."""
    return pose.new_zeros(9).index_copy(0, _LEAF_COMPONENTS, pose[_LEAF]).view(3, 3)


@contextmanager
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _projection_jacobian(camera: Camera, points: Tensor) -> Tensor:
    """[N, 3] world points -> [N, 2, 3] derivatives of their pixel coordinates."""
    rotation = torch.as_tensor(camera.R, dtype=points.dtype)
    x, y, z = camera.world_to_camera(points).unbind(dim=1)
    fx, fy = float(camera.K[0, 0]), float(camera.K[1, 1])
    zero = torch.zeros_like(z)
    d_pixels = torch.stack([fx / z, zero, -fx * x / z**2, zero, fy / z, -fy * y / z**2], dim=1).view(-1, 2, 3)
    return d_pixels @ rotation


class _ContourRegion:
    """The lower face, where the face's contour lies: vertices below the eye joints, not
    skinned mainly to an eye, whose rest normal does not point back; with every face
    around them (``faces`` [F_r, 3], local indices into ``vertex_ids`` [V_r]) and the
    interior edges of those faces (``edges`` [E, 2] and their two faces ``edge_faces`` [E, 2]).
    ``vertex_ids`` is a tensor; the rest, used only by :meth:`silhouette`, numpy arrays.
    """

    def __init__(self, model: _PosingModel, faces: Tensor) -> None:
        owner = model.lbs_weights.argmax(dim=1)
        eye_level = model.joint_template[3:5, 1].min()
        normals = torch.from_numpy(vertex_normals(model.template.numpy(), faces.numpy()))
        lower_face = (owner < 3) & (model.template[:, 1] < eye_level) & (normals[:, 2] > CONTOUR_MIN_NORMAL_Z)
        around = faces[lower_face[faces].any(dim=1)]
        self.vertex_ids, local_faces = torch.unique(around, return_inverse=True)
        self.faces = local_faces.view(-1, 3).numpy()
        self.candidates = lower_face[self.vertex_ids].numpy()  # [V_r] bool
        self.edges, self.edge_faces = interior_edges(self.faces)

    def silhouette(self, world: Tensor, camera_centre: np.ndarray) -> tuple[Tensor, Tensor]:
        """Silhouette vertices (local indices [N]) of the region posed at ``world`` [V_r, 3],
        with their unit normals [N, 3]."""
        points = world.numpy()
        per_face = face_normals(points, self.faces)
        to_camera = camera_centre - points[self.faces].mean(axis=1)
        towards = (per_face * to_camera).sum(axis=1) > 0
        on_silhouette = towards[self.edge_faces[:, 0]] != towards[self.edge_faces[:, 1]]
        ends = np.unique(self.edges[on_silhouette])
        ends = ends[self.candidates[ends]]
        normals = vertex_normals(points, self.faces, per_face)[ends]
        return torch.from_numpy(ends), torch.from_numpy(normals)


def _eye_front_vertices(model: _PosingModel) -> Tensor:
    """[2] the most forward (+z) rest vertex skinned mainly to each eye joint, ordered as
    :data:`IRIS_CENTRES`: the subject's right eye (smaller x) first."""
    owner = model.lbs_weights.argmax(dim=1)
    fronts = {}
    for joint in (3, 4):
        members = torch.nonzero(owner == joint)[:, 0]
        if members.numel() == 0:
            raise ValueError(f"no FLAME vertex is skinned mainly to eye joint {joint}; cannot place the iris")
        fronts[joint] = members[model.template[members, 2].argmax()]
    right_eye, left_eye = sorted(fronts, key=lambda joint: float(model.joint_template[joint, 0]))
    return torch.stack([fronts[right_eye], fronts[left_eye]])


def _f64(tensor: Tensor) -> Tensor:
    return tensor.detach().to(torch.float64)
