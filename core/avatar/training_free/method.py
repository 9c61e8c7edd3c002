"""The ``training-free`` reconstruction: the paper's pipeline with measurements of the
photo in place of its learned parts.

    photo crop -> MediaPipe landmarks lifted to head space (the face mesh)
               -> completed head: cranium shell fitted row by row to the person mask's
                  silhouette (hair volume), neck, eyeballs, inner mouth (the control
                  mesh, about 1.3K vertices)
               -> Loop subdivision: LOD 0/1/2 = 1/2/3 steps, about 5K/20K/80K vertices,
                  one Gaussian per vertex (the paper's Sub#0/1/2 counts)
               -> colours by projection with depth-buffer visibility, mirrored and
                  push-pull filled where hidden (the back of the head from the photo's
                  hair pixels, so it keeps a hair texture), always from the person's
                  pixels (the photo bled past the eroded mask); opacities from the mask
                  at the silhouette
               -> shoulders from the mask minus what the head covers in the source view,
                  bending with the neck by their height
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.avatar.avatar import Avatar, HeadLod, HeadRig
from core.avatar.levels import LevelChain, subdivide
from core.avatar.training_free.colour import (
    PersonPhoto,
    fill_levels,
    person_photo,
    pull_levels,
    sample_photo,
    sharpen_to_photo,
    silhouette_fade,
)
from core.avatar.training_free.cranium import Ellipsoid, fit_cranium, join_face, shell_layout, shell_vertices
from core.avatar.training_free.eyes import build_eyes
from core.avatar.training_free.face_topology import (
    CHEEK_EXTREMES,
    NUM_MESH_POINTS,
    face_topology,
)
from core.avatar.training_free.hair import hidden_hair, widen_to_silhouette
from core.avatar.training_free.hair_mask import dark_outside_the_face, hair_mask
from core.avatar.training_free.head_mesh import PARTS, HeadMesh, assemble_head
from core.avatar.training_free.lifting import lift_landmarks
from core.avatar.training_free.mouth import build_mouth
from core.avatar.training_free.neck import build_neck
from core.avatar.training_free.openings import seen_through_openings
from core.avatar.training_free.rings import smoothstep
from core.avatar.training_free.sampling import sample_bilinear
from core.avatar.training_free.shoulders import shoulder_gaussians
from core.avatar.training_free.surface import flat_gaussian_shapes
from core.config import Config
from core.geometry.camera import Camera
from core.geometry.mesh import mean_edge_lengths, vertex_normals
from core.render import Gaussians
from core.tracking.photo import Portrait

NAME = "training-free"
#: LOD k is the control mesh subdivided FIRST_LOD_LEVEL + k times: the control mesh is one
#: step coarser than FLAME, so the LODs have the paper's Gaussian counts.
FIRST_LOD_LEVEL = 1
#: A Gaussian's standard deviation along the surface, in mean edge lengths at its vertex.
SIGMA_PER_EDGE = 0.7
#: Standard deviation along the normal relative to the one along the surface.
FLATNESS = 0.15
#: Larger Gaussians for parts that stretch when animated (the mouth opens).
PART_SIGMA_GAIN = {"mouth": 1.2}
#: Opacity of visible face vertices (face, eyes, mouth) whose pixel the mask calls
#: background (a face is never cut by its own silhouette; the shell and the neck are:
#: they only guess the hair's and the neck's extent, so they take the mask's opacity);
#: the mask value at which vertices become opaque.
OPACITY_FLOOR = 0.3
FLOORED_PARTS = ("face", "eyes", "mouth")
MASK_OPAQUE = 0.5
#: The hair prior's weight on the shell rises from 0 to HAIR_PRIOR_WEIGHT over this ring
#: progress (the back of the head); it is the photo's hair texture, so it may dominate
#: the push-pull fill, which would blur it.
HAIR_PRIOR_PROGRESS = (0.25, 0.55)
HAIR_PRIOR_WEIGHT = 0.8
#: Weight of the skin prior on the neck (its sides and back are never seen; the photo's
#: front of the neck is often collar).
SKIN_PRIOR_WEIGHT = 0.2
#: Face samples at least this confident count towards the skin colour.
SKIN_SAMPLE_WEIGHT = 0.9
#: A face vertex projecting outside the face oval onto a pixel not of the skin's colour
#: and darker than HAIR_DARKNESS times the skin's luminance may not be what the pixel
#: shows: the surface of a turned face runs past the far cheek's outline into the hair or
#: shadow behind it, whose samples drew a dark streak down that cheek in turned views.
#: Seen obliquely (:data:`~.colour.BEHIND_COSINE`), it takes the mirrored cheek's colour
#: instead. (Hair falling over the face inside the oval, and shaded skin, keep their own
#: colours: the driven head shows them.)
HAIR_DARKNESS = 0.5

#: Photo support (pulled sample confidence) over which a Gaussian's sharpening against
#: the photo fades in (a ramp, so no seam between sharpened and unsharpened Gaussians).
TRUSTED_SUPPORT = (0.3, 0.7)

#: ``report(fraction, message)``: progress, and the place to stop when cancelled.
Report = Callable[[float, str], None]


def reconstruct_training_free(portrait: Portrait, config: Config, provenance: dict, report: Report) -> Avatar:
    """An avatar of ``portrait`` (see the module docstring)."""
    report(0.0, "building the head")
    photo = person_photo(portrait.crop.image.astype(np.float32) / 255.0, portrait.mask)
    lifted = lift_landmarks(portrait.crop.landmarks, portrait.mask.shape[0], config.camera, config.flame.scale)
    points, camera = lifted.points, lifted.camera
    cranium = fit_cranium(points)
    shell = shell_vertices(points, cranium)
    hair = hair_mask(portrait.crop.image, portrait.mask, portrait.crop.landmarks)
    face = points[:NUM_MESH_POINTS]
    shell = widen_to_silhouette(shell, shell_layout().progress, face, cranium, camera, portrait.mask, hair)
    shell = join_face(shell, points)
    neck = build_neck(points, cranium, camera, portrait.mask)
    head = assemble_head(points, shell, neck, build_eyes(points), build_mouth(points))

    report(0.15, "subdividing")
    levels = subdivide(head.faces, len(head.vertices), FIRST_LOD_LEVEL + config.lod.levels, config.lod.scheme)
    vertices, part = [head.vertices], [np.eye(len(PARTS))[head.part]]
    for step in levels.steps:
        vertices.append(step(vertices[-1]))
        part.append(step(part[-1]))
    part = [weights.argmax(axis=1) for weights in part]

    report(0.3, "sampling colours")
    appearance = _appearance(head, levels, vertices[-1], part[-1], camera, photo, portrait, _HairSource(cranium, hair))

    report(0.6, "shaping the Gaussians")
    heads = [
        _head_lod(vertices[level], levels.faces[level], part[level], appearance, level, camera, photo)
        for level in range(FIRST_LOD_LEVEL, len(vertices))
    ]
    lods = tuple(head for head, _ in heads)

    report(0.85, "shoulders")
    head_alpha = heads[-1][1]  # the finest level's coverage of the source view
    shoulders = shoulder_gaussians(photo, portrait.mask, appearance.depth, head_alpha, portrait.crop.landmarks,
                                   neck.pivot, cranium.centre, camera, config.lod.shoulder_gaussians)  # fmt: skip
    rig = HeadRig(head.vertices, head.faces, head.binding, head.rigidity, points, neck.pivot, cranium.centre)
    return Avatar(rig, lods, shoulders, camera, NAME, provenance, FIRST_LOD_LEVEL, config.lod.scheme, levels,
                  shoulder_rigidity=neck.blend(shoulders.means.numpy().astype(np.float64)))  # fmt: skip


@dataclass(frozen=True)
class _HairSource:
    """Where the back of the head's hair texture comes from.

    Attributes:
        cranium: the fitted cranium (its coronal plane mirrors the back onto the front).
        mask: [S, S] bool, the photo's hair pixels (:func:`hair_mask`).
    """

    cranium: Ellipsoid
    mask: np.ndarray


@dataclass(frozen=True)
class _Appearance:
    """Colours and opacities of every level (control mesh first) and what the photo saw.

    Attributes:
        colours: per level [N_l, 3].
        opacities: per level [N_l].
        seen: per level [N_l], the photo's direct support (pulled confidence of the
            vertices' own samples, mirrored ones not counted) in [0, 1].
        depth: [S, S] the finest head mesh's depth buffer in the source view.
    """

    colours: list[np.ndarray]
    opacities: list[np.ndarray]
    seen: list[np.ndarray]
    depth: np.ndarray


def _appearance(
    head: HeadMesh,
    levels: LevelChain,
    finest: np.ndarray,
    part: np.ndarray,
    camera: Camera,
    photo: PersonPhoto,
    portrait: Portrait,
    hair: _HairSource,
) -> _Appearance:
    """Colours and opacities from ``photo``, for the finest level's vertices ``finest``
    [N, 3] of parts ``part`` [N], filled and averaged down to every level; the back of the
    head textured from ``hair``."""
    normals = vertex_normals(finest, levels.faces[-1])
    uv = camera.project(finest)[0]
    past_the_cheek = _past_the_cheek(part, uv, portrait)
    samples = sample_photo(finest, levels.faces[-1], normals, camera, photo.image, portrait.mask, past_the_cheek)
    under_jaw = (part == PARTS.index("shell")) & _below_jaw(portrait.crop.landmarks, uv, portrait.mask.shape)
    trusted = ~under_jaw * seen_through_openings(part, uv, portrait.crop.landmarks, len(portrait.mask))
    weight = samples.weight * trusted
    hair_prior = np.full((len(finest), 3), np.nan)
    shell = part == PARTS.index("shell")
    hair_prior[shell] = hidden_hair(finest[shell], hair.cranium, camera, photo.image, hair.mask)
    prior_colour, prior_weight = _priors(head, levels, samples.colour, weight, part, hair_prior)
    combined = weight + (1.0 - weight) * prior_weight
    colour = weight[:, None] * samples.colour + ((1.0 - weight) * prior_weight)[:, None] * prior_colour
    colour /= np.maximum(combined, 1e-12)[:, None]
    on_face = np.isin(part, [PARTS.index(name) for name in FLOORED_PARTS])
    # Shell and neck vertices follow the mask seen or not: where it says background, the
    # source view would show them through the (transparent) surface in front of them.
    opacity = np.maximum(OPACITY_FLOOR * on_face, smoothstep(samples.mask / MASK_OPAQUE))
    opacity[on_face & ~samples.visible] = 1.0
    opacity *= levels.refine(head.opacity, len(levels.steps))
    everywhere, direct = np.ones(len(finest)), samples.direct * trusted
    return _Appearance(
        colours=fill_levels(colour, combined, levels.steps, head.faces),
        opacities=[average[:, 0] for average, _ in pull_levels(opacity[:, None], everywhere, levels.steps)],
        # Only a vertex's own sample is about the photo's pixel at its projection: a hidden
        # vertex there would take the residual of the surface in front of it when sharpened.
        seen=[average[:, 0] for average, _ in pull_levels(direct[:, None], everywhere, levels.steps)],
        depth=samples.depth,
    )


def _head_lod(
    vertices: np.ndarray,
    faces: np.ndarray,
    part: np.ndarray,
    appearance: _Appearance,
    level: int,
    camera: Camera,
    photo: PersonPhoto,
) -> tuple[HeadLod, np.ndarray]:
    """The head's Gaussians on the vertices [N, 3] of one level: flat on the surface,
    sized by the local edge length, faded where they would reach past the silhouette,
    coloured and sharpened against the photo; and [S, S] their alpha in the source view."""
    gain = np.ones(len(vertices))
    for name, factor in PART_SIGMA_GAIN.items():
        gain[part == PARTS.index(name)] = factor
    sigma = SIGMA_PER_EDGE * gain * mean_edge_lengths(vertices, faces)
    quats, scales = flat_gaussian_shapes(vertex_normals(vertices, faces), sigma, FLATNESS)
    colours = np.clip(appearance.colours[level], 0.0, 1.0)
    uv, depth = camera.project(vertices)
    fade = silhouette_fade(sample_bilinear(photo.inside, uv), sigma * camera.K[0, 0] / depth, len(photo.inside))
    attributes = (vertices, quats, scales, appearance.opacities[level] * fade, colours)
    gaussians = Gaussians(*(torch.from_numpy(np.ascontiguousarray(values, np.float32)) for values in attributes))
    low, high = TRUSTED_SUPPORT
    trust = smoothstep((appearance.seen[level] - low) / (high - low))
    sharp, alpha = sharpen_to_photo(gaussians, trust, camera, photo.image, photo.person)
    return HeadLod(gaussians.quats, gaussians.scales, gaussians.opacities, sharp), alpha


def _past_the_cheek(part: np.ndarray, uv: np.ndarray, portrait: Portrait) -> np.ndarray:
    """[N] bool: face vertices (``part`` [N], projections ``uv`` [N, 2]) on a dark pixel
    outside the face oval (:func:`dark_outside_the_face`)."""
    dark = dark_outside_the_face(portrait.crop.image, portrait.crop.landmarks, HAIR_DARKNESS)
    return (part == PARTS.index("face")) & (sample_bilinear(dark.astype(np.float32), uv) >= 0.5)


def _below_jaw(landmark_pixels: np.ndarray, uv: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """[N] bool: ``uv`` [N, 2] lies below the jaw line in the photo (between the cheek
    extremes, under the face oval's lower half), where the photo shows neck and clothes."""
    height, width = image_size
    oval = face_topology().oval
    right, left = (int(np.flatnonzero(oval == index)[0]) for index in CHEEK_EXTREMES)
    jaw = landmark_pixels[oval[right : left + 1], :2]  # counter-clockwise: right cheek, chin, left cheek
    polygon = np.concatenate([jaw, [[jaw[-1, 0], height], [jaw[0, 0], height]]])
    region = np.zeros((height, width), np.uint8)
    cv2.fillPoly(region, [np.round(polygon).astype(np.int32)], 1)
    column, row = np.floor(uv).astype(int).T
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    return inside & (region[np.clip(row, 0, height - 1), np.clip(column, 0, width - 1)] == 1)


def _priors(
    head: HeadMesh,
    levels: LevelChain,
    colour: np.ndarray,
    weight: np.ndarray,
    part: np.ndarray,
    hair: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Prior colours [N, 3] and weights [N] at the finest level: the control mesh's (the
    mouth interior), the hair's texture on the back of the head, the skin's on the neck.

    Args:
        colour, weight: the finest level's photo samples and their confidence.
        part: [N] their parts.
        hair: [N, 3] hair colours for unseen shell vertices (:func:`hidden_hair`; NaN: none).
    """
    finest = len(levels.steps)
    prior_weight = levels.refine(head.prior_weight, finest)
    prior_colour = levels.refine(head.prior_colour * head.prior_weight[:, None], finest)
    prior_colour /= np.maximum(prior_weight, 1e-12)[:, None]

    on_shell = (part == PARTS.index("shell")) & np.isfinite(hair).all(axis=1)
    progress = np.zeros(len(head.vertices))
    progress[head.part == PARTS.index("shell")] = shell_layout().progress
    low, high = HAIR_PRIOR_PROGRESS
    hair_weight = HAIR_PRIOR_WEIGHT * smoothstep((levels.refine(progress, finest) - low) / (high - low)) * on_shell
    prior_colour = np.where((hair_weight > prior_weight)[:, None], hair, prior_colour)
    prior_weight = np.maximum(prior_weight, hair_weight)

    on_face = (part == PARTS.index("face")) & (weight >= SKIN_SAMPLE_WEIGHT)
    skin = np.median(colour[on_face], axis=0) if on_face.any() else np.median(colour, axis=0)
    on_neck = part == PARTS.index("neck")
    prior_colour[on_neck] = skin
    prior_weight[on_neck] = SKIN_PRIOR_WEIGHT
    return prior_colour, prior_weight
