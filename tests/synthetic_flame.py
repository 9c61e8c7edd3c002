"""A small synthetic FLAME model, written in each official file format (a test helper).

The real model is licence-gated, so tests use a stand-in with the real keys and realistic
shapes: an ellipsoid head with a nose (a closed icosphere mesh) plus two eyeballs, the five
FLAME joints (global, neck, jaw, left eye, right eye), 300 smooth shape blendshapes, 100
local expression blendshapes, 36 pose correctives, a sparse joint regressor, eyelid
blendshapes and a MediaPipe landmark embedding. Everything is seeded and deterministic.

The default embedding pairs random MediaPipe points with random face points: enough to
test file handling and fitting against the model's own projections. To fit real faces (in
videos), pass ``face_landmarks`` (MediaPipe's points of a frontal face): each embedded
MediaPipe point then sits on the head where that face's point falls, its eyes on the eyes.
The release's ``FLAME_with_eye.pt`` layout (:func:`write_release_bundle`) carries iBUG-68
landmarks instead (:func:`release_landmark_embedding`), placed the same way.

FLAME space: metres, +x the subject's left, +y up, +z out of the face.
"""

from __future__ import annotations

import copyreg
import pickle
import struct
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.sparse
import scipy.spatial
import torch

HEAD_RADII = np.array([0.078, 0.105, 0.095])  # x, y, z semi-axes in metres
EYE_RADIUS = 0.0125
EYE_CENTRES = np.array([[0.033, 0.028, 0.0728], [-0.033, 0.028, 0.0728]])  # left (+x), right
N_SHAPE, N_EXPRESSION, N_LANDMARKS = 300, 100, 105
MEDIAPIPE_FACE_POINTS = 468  # MediaPipe indices below this are face points (above: irises)


@dataclass(frozen=True)
class SyntheticFlame:
    """The model as it is written to files.

    Attributes:
        arrays: FLAME keys -> arrays (``J_regressor`` dense [J, V]).
        eyelids: [2, V, 3] left and right eyelid blendshapes.
        embedding: the keys of ``mediapipe_landmark_embedding.npz``.
        eye_front_vertices: (left, right) vertex at the front of each eyeball.
        head_vertices: how many vertices the head has; the two eyeballs' follow.
    """

    arrays: dict[str, np.ndarray]
    eyelids: np.ndarray
    embedding: dict[str, np.ndarray]
    eye_front_vertices: tuple[int, int]
    head_vertices: int


def make_synthetic_flame(
    seed: int = 0,
    reserved_mediapipe: tuple[int, ...] = (),
    face_landmarks: np.ndarray | None = None,
    vertices: int | None = None,
) -> SyntheticFlame:
    """Build the model; the embedding avoids the MediaPipe indices in ``reserved_mediapipe``
    and follows ``face_landmarks`` ([478, 3] MediaPipe pixels of a frontal face) when given.
    ``vertices``: the model's vertex count (FLAME's 5,023 for the paper's sizes; the head is then
    an evenly spread sphere of points instead of the default 2,562-vertex icosphere)."""
    rng = np.random.default_rng(seed)
    eye_count = len(_icosphere(1)[0])
    head_vertices, head_faces = _icosphere(4) if vertices is None else _even_sphere(vertices - 2 * eye_count)
    head = head_vertices * HEAD_RADII
    nose = np.exp(-((head[:, 0] / 0.012) ** 2 + ((head[:, 1] + 0.005) / 0.025) ** 2)) * (head[:, 2] > 0)
    head[:, 2] += 0.02 * nose
    eye_vertices, eye_faces = _icosphere(1)
    eye_vertices = eye_vertices @ _rotation_onto_z(eye_vertices[5]).T  # a pupil vertex on the eye's axis
    parts = [head] + [centre + EYE_RADIUS * eye_vertices for centre in EYE_CENTRES]
    vertices = np.concatenate(parts)
    n_head, n_eye = len(head), len(eye_vertices)
    faces = np.concatenate([head_faces, eye_faces + n_head, eye_faces + n_head + n_eye])
    eye_of_vertex = np.full(len(vertices), -1)  # -1 head, 0 left eyeball, 1 right eyeball
    eye_of_vertex[n_head : n_head + n_eye] = 0
    eye_of_vertex[n_head + n_eye :] = 1
    eye_front = tuple(int(n_head + i * n_eye + np.argmax(eye_vertices[:, 2])) for i in range(2))

    if face_landmarks is None:
        embedding = _landmark_embedding(vertices, faces, eye_of_vertex, rng, reserved_mediapipe)
    else:
        embedding = _face_aligned_embedding(vertices, faces, eye_of_vertex, face_landmarks, reserved_mediapipe)
    landmarks = np.einsum("lc,lcd->ld", embedding["lmk_b_coords"], vertices[faces[embedding["lmk_face_idx"]]])
    shapedirs = np.concatenate(
        [
            _shape_blendshapes(vertices, eye_of_vertex, rng),
            _expression_blendshapes(vertices, eye_of_vertex, landmarks, rng),
        ],
        axis=2,
    )
    weights = _skinning_weights(vertices, eye_of_vertex)
    arrays = {
        "v_template": vertices,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": _pose_correctives(vertices, weights, rng),
        "J_regressor": _joint_regressor(vertices, eye_of_vertex),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "weights": weights,
    }
    eyelids = np.stack([_eyelid_blendshape(vertices, eye_of_vertex, centre) for centre in EYE_CENTRES])
    return SyntheticFlame(arrays, eyelids, embedding, eye_front, n_head)


# --------------------------------------------------------------------------- writers
def write_flame_2020_pickle(model: SyntheticFlame, path: Path) -> Path:
    """Like FLAME 2020 ``generic_model.pkl``: Python 2 pickle, chumpy ``shapedirs``, sparse regressor."""
    with _fake_chumpy() as Ch:
        content = dict(_file_content(model))
        content["shapedirs"] = Ch(content["shapedirs"])
        content.update(bs_style="lbs", bs_type="lrotmin")
        with path.open("wb") as file:
            _Python2Pickler(file, protocol=2).dump({key.encode(): value for key, value in content.items()})
    return path


def write_flame_2023_pickle(model: SyntheticFlame, path: Path) -> Path:
    """Like ``flame2023.pkl``: the same keys as plain arrays, a sparse regressor, Python 3 pickle."""
    with path.open("wb") as file:
        pickle.dump(_file_content(model), file, protocol=4)
    return path


def write_flame_npz(model: SyntheticFlame, path: Path) -> Path:
    """An ``.npz`` repack with the same key names (dense regressor)."""
    np.savez(path, **model.arrays)
    return path


def write_eyelids(model: SyntheticFlame, folder: Path) -> None:
    """``l_eyelid.npy`` and ``r_eyelid.npy`` ([V, 3] float32 each) into ``folder``."""
    for name, blendshape in zip(("l_eyelid.npy", "r_eyelid.npy"), model.eyelids):
        np.save(folder / name, blendshape.astype(np.float32))


def write_landmark_embedding(model: SyntheticFlame, path: Path) -> Path:
    np.savez(path, **model.embedding)
    return path


def release_landmark_embedding(
    model: SyntheticFlame, face_landmarks: np.ndarray, ibug_mediapipe: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """The release's ``lmk_embeddings`` for ``model``: ``full_lmk_faces_idx_with_eye`` [1, 70] and
    ``full_lmk_bary_coords_with_eye`` [1, 70, 3] hold the 68 iBUG points, each on the head where
    the frontal face ``face_landmarks`` ([478, 3] MediaPipe pixels) puts its MediaPipe point
    ``ibug_mediapipe[i]`` (as the face-aligned embedding of :func:`make_synthetic_flame` does),
    then the right and left pupils (the eyeballs' front vertices); the static and dynamic keys
    have the real shapes (static = points 17..67, dynamic unused)."""
    vertices, faces = model.arrays["v_template"], model.arrays["f"].astype(np.int64)
    head_faces = np.flatnonzero((faces < model.head_vertices).all(axis=1))
    aligned = _onto_eyes(np.asarray(face_landmarks, np.float64))
    rows, barycentric = _surface_behind(vertices, faces[head_faces], aligned[list(ibug_mediapipe), :2])
    pupils = model.eye_front_vertices[::-1]  # right, left
    pupil_faces = [int(np.flatnonzero((faces == vertex).any(axis=1))[0]) for vertex in pupils]
    pupil_weights = [(faces[face] == vertex).astype(np.float64) for face, vertex in zip(pupil_faces, pupils)]
    full_faces = np.concatenate([head_faces[rows], pupil_faces])[None]
    full_weights = np.concatenate([barycentric, pupil_weights])[None]
    return {
        "static_lmk_faces_idx": full_faces[0, 17:68],
        "static_lmk_bary_coords": full_weights[0, 17:68],
        "dynamic_lmk_faces_idx": np.zeros((79, 17), dtype=np.int64),
        "dynamic_lmk_bary_coords": np.tile([1.0, 0.0, 0.0], (79, 17, 1)),
        "full_lmk_faces_idx_with_eye": full_faces,
        "full_lmk_bary_coords_with_eye": full_weights,
    }


def write_release_bundle(model: SyntheticFlame, path: Path, lmk_embeddings: dict[str, np.ndarray]) -> Path:
    """Like the release's ``FLAME_with_eye.pt``: ``{"flame_model": ..., "lmk_embeddings": ...}``
    of tensors (indices int64, the rest float32; the root's parent stored as 2**32 - 1)."""

    def tensor(array: np.ndarray) -> torch.Tensor:
        array = np.asarray(array)
        return torch.tensor(array.astype(np.int64 if array.dtype.kind in "iu" else np.float32))

    torch.save({
        "flame_model": {key: tensor(value) for key, value in model.arrays.items()},
        "lmk_embeddings": {key: tensor(value) for key, value in lmk_embeddings.items()},
    }, path)  # fmt: skip
    return path


def _file_content(model: SyntheticFlame) -> dict[str, object]:
    content: dict[str, object] = dict(model.arrays)
    content["J_regressor"] = scipy.sparse.csc_matrix(model.arrays["J_regressor"])
    content["J"] = model.arrays["J_regressor"] @ model.arrays["v_template"]
    return content


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can change
    """Writes ``bytes`` as Python 2 ``str`` opcodes, as the Python 2 release of FLAME was written."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


@contextmanager
def _fake_chumpy() -> Iterator[type]:
    """A ``chumpy.ch.Ch`` importable only while pickling, pickled the way chumpy's is.

    A real Ch pickles through ``copyreg._reconstructor`` with a BUILD state dict holding its
    array under ``'x'`` and bookkeeping entries (a Python 2 pickle, so the keys are str).
    """
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, array: np.ndarray) -> None:
            self.x = array

        def __reduce__(self):
            state = {
                b"x": self.x,
                b"_dirty_vars": set(),
                b"_itr": None,
                b"_depends_on_deps": {},
                b"_make_dense": False,
                b"_make_sparse": False,
            }
            return copyreg._reconstructor, (Ch, object, None), state

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch, package.ch = Ch, module
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        yield Ch
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


# --------------------------------------------------------------------------- geometry
def _icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere: [V, 3] vertices and [F, 3] outward-facing (counter-clockwise) faces."""
    t = (1.0 + 5.0**0.5) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
                (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.array(v, dtype=float) / np.linalg.norm(v) for v in vertices]
    for _ in range(subdivisions):
        midpoints: dict[tuple[int, int], int] = {}

        def midpoint(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in midpoints:
                middle = points[a] + points[b]
                points.append(middle / np.linalg.norm(middle))
                midpoints[key] = len(points) - 1
            return midpoints[key]

        finer = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            finer += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = finer
    return np.array(points), np.array(faces, dtype=np.int64)


def _even_sphere(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere of ``count`` evenly spread (Fibonacci) points: [V, 3] and [2V - 4, 3] outward
    faces (their convex hull)."""
    index = np.arange(count) + 0.5
    height = 1.0 - 2.0 * index / count
    angle = np.pi * (1.0 + 5.0**0.5) * index
    ring = np.sqrt(1.0 - height**2)
    points = np.column_stack([ring * np.cos(angle), height, ring * np.sin(angle)])
    faces = scipy.spatial.ConvexHull(points).simplices.astype(np.int64)
    corners = points[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = (normals * corners.mean(axis=1)).sum(axis=1) < 0
    faces[inward] = faces[inward][:, ::-1]
    return points, faces


def _rotation_onto_z(direction: np.ndarray) -> np.ndarray:
    """[3, 3] rotation about the x axis taking the unit ``direction`` (with x = 0) to +z."""
    angle = np.arctan2(direction[1], direction[2])
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])


def _smooth_fields(
    points: np.ndarray, count: int, rng: np.random.Generator, frequency: tuple[float, float]
) -> np.ndarray:
    """[V, 3, count] random smooth displacement fields (unit amplitude), sinusoids whose
    frequency (radians per metre) rises from ``frequency[0]`` to ``frequency[1]`` over the count."""
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    waves = directions * np.linspace(*frequency, count)[:, None]  # [count, 3]
    phases = rng.uniform(0, 2 * np.pi, size=count)
    displacement = rng.normal(size=(count, 3))
    displacement /= np.linalg.norm(displacement, axis=1, keepdims=True)
    profile = np.sin(points @ waves.T + phases)  # [V, count]
    return profile[:, None, :] * displacement.T[None]


def _shape_blendshapes(
    vertices: np.ndarray, eye_of_vertex: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[V, 3, 300] smooth identity components of decaying size (PCA-like). Like FLAME's,
    learnt from rigidly aligned scans, they hold no similarity motion of the head (moving,
    turning or scaling it), which images could not tell from the head pose; eyeballs move
    rigidly with the head surface around their centre."""
    fields = _smooth_fields(vertices, N_SHAPE, rng, frequency=(6.0, 60.0))
    head = np.flatnonzero(eye_of_vertex < 0)
    motions = _similarity_motions(vertices)  # [V, 3, 7]
    amounts = np.linalg.lstsq(motions[head].reshape(-1, 7), fields[head].reshape(-1, N_SHAPE), rcond=None)[0]
    fields -= np.einsum("vcm,mk->vck", motions, amounts)
    for eye, centre in enumerate(EYE_CENTRES):
        nearest_head_vertex = head[np.argmin(np.linalg.norm(vertices[head] - centre, axis=1))]
        fields[eye_of_vertex == eye] = fields[nearest_head_vertex]
    return fields * (0.006 / (1.0 + np.arange(N_SHAPE) / 8.0))


def _similarity_motions(points: np.ndarray) -> np.ndarray:
    """[V, 3, 7] first-order displacements of ``points`` [V, 3] under the 3 translations,
    the 3 rotations and the scaling of the whole head."""
    translations = np.broadcast_to(np.eye(3), (len(points), 3, 3))
    rotations = np.stack([np.cross(axis, points) for axis in np.eye(3)], axis=2)
    return np.concatenate([translations, rotations, points[:, :, None]], axis=2)


def _expression_blendshapes(
    vertices: np.ndarray, eye_of_vertex: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[V, 3, 100] local bumps (1 cm wide, up to 4 mm), mostly in the image plane, centred on
    the first 100 landmarks (spread out, as farthest-point sampling ordered them), so that
    every component moves landmarks its own way (well conditioned); eyeballs do not move."""
    centres = landmarks[:N_EXPRESSION]
    directions = rng.normal(size=(N_EXPRESSION, 3)) * np.array([1.0, 1.0, 0.4])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distance_sq = ((vertices[:, None] - centres[None]) ** 2).sum(axis=2)  # [V, 100]
    falloff = np.exp(-distance_sq / (2 * 0.01**2)) * (eye_of_vertex < 0)[:, None]
    amplitude = 0.004 * (1.0 - 0.5 * np.arange(N_EXPRESSION) / N_EXPRESSION)
    return falloff[:, None, :] * (directions * amplitude[:, None]).T[None]


def _eyelid_blendshape(vertices: np.ndarray, eye_of_vertex: np.ndarray, eye_centre: np.ndarray) -> np.ndarray:
    """[V, 3] the upper lid above ``eye_centre`` moving down by up to 6 mm."""
    lid = eye_centre + np.array([0.0, 0.012, 0.0])
    falloff = np.exp(-((vertices - lid) ** 2).sum(axis=1) / (2 * 0.008**2)) * (eye_of_vertex < 0)
    return falloff[:, None] * np.array([0.0, -0.006, 0.001])


def _pose_correctives(vertices: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[V, 3, 36] smooth pose correctives (up to 0.5 mm per unit of ``R - I``) of the neck and
    jaw, each where its joint moves the skin; eye rotations deform nothing."""
    correctives = 0.0005 * _smooth_fields(vertices, 36, rng, frequency=(3.0, 12.0))
    for block, joint in enumerate((1, 2)):  # neck, jaw
        correctives[:, :, 9 * block : 9 * block + 9] *= weights[:, joint, None, None]
    correctives[:, :, 18:] = 0.0
    return correctives


def _joint_regressor(vertices: np.ndarray, eye_of_vertex: np.ndarray) -> np.ndarray:
    """[5, V] sparse rows averaging vertex rings (global, neck, jaw) or an eyeball (eyes)."""
    head = eye_of_vertex < 0
    y, side = vertices[:, 1], np.abs(vertices[:, 0]) > 0.06
    members = [
        head & (np.abs(y + 0.09) < 0.008),  # global: ring low on the head
        head & (np.abs(y + 0.07) < 0.008),  # neck
        head & side & (np.abs(y + 0.02) < 0.01),  # jaw: both sides, near the ears
        eye_of_vertex == 0,
        eye_of_vertex == 1,
    ]
    return np.stack([m / m.sum() for m in members]).astype(np.float64)


def _skinning_weights(vertices: np.ndarray, eye_of_vertex: np.ndarray) -> np.ndarray:
    """[V, 5] smooth weights: lower front face on the jaw, bottom on the global joint, the
    rest of the head on the neck, each eyeball fully on its eye joint."""
    sigmoid = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    x, y, z = vertices.T
    jaw = sigmoid((-0.035 - y) / 0.008) * sigmoid(z / 0.015)
    root = sigmoid((-0.085 - y) / 0.006) * (1.0 - jaw)
    weights = np.stack([root, 1.0 - jaw - root, jaw, np.zeros_like(x), np.zeros_like(x)], axis=1)
    for eye in range(2):
        weights[eye_of_vertex == eye] = np.eye(5)[3 + eye]
    return weights


def _landmark_embedding(
    vertices: np.ndarray, faces: np.ndarray, eye_of_vertex: np.ndarray, rng: np.random.Generator,
    reserved_mediapipe: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """105 landmarks spread over the front of the face (farthest-point sampling of faces)."""
    centroids = vertices[faces].mean(axis=1)
    on_face = (eye_of_vertex[faces] < 0).all(axis=1) & (centroids[:, 2] > 0.45 * HEAD_RADII[2])
    on_face &= (centroids[:, 1] > -0.09) & (centroids[:, 1] < 0.06)
    candidates = np.flatnonzero(on_face)
    chosen = [candidates[rng.integers(len(candidates))]]
    distance = np.linalg.norm(centroids[candidates] - centroids[chosen[0]], axis=1)
    for _ in range(N_LANDMARKS - 1):
        chosen.append(candidates[np.argmax(distance)])
        distance = np.minimum(distance, np.linalg.norm(centroids[candidates] - centroids[chosen[-1]], axis=1))
    barycentric = rng.dirichlet([4.0, 4.0, 4.0], size=N_LANDMARKS)
    free = np.setdiff1d(np.arange(MEDIAPIPE_FACE_POINTS), reserved_mediapipe)
    return {
        "lmk_face_idx": np.array(chosen, dtype=np.int64),
        "lmk_b_coords": barycentric,
        "landmark_indices": rng.choice(free, size=N_LANDMARKS, replace=False).astype(np.int64),
    }


def _face_aligned_embedding(
    vertices: np.ndarray, faces: np.ndarray, eye_of_vertex: np.ndarray, face_landmarks: np.ndarray,
    reserved_mediapipe: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """105 MediaPipe face points spread over the face (farthest-point sampling from the nose
    tip), each embedded on the head surface straight behind it, once ``face_landmarks``
    ([478, 3] pixels) is moved and scaled so that its iris centres sit on the eyeballs' fronts."""
    aligned = _onto_eyes(np.asarray(face_landmarks, np.float64))
    free = np.setdiff1d(np.arange(MEDIAPIPE_FACE_POINTS), reserved_mediapipe)
    nose_tip = 1
    chosen = [nose_tip if nose_tip in free else int(free[0])]
    distance = np.linalg.norm(aligned[free] - aligned[chosen[0]], axis=1)
    for _ in range(N_LANDMARKS - 1):
        chosen.append(int(free[np.argmax(distance)]))
        distance = np.minimum(distance, np.linalg.norm(aligned[free] - aligned[chosen[-1]], axis=1))
    head_faces = np.flatnonzero((eye_of_vertex[faces] < 0).all(axis=1))
    face_idx, barycentric = _surface_behind(vertices, faces[head_faces], aligned[chosen, :2])
    return {
        "lmk_face_idx": head_faces[face_idx].astype(np.int64),
        "lmk_b_coords": barycentric,
        "landmark_indices": np.array(chosen, dtype=np.int64),
    }


def _onto_eyes(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe pixels (x right, y down, z away from the camera) -> FLAME space, scaled and
    moved so that the iris centres (468: the subject's right eye) meet the eyeballs' fronts."""
    flame_axes = landmarks * np.array([1.0, -1.0, -1.0])
    right_iris, left_iris = flame_axes[468], flame_axes[473]
    scale = np.linalg.norm(EYE_CENTRES[0, :2] - EYE_CENTRES[1, :2]) / np.linalg.norm((left_iris - right_iris)[:2])
    eyes_middle = EYE_CENTRES.mean(axis=0) + np.array([0.0, 0.0, EYE_RADIUS])
    return (flame_axes - (left_iris + right_iris) / 2) * scale + eyes_middle


def _surface_behind(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each [N, 2] (x, y) point, the frontmost face of ``faces`` [F, 3] that covers it seen
    along -z (or, off the mesh, the front-facing face nearest to it) and the point's
    barycentric coordinates there (clipped into the face): [N] face rows, [N, 3]."""
    corners = vertices[faces]  # [F, 3, 3]
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]
    area = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]  # > 0: facing +z
    front = area > 1e-12
    face_rows, coordinates = [], []
    for point in points:
        weights = np.stack([_cross_2d(b - point, c - point), _cross_2d(c - point, a - point),
                            _cross_2d(a - point, b - point)], axis=1) / np.where(front, area, 1.0)[:, None]  # fmt: skip
        inside = front & (weights >= 0).all(axis=1)
        if inside.any():
            depth = np.einsum("fc,fc->f", weights, corners[:, :, 2])
            row = int(np.flatnonzero(inside)[np.argmax(depth[inside])])
        else:
            centroid_distance = np.linalg.norm(corners[:, :, :2].mean(axis=1) - point, axis=1)
            row = int(np.flatnonzero(front)[np.argmin(centroid_distance[front])])
        clipped = np.clip(weights[row], 0.0, None)
        face_rows.append(row)
        coordinates.append(clipped / clipped.sum())
    return np.array(face_rows), np.array(coordinates)


def _cross_2d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
