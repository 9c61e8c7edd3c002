"""Issue 15: one continuous surface from the face to the skull shell, with no seam at the
face oval in any LOD: no crease where the shell leaves the oval (a fold shaded as an
edge, hiding the cheek behind it) and no colour step across the oval on the cheeks in
the source view or turned views (mirrored colours of the other, differently lit cheek
and grazing samples smeared over the far cheek drew a line from temple to jaw), and no
dark streak on the far cheek of a turned face (the face's surface runs past the photo's
cheek outline into the hair behind it)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from core.avatar import reconstruct
from core.avatar.training_free.cranium import shell_layout
from core.avatar.training_free.face_topology import CHEEK_EXTREMES, CHIN, FOREHEAD_TOP, NUM_MESH_POINTS, face_topology
from core.avatar.training_free.sampling import sample_bilinear
from core.avatar.view import View, render_view
from core.config import load_config
from core.geometry.mesh import vertex_normals
from core.render import Gaussians, mesh_depth, render, visible_vertices
from core.tracking.photo import portrait_from_image, prepare_portrait
from core.tracking.sources import open_source

CONFIG = load_config("paper")
#: Largest angle between the normals of a face and a shell triangle sharing an oval edge
#: on the control mesh, and its factor per subdivision step (each step about halves a
#: crease). Old code, control mesh and LOD 0-2: 37-50, 18-25, 9-12, 4.5-7 degrees (the
#: hair fit pulled the first shell rings out from the face); now 14-18, 8-11, 5-7, 3-4.
MAX_CREASE_DEG = 30.0
CREASE_PER_LEVEL = 0.55
#: A face vertex facing the source camera at least this much (normal . view) must not be
#: hidden by the shell (old and new code: none is).
FACING = 0.3
#: Oval vertices on either side of each cheek extreme that make the cheek segments.
CHEEK_HALF_SPAN = 4
#: Curve points per oval edge, and the offsets (pixels of the 512 pixel crop) of the
#: samples across the oval and of the two reference curves inside the face.
POINTS_PER_EDGE = 8
ACROSS_PX = 3.0
INNER_PX = (3.0, 9.0)
#: Alpha from which a render pixel counts as covered by the head.
COVERED = 0.99
#: The step across the oval may be at most this many times the step between the inner curves.
MAX_STEP_RATIO = 1.5
YAWS = (-30.0, -15.0, 0.0, 15.0, 30.0)
#: The far cheek's band in a turned view: face pixels between these depths inside the
#: turned face's oval (face heights), below the eyes; "dark" is below this share of the
#: band's median luminance, and at most MAX_DARK_SHARE of the band may be.
CHEEK_BAND_FACE_HEIGHTS = (0.02, 0.12)
DARK_LUMINANCE = 0.6
MAX_DARK_SHARE = 0.01


@functools.cache
def _reconstruction(samples_dir, name: str):
    """(portrait, avatar) of a sample photo, made once per run."""
    portrait = prepare_portrait(samples_dir / "photos" / f"{name}.jpg", CONFIG.tracking)
    return portrait, reconstruct(portrait, config=CONFIG)


def _triangle_parts(avatar) -> list[np.ndarray]:
    """Per level of the avatar's subdivision chain (control mesh first): [F_l] part of each
    triangle, 0 face, 1 shell, 2 anything else (a triangle's four children keep its part)."""
    counts = (len(face_topology().triangles), len(shell_layout().faces))
    part = np.full(len(avatar.levels.faces[0]), 2)
    part[: counts[0]] = 0
    part[counts[0] : sum(counts)] = 1
    parts = [part]
    for _ in avatar.levels.steps:
        parts.append(np.repeat(parts[-1], 4))
    return parts


def _levels(avatar) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vertices [N_l, 3], faces [F_l, 3]) of every level of the neutral head."""
    vertices, levels = avatar.rig.vertices.astype(np.float64), []
    for level, faces in enumerate(avatar.levels.faces):
        levels.append((vertices, faces))
        if level < len(avatar.levels.steps):
            vertices = avatar.levels.steps[level](vertices)
    return levels


def _crease_angles(vertices: np.ndarray, faces: np.ndarray, part: np.ndarray) -> np.ndarray:
    """[E] degrees between the normals of a face and a shell triangle (``part`` [F]) that
    share an edge (the face oval's edges at this level)."""
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    triangle = np.tile(np.arange(len(faces)), 3)
    order = np.lexsort(edges.T[::-1])
    edges, triangle = edges[order], triangle[order]
    shared = (edges[1:] == edges[:-1]).all(axis=1)
    first, second = triangle[:-1][shared], triangle[1:][shared]
    seam = (part[first] == 0) & (part[second] == 1) | (part[first] == 1) & (part[second] == 0)
    cosine = (normals[first[seam]] * normals[second[seam]]).sum(axis=1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


@pytest.mark.samples
@pytest.mark.parametrize("name", ["woman_veil_painting", "mona_lisa", "einstein", "man_bw_2048"])
def test_face_and_shell_meet_without_a_crease(samples_dir, name):
    _, avatar = _reconstruction(samples_dir, name)
    camera = avatar.camera()
    worst, hidden = [], []
    for (vertices, faces), part in zip(_levels(avatar), _triangle_parts(avatar)):
        worst.append(float(_crease_angles(vertices, faces, part).max()))
        normals = vertex_normals(vertices, faces)
        towards = camera.center - vertices
        towards /= np.linalg.norm(towards, axis=1, keepdims=True)
        on_face = np.zeros(len(vertices), bool)
        on_face[faces[part == 0]] = True
        facing = on_face & ((normals * towards).sum(axis=1) > FACING)
        # The shell must not hide the face (the nose rightly hides some of a turned face).
        seen = [visible_vertices(vertices, faces[part <= last], camera) for last in (0, 1)]
        hidden.append(int((facing & seen[0] & ~seen[1]).sum()))
    print(f"\n{name}: largest crease per level {np.round(worst, 1).tolist()} deg, face vertices hidden {hidden}")
    assert all(angle < MAX_CREASE_DEG * CREASE_PER_LEVEL**level for level, angle in enumerate(worst))
    assert max(hidden) == 0


def _cheek_curve(avatar, lod: int) -> np.ndarray:
    """[P, 3] points along the face oval's two cheek segments (the oval vertices around
    the cheek extremes, densely interpolated) at ``lod`` of the neutral head."""
    oval = face_topology().oval
    # Subdivision keeps a coarser level's vertices first: the oval's ids hold at every level.
    means = avatar.head_means(lod).numpy().astype(np.float64)
    points = []
    for extreme in CHEEK_EXTREMES:
        centre = int(np.flatnonzero(oval == extreme)[0])
        segment = means[oval[np.arange(centre - CHEEK_HALF_SPAN, centre + CHEEK_HALF_SPAN + 1) % len(oval)]]
        steps = np.linspace(0.0, 1.0, POINTS_PER_EDGE, endpoint=False)[:, None, None]
        points.append((segment[:-1] + steps * (segment[1:] - segment[:-1])).transpose(1, 0, 2).reshape(-1, 3))
    return np.concatenate(points)


def _steps(image: np.ndarray, uv: np.ndarray, normal: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour steps [P] of ``image`` [H, W, 3] across a curve ``uv`` [P, 2] (3 px out vs
    3 px in along its outward unit ``normal`` [P, 2]) and [P] between the curves 3 and 9 px
    inside, the offsets times ``scale``."""
    offsets = (ACROSS_PX, -ACROSS_PX, -INNER_PX[0], -INNER_PX[1])
    colour = [sample_bilinear(image, uv + scale * offset * normal) for offset in offsets]
    return np.abs(colour[0] - colour[1]).sum(axis=1), np.abs(colour[2] - colour[3]).sum(axis=1)


def _projected_curve(avatar, lod: int, camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cheek curve (:func:`_cheek_curve`) through ``camera``: pixels [P, 2], outward
    unit image normals [P, 2] and [P] bool, seen (not behind the head's surface)."""
    curve = _cheek_curve(avatar, lod)
    vertices, faces = _levels(avatar)[avatar.first_level + lod]
    seen = visible_vertices(curve, faces, camera, depth=mesh_depth(vertices, faces, camera))
    uv = camera.project(curve)[0]
    tangent = np.gradient(uv, axis=0)
    normal = np.column_stack([tangent[:, 1], -tangent[:, 0]]) / np.linalg.norm(tangent, axis=1, keepdims=True)
    centre = camera.project(vertices[:NUM_MESH_POINTS])[0].mean(axis=0)
    normal *= np.sign(((uv - centre) * normal).sum(axis=1, keepdims=True))  # away from the face
    return uv, normal, seen


def _smooth_in_photo(avatar, portrait, lod: int) -> np.ndarray:
    """[P] bool: the photo shows no edge across the cheek curve there (the skin goes on past
    the face oval): a step in a render there is a seam, not the photo's face outline."""
    uv, normal, _ = _projected_curve(avatar, lod, avatar.camera())
    photo = portrait.crop.image.astype(np.float32) / 255.0
    across, inside = _steps(photo, uv, normal, avatar.camera().width / 512)
    return across <= MAX_STEP_RATIO * np.median(inside)


def _seam_steps(avatar, lod: int, yaw: float, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour steps across the cheek curve and between the inner curves (:func:`_steps`) at
    the curve points ``where`` [P] bool that a render of the head's Gaussians at ``yaw``
    shows (the shoulder sheet, which fills the person around the head in the source view,
    is not part of the face-shell surface)."""
    camera = avatar.camera(yaw_deg=yaw)
    head = avatar.lods[lod]
    gaussians = Gaussians(avatar.head_means(lod), head.quats, head.scales, head.opacities, head.features[:, :3])
    out = render(gaussians, camera, backend="cpu", background=np.ones(3, np.float32))
    uv, normal, seen = _projected_curve(avatar, lod, camera)
    scale = camera.width / 512
    alpha = out.alpha.numpy()
    outermost = (ACROSS_PX, -INNER_PX[1])
    covered = np.all([sample_bilinear(alpha, uv + scale * offset * normal) >= COVERED for offset in outermost], axis=0)
    keep = where & seen & covered
    return _steps(out.features.numpy()[..., :3], uv[keep], normal[keep], scale)


@pytest.mark.samples
@pytest.mark.parametrize("name", ["mona_lisa"])
def test_no_colour_step_across_the_cheeks_oval(samples_dir, name):
    """Old code: up to 2.8 (LOD 1, yaw -30: the far cheek's mirrored colours of the lit
    cheek); now at most 1.35. woman_veil_painting is not measured: on her far cheek the
    oval runs between the face's hidden band (mirrored colours) and the dark hair of the
    shell, an edge in old and new code alike (2-3); her seam was at the photo's cheek
    silhouette, where own and mirrored samples met."""
    portrait, avatar = _reconstruction(samples_dir, name)
    ratios = {}
    for lod in range(avatar.num_lods):
        where = _smooth_in_photo(avatar, portrait, lod)
        for yaw in YAWS:
            across, inside = _seam_steps(avatar, lod, yaw, where)
            ratios[lod, yaw] = float(np.median(across) / max(np.median(inside), 1e-6))
    print(f"\n{name}: step across the cheek oval / step inside the face, per (LOD, yaw):")
    print("  " + ", ".join(f"{key}: {value:.2f}" for key, value in ratios.items()))
    assert max(ratios.values()) <= MAX_STEP_RATIO


def _cheek_band(avatar, camera) -> np.ndarray:
    """[H, W] bool: the band just inside the face oval, below the eyes, as ``camera`` sees
    the neutral avatar (see :data:`CHEEK_BAND_FACE_HEIGHTS`)."""
    uv = camera.project(avatar.rig.landmarks.astype(np.float64))[0]
    face = np.zeros((camera.height, camera.width), np.uint8)
    cv2.fillPoly(face, [np.round(uv[face_topology().oval]).astype(np.int32)], 1)
    face_height = uv[CHIN, 1] - uv[FOREHEAD_TOP, 1]
    outer, inner = (
        cv2.erode(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(depth * face_height) + 1,) * 2))
        for depth in CHEEK_BAND_FACE_HEIGHTS
    )
    below_eyes = np.arange(camera.height)[:, None] > uv[[33, 263], 1].mean()
    return (outer > 0) & (inner == 0) & below_eyes


@pytest.mark.samples
def test_no_dark_streak_on_a_turned_faces_far_cheek(samples_dir):
    """The busy-background clip's first frame shows a face turned to its right, with dark
    hair right behind the far cheek's outline. Turned 30 degrees to show that cheek, its
    band held a dark streak: old code 3.7 % of the band's pixels, now none."""
    with open_source(samples_dir / "videos" / "talking_busy_background.mp4") as source:
        frame = next(iter(source))
    avatar = reconstruct(portrait_from_image(frame.rgb, "busy", CONFIG.tracking), config=CONFIG)
    camera = avatar.camera(yaw_deg=30.0)
    image = np.asarray(render_view(avatar, View(camera, 1, background=(1.0, 1.0, 1.0)), None, "cpu"))
    luminance = image[..., :3] @ np.array([0.299, 0.587, 0.114])
    band = _cheek_band(avatar, camera)
    dark = band & (luminance < DARK_LUMINANCE * np.median(luminance[band]))
    print(f"\ndark pixels on the far cheek: {dark.sum()} of {band.sum()}")
    assert dark.sum() <= MAX_DARK_SHARE * band.sum()
