"""The FLAME fitter on a synthetic FLAME: landmarks rendered from known parameters come back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from core.config import load_config
from core.flame import FlameLayer, FlameParams, load_flame_model, load_landmark_embedding
from core.flame.lbs import batch_rodrigues
from core.geometry.camera import Camera
from core.tracking.flame_fitter import IRIS_CENTRES, LOWER_FACE_OVAL, FlameFitter
from synthetic_flame import make_synthetic_flame, write_eyelids, write_flame_npz, write_landmark_embedding

CONFIG = load_config("paper")
FITTER = CONFIG.tracking.fitter
SCALE = CONFIG.flame.scale
SIZE = CONFIG.image_size
NOISE_PX = 0.2  # MediaPipe-like jitter added to every landmark
N_SHAPE = 100  # the layer's shape components (300 in the paper config; fewer keeps calibration quick)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_flame(seed=0, reserved_mediapipe=LOWER_FACE_OVAL)


@pytest.fixture(scope="module")
def layer(synthetic, tmp_path_factory) -> FlameLayer:
    folder = tmp_path_factory.mktemp("flame")
    write_eyelids(synthetic, folder)
    model = load_flame_model(write_flame_npz(synthetic, folder / "flame.npz"))
    embedding = load_landmark_embedding(write_landmark_embedding(synthetic, folder / "embedding.npz"))
    return FlameLayer(model, n_shape=N_SHAPE, n_expression=100, embedding=embedding)


@pytest.fixture(scope="module")
def camera() -> Camera:
    eye = (0.0, 0.0, CONFIG.camera.distance)
    return Camera.look_at(eye, (0.0, 0.0, 0.0), SIZE, SIZE, CONFIG.camera.focal_normalized)


def _truth(time_s: float, shape: np.ndarray | None = None) -> FlameParams:
    """Smooth, realistic motion: about 1 degree of head turn and 0.08 expression per frame at 30 fps."""

    def wave(amplitude: float, hertz: float, phase=0.0):
        return amplitude * np.sin(2 * np.pi * hertz * time_s + phase)

    gaze = [wave(0.1, 0.4), wave(0.15, 0.3, 1.5), 0.0]
    return FlameParams(
        shape=np.zeros(N_SHAPE) if shape is None else shape,
        expression=wave(0.8, 0.5, np.arange(FITTER.n_expression)),
        jaw=np.array([0.1 + wave(0.08, 0.7), 0.0, 0.0]),
        eyes=np.array(gaze + gaze),
        eyelids=0.3 + wave(0.3, 1.0, np.array([0.0, 0.2])),
        rotation=np.array([wave(0.15, 0.3), wave(0.35, 0.25), wave(0.05, 0.3, 1.5)]),
        translation=np.array([wave(0.05, 0.2), -0.03, wave(0.1, 0.25, 1.5)]),
        residual_px=0.0,
    )


def _mediapipe_landmarks(layer: FlameLayer, synthetic, camera: Camera, truth: FlameParams, rng) -> np.ndarray:
    """[478, 2] what MediaPipe would report for the synthetic head posed by ``truth``.

    Embedded landmarks and eyeball fronts are projected; the lower face oval gets points of
    the head's outline (2D convex hull of the projected head, below the eyes), found
    independently of the fitter's silhouette search. Other points are random.
    """
    def as_batch(values: np.ndarray, size: int | None = None) -> torch.Tensor:
        padded = np.zeros(size or len(values))
        padded[: len(values)] = values
        return torch.as_tensor(padded, dtype=torch.float32)[None]

    vertices = layer(
        as_batch(truth.shape), as_batch(truth.expression, layer.n_expression), jaw=as_batch(truth.jaw),
        eyes=as_batch(truth.eyes), eyelids=as_batch(truth.eyelids) if layer.has_eyelids else None,
    ).vertices.double()  # fmt: skip
    head_rotation = batch_rodrigues(torch.as_tensor(truth.rotation)[None])[0]
    world = SCALE * vertices[0] @ head_rotation.T + torch.as_tensor(truth.translation)
    pixels = camera.project(world)[0].numpy()

    points = rng.uniform(0, SIZE, size=(478, 2))
    embedded = layer.landmarks(world[None].float()).double()[0]
    points[layer.landmark_mediapipe.numpy()] = camera.project(embedded)[0].numpy()
    left_front, right_front = synthetic.eye_front_vertices
    points[list(IRIS_CENTRES)] = pixels[[right_front, left_front]]
    head = pixels[: synthetic.head_vertices]
    outline = head[ConvexHull(head).vertices]
    below_eyes = outline[outline[:, 1] > points[list(IRIS_CENTRES), 1].max() + 5.0]
    centre = head.mean(axis=0)
    below_eyes = below_eyes[np.argsort(np.arctan2(*(below_eyes - centre).T[::-1]))]
    picks = np.linspace(0, len(below_eyes) - 1, len(LOWER_FACE_OVAL)).round().astype(int)
    points[list(LOWER_FACE_OVAL)] = below_eyes[picks]
    return points + rng.normal(0.0, NOISE_PX, size=points.shape)


def _errors(fitted: FlameParams, truth: FlameParams) -> dict[str, float]:
    return {
        "residual_px": fitted.residual_px,
        "expression_rms": float(np.sqrt(np.mean((fitted.expression - truth.expression) ** 2))),
        "jaw": float(np.abs(fitted.jaw - truth.jaw).max()),
        "eyes": float(np.abs(fitted.eyes - truth.eyes).max()),
        "eyelids": float(np.abs(fitted.eyelids - truth.eyelids).max()),
        "rotation": float(np.abs(fitted.rotation - truth.rotation).max()),
        "translation": float(np.abs(fitted.translation - truth.translation).max()),
    }


# --------------------------------------------------------------------------- tests
def test_one_frame_from_scratch_recovers_the_parameters(layer, synthetic, camera):
    rng = np.random.default_rng(1)
    truth = _truth(time_s=0.7)
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    fitted = fitter.fit(_mediapipe_landmarks(layer, synthetic, camera, truth, rng))
    errors = _errors(fitted, truth)
    print(f"\ncold start: {fitter.last_solve_ms:.0f} ms, errors {errors}")
    assert errors["residual_px"] < 0.5
    assert errors["expression_rms"] < 0.1  # of coefficients up to 0.8
    assert errors["jaw"] < 0.01 and errors["eyes"] < 0.04  # radians
    assert errors["eyelids"] < 0.12
    assert errors["rotation"] < np.radians(0.5)
    assert errors["translation"] < 0.02  # world units, 0.2% of the camera distance
    assert fitted.eyes[2] == fitted.eyes[5] == 0.0  # no roll about the gaze
    np.testing.assert_array_equal(fitted.shape, np.zeros(N_SHAPE))


def test_warm_start_tracks_a_sequence_in_the_configured_iterations(layer, synthetic, camera):
    rng = np.random.default_rng(2)
    times = np.arange(0.0, 0.5, 1.0 / 30.0)
    frames = [_mediapipe_landmarks(layer, synthetic, camera, _truth(t), rng) for t in times]
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    patient = FlameFitter(layer, camera, dataclasses.replace(FITTER, iterations=20), SCALE)
    fitter.fit(frames[0])
    patient.fit(frames[0])
    milliseconds, worst = [], {}
    for t, frame in zip(times[1:], frames[1:]):
        fitted, converged = fitter.fit(frame), patient.fit(frame)
        milliseconds.append(fitter.last_solve_ms)
        for name, value in _errors(fitted, _truth(t)).items():
            worst[name] = max(worst.get(name, 0.0), value)
        assert fitted.residual_px < converged.residual_px + 0.02  # 4 iterations are as good as 20
    print(f"\nwarm start, {FITTER.iterations} iterations: {np.median(milliseconds):.1f} ms per frame "
          f"(median of {len(milliseconds)}), worst errors {worst}")  # fmt: skip
    assert worst["residual_px"] < 0.5
    assert worst["expression_rms"] < 0.1 and worst["jaw"] < 0.01 and worst["eyes"] < 0.04
    assert worst["eyelids"] < 0.12
    assert worst["rotation"] < np.radians(0.5) and worst["translation"] < 0.02


def test_calibration_recovers_the_shape(layer, synthetic, camera):
    rng = np.random.default_rng(3)
    shape = np.zeros(N_SHAPE)
    shape[:20] = rng.normal(size=20)
    times = np.linspace(0.0, 4.0, FITTER.calibration_frames)  # the head turns through +-20 degrees
    frames = [_mediapipe_landmarks(layer, synthetic, camera, _truth(t, shape), rng) for t in times]
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    fitted_shape = fitter.calibrate(frames)

    def landmark_region(coefficients: np.ndarray) -> np.ndarray:
        vertices = layer(torch.as_tensor(coefficients, dtype=torch.float32)[None]).vertices[0]
        return vertices.double().numpy()[layer.landmark_vertices.flatten().numpy()]

    truth_region = landmark_region(shape)
    error_mm = 1000 * _aligned_rms(landmark_region(fitted_shape), truth_region)
    mean_shape_error_mm = 1000 * _aligned_rms(landmark_region(np.zeros(N_SHAPE)), truth_region)
    print(f"\ncalibration: landmark-region shape error {error_mm:.2f} mm, {fitter.last_solve_ms:.0f} ms "
          f"(mean shape: {mean_shape_error_mm:.2f} mm)")  # fmt: skip
    assert error_mm < 0.35 * mean_shape_error_mm
    np.testing.assert_array_equal(fitter.shape, fitted_shape)

    t = times[-1] + 1.0 / 30.0
    fitted = fitter.fit(_mediapipe_landmarks(layer, synthetic, camera, _truth(t, shape), rng))
    errors = _errors(fitted, _truth(t, shape))
    print(f"first frame after calibration: {errors}")
    assert errors["residual_px"] < 0.5 and errors["jaw"] < 0.02 and errors["expression_rms"] < 0.15
    np.testing.assert_array_equal(fitted.shape, fitted_shape)


def test_analytic_jacobian_matches_flame_lbs(layer, camera):
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    generator = torch.Generator().manual_seed(4)
    for views in (fitter._shaped, fitter._unshaped):  # tracking and calibration (shape solved too)
        count = views.fixed.template.shape[0]  # landmark face corners, then the two eyeball fronts
        some_vertices = torch.cat([torch.arange(0, count - 2, 7), torch.tensor([count - 2, count - 1])])
        model = views.fixed.rows(some_vertices)
        n_coefficients = model.dirs.shape[2]
        x = 0.3 * torch.randn(n_coefficients + 13, generator=generator, dtype=torch.float64)
        world, jacobian = fitter._posed_with_jacobian(model, x[:n_coefficients], x[n_coefficients:])

        def lbs_world(x: torch.Tensor) -> torch.Tensor:
            return fitter._world_points(model, x[:n_coefficients], x[n_coefficients:])

        step, axes = 1e-6, torch.eye(len(x), dtype=x.dtype)
        central_differences = torch.stack(
            [(lbs_world(x + step * axis) - lbs_world(x - step * axis)) / (2 * step) for axis in axes], dim=-1
        )
        torch.testing.assert_close(world, lbs_world(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(jacobian, central_differences, rtol=0, atol=1e-7)
        assert (jacobian[..., :-3].abs().amax(dim=(0, 1)) > 1e-4).all()  # each parameter moves some vertex


def test_silhouette_search_finds_the_outline(layer, synthetic, camera):
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    truth = _truth(time_s=0.7)
    rng = np.random.default_rng(5)
    oval = _mediapipe_landmarks(layer, synthetic, camera, truth, rng)[list(LOWER_FACE_OVAL)]
    x = torch.as_tensor(np.concatenate([truth.expression, truth.eyelids, truth.jaw, truth.eyes[[0, 1, 3, 4]],
                                        truth.rotation, truth.translation]))  # fmt: skip
    world = fitter._world_points(fitter._shaped.region, x[:-13], x[-13:])
    silhouette, _ = fitter._contour.silhouette(world, camera.center)
    pixels = camera.project(world[silhouette])[0].numpy()
    nearest = np.linalg.norm(oval[:, None] - pixels[None], axis=2).min(axis=1)
    assert nearest.max() < 4 * NOISE_PX  # every outline point lies on the found silhouette


def test_camera_extrinsic_sees_the_unposed_head_as_the_pose_shows_it(camera):
    pose = dataclasses.replace(
        _truth(0.3), rotation=np.array([0.2, -0.4, 0.1]), translation=np.array([0.1, 0.2, -0.3])
    )
    points = np.random.default_rng(6).uniform(-0.5, 0.5, size=(20, 3))  # scaled, unposed head points
    head_rotation = batch_rodrigues(torch.as_tensor(pose.rotation)[None])[0].numpy()
    posed_pixels, _ = camera.project(points @ head_rotation.T + pose.translation)
    pixels, _ = pose.camera_extrinsic(camera).project(points)
    np.testing.assert_allclose(pixels, posed_pixels, atol=1e-9)


def test_model_without_eyelids(synthetic, camera, tmp_path):
    model = load_flame_model(write_flame_npz(synthetic, tmp_path / "flame.npz"))
    embedding = load_landmark_embedding(write_landmark_embedding(synthetic, tmp_path / "embedding.npz"))
    layer = FlameLayer(model, n_shape=N_SHAPE, n_expression=100, embedding=embedding)
    truth = dataclasses.replace(_truth(0.2), eyelids=np.zeros(0))
    rng = np.random.default_rng(7)
    landmarks = _mediapipe_landmarks(layer, synthetic, camera, truth, rng)
    fitted = FlameFitter(layer, camera, FITTER, SCALE).fit(landmarks)
    assert fitted.eyelids.shape == (0,) and fitted.residual_px < 0.5


def test_bad_input_is_refused(layer, camera, synthetic, tmp_path):
    fitter = FlameFitter(layer, camera, FITTER, SCALE)
    with pytest.raises(ValueError, match=r"expected \[478, 2 or 3\] MediaPipe landmarks, got \[468, 2\]"):
        fitter.fit(np.zeros((468, 2)))
    without_embedding = FlameLayer(load_flame_model(write_flame_npz(synthetic, tmp_path / "flame.npz")))
    with pytest.raises(ValueError, match="needs its MediaPipe landmark embedding"):
        FlameFitter(without_embedding, camera, FITTER, SCALE)
    with pytest.raises(ValueError, match="solves 150 expression components, the layer has 100"):
        FlameFitter(layer, camera, dataclasses.replace(FITTER, n_expression=150), SCALE)


def _aligned_rms(points: np.ndarray, reference: np.ndarray) -> float:
    """RMS distance [metres] of ``points`` [N, 3] to ``reference`` after the best similarity
    transform (the pose and scale that images cannot tell from shape)."""
    a, b = reference - reference.mean(axis=0), points - points.mean(axis=0)
    u, singular, vt = np.linalg.svd(a.T @ b)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = (singular * np.diag(sign)).sum() / (b**2).sum()
    return float(np.sqrt(((a - scale * b @ rotation.T) ** 2).sum(axis=1).mean()))
