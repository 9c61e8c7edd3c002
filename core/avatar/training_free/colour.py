"""Head colours: the photo sampled by projection where the mesh depth buffer sees a
vertex (the paper's eq. 5-6 with the photo as the feature map), mirrored across the
face's midline where it does not, and filled by push-pull diffusion over the LOD
hierarchy where neither works; then sharpened against the photo.

Sampling (finest level): a vertex's weight is its visibility (``visible_vertices``
against the mesh's own depth buffer) times a grazing-angle factor (only surfaces seen
almost edge-on, at the silhouette, are distrusted: any stricter and the source view
loses the sides of the nose and face) times how surely the portrait mask calls its
pixel "person" (a background pixel says nothing about the head). The mirror point
``(-x, y, z)`` (head space is left-right symmetric) is tested the same way and its
sample fills in where the own weight is below 1, and takes over gradually where the
surface is seen obliquely (:data:`MIRROR_PREFERRED_COSINE`): a grazing sample smears
the few pixels at the silhouette over a wide band of the far cheek, and a switch to the
mirror over the narrow grazing band drew a line down that cheek. The other side of the
face is lit differently, so mirrored colours are scaled by the own/mirror colour ratio
of the vertices seen well both ways, smoothed over the head (:func:`_mirror_gain`).

Push-pull (Gortler et al.'s hole filling, on the subdivision hierarchy): weighted colours
are pulled to coarser levels with the transposed subdivision operators, the control mesh
is solved for smooth colours (a screened Laplacian system honouring the known vertices),
and the result is pushed back down, each level keeping its own colours where their
support is full and taking the refined coarser colours elsewhere. The pulled colours of
a level are area averages of the finest samples, so every LOD gets colours filtered for
its own spacing.

Sharpening: splatting blurs (each pixel mixes several Gaussians); one Van Cittert step
against a render of the source view gives back most of the photo's detail
(:func:`sharpen_to_photo`).

Background: a Gaussian's colour must never come from the background (a dark or busy
background would smear onto the head, neck and shoulders). Every sampler reads the
photo as a :class:`PersonPhoto`: the person's pixels (the mask eroded past its mixed
edge) are kept and everything else is replaced by their push-pull extrapolation
(:func:`push_pull`), so a sample at or across the silhouette gets the nearest person
colours. Opacities still follow the soft mask, so the silhouette does not shrink, but
Gaussians large enough to reach well past it fade (:func:`silhouette_fade`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from core.avatar.training_free.rings import smoothstep
from core.avatar.training_free.sampling import sample_bilinear
from core.geometry.camera import Camera
from core.geometry.mesh import unique_edges
from core.geometry.subdivision import SparseOperator
from core.render import Gaussians, mesh_depth, render, visible_vertices
from core.render.kernels import host_backend

#: View-angle cosine below which a sample is ignored, and from which it is fully trusted.
GRAZING_COSINE = (0.0, 0.12)
#: Mask values over which a pixel goes from background to surely person.
MASK_PERSON = (0.3, 0.7)
#: Depth tolerance of the mirror point's visibility test (the mirror image of a vertex is
#: only near the surface: faces are not exactly symmetric), world units.
MIRROR_TOLERANCE = 0.04
#: View-angle cosine below which a vertex's colour comes increasingly from its mirror
#: image (when that is seen): all of it at grazing, none from here on. Wider, and the
#: sides of the face lose detail in the source view (sharpening follows the own share);
#: narrower, and an edge shows where the own samples end on a turned far cheek.
MIRROR_PREFERRED_COSINE = 0.3
#: View-angle cosine below which a vertex marked as possibly behind its pixel
#: (``sample_photo``'s ``behind``) takes only mirrored samples.
BEHIND_COSINE = 0.35
#: The mirror gain's grid (cells across the head's x and y), its smoothing (cells), the
#: summed sample confidence of a fully trusted cell, and its largest factor.
GAIN_GRID = 24
GAIN_SMOOTHING_CELLS = 1.5
GAIN_CELL_SUPPORT = 4.0
MAX_GAIN = 4.0
#: Pulled support at which a level keeps its own colour entirely.
FULL_SUPPORT = 0.6
#: Smoothness weight of the control mesh's colour solve (per edge, against weight 1 per
#: known vertex), and the tiny pull towards the mean colour that keeps it well posed.
SMOOTHNESS = 0.05
MEAN_PULL = 1e-4
#: Deblurring iterations of :func:`sharpen_to_photo`.
SHARPEN_ITERATIONS = 1
#: Mask value above which a pixel is person, and the erosion (in pixels of a 512 pixel
#: crop, scaled with the crop) that takes the mask's mixed edge pixels away.
PERSON_THRESHOLD = 0.5
PERSON_EROSION_AT_512 = 2.0
#: A Gaussian fades out as this many of its standard deviations reach past the mask's
#: edge by more than the slack (pixels of a 512 pixel crop, scaled with the crop).
SILHOUETTE_REACH = 3.0
SILHOUETTE_SLACK_AT_512 = 2.0
#: A pulled push-pull weight is the children's summed weight (a pyramid level has a
#: quarter of the pixels), capped at 1.
PULL_GAIN = 4.0


@dataclass(frozen=True)
class PhotoSamples:
    """The photo seen from the finest level's vertices.

    Attributes:
        colour: [N, 3] sampled colour (RGB in [0, 1]).
        weight: [N] confidence in [0, 1].
        direct: [N] in [0, 1], the confidence of the vertex's own sample as its colour
            (seen by the source camera, not obliquely, on the person): how far the photo's
            pixel at its projection is about this vertex (mirrored samples are not).
        mask: [N] portrait mask at each vertex's own projection.
        visible: [N] bool, seen by the source camera.
        depth: [H, W] the mesh's depth buffer in the source view (+inf where empty).
    """

    colour: np.ndarray
    weight: np.ndarray
    direct: np.ndarray
    mask: np.ndarray
    visible: np.ndarray
    depth: np.ndarray


def sample_photo(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    camera: Camera,
    photo: np.ndarray,
    mask: np.ndarray,
    behind: np.ndarray | None = None,
) -> PhotoSamples:
    """Sample ``photo`` [H, W, 3] float32 for ``vertices`` [N, 3] of the mesh ``faces``,
    with unit ``normals`` [N, 3] and the portrait ``mask`` [H, W] (see module docstring).
    ``behind`` [N] bool marks vertices whose pixel may show something behind them; seen
    more obliquely than :data:`BEHIND_COSINE`, they take only mirrored samples."""
    depth = mesh_depth(vertices, faces, camera)
    visible = visible_vertices(vertices, faces, camera, depth=depth)
    own_colour, own_weight, vertex_mask, cosine = _samples(vertices, normals, camera, photo, mask)
    own_weight *= visible if behind is None else visible & ~(behind & (cosine < BEHIND_COSINE))

    mirror = np.array([-1.0, 1.0, 1.0])
    mirrored = vertices * mirror
    mirror_colour, mirror_weight, _, _ = _samples(mirrored, normals * mirror, camera, photo, mask)
    mirror_weight *= visible_vertices(mirrored, faces, camera, MIRROR_TOLERANCE, depth=depth)
    mirror_colour *= _mirror_gain(vertices, own_colour, own_weight, mirror_colour, mirror_weight)

    own_share = own_weight * smoothstep(cosine / MIRROR_PREFERRED_COSINE)
    mirror_share = (1.0 - own_share) * mirror_weight
    share = own_share + mirror_share
    blended = own_share[:, None] * own_colour + mirror_share[:, None] * mirror_colour
    colour = np.where((share > 0)[:, None], blended / np.maximum(share, 1e-12)[:, None], own_colour)
    weight = own_weight + (1.0 - own_weight) * mirror_weight
    return PhotoSamples(colour, weight, own_share, vertex_mask, visible, depth)


def _mirror_gain(
    vertices: np.ndarray, own: np.ndarray, own_weight: np.ndarray, mirror: np.ndarray, mirror_weight: np.ndarray
) -> np.ndarray:
    """[N, 3] factors that give mirrored colours [N, 3] the lighting of the vertices'
    own side: the log ratio own/mirror of the vertices seen both ways (weights [N] each),
    averaged on a grid over head-space (x, y) (the two sides of the face fall in different
    cells), smoothed, push-pull filled and clamped to :data:`MAX_GAIN`. Ones when no
    vertex is seen both ways."""
    both = own_weight * mirror_weight
    if not (both > 0).any():
        return np.ones_like(own)
    limit = np.log(MAX_GAIN)
    ratio = np.clip(np.log((own + 1 / 255) / (mirror + 1 / 255)), -limit, limit)
    low = vertices[:, :2].min(axis=0)
    cell_size = max(float((vertices[:, :2].max(axis=0) - low).max()) / GAIN_GRID, 1e-12)
    position = (vertices[:, :2] - low) / cell_size  # grid coordinates, x along columns
    column, row = np.minimum(position.astype(int), GAIN_GRID - 1).T
    cell = row * GAIN_GRID + column
    cells = GAIN_GRID * GAIN_GRID
    support = np.bincount(cell, both, cells).reshape(GAIN_GRID, GAIN_GRID).astype(np.float32)
    sums = np.stack([np.bincount(cell, both * ratio[:, c], cells) for c in range(3)], axis=-1)
    sums = sums.reshape(GAIN_GRID, GAIN_GRID, 3).astype(np.float32)
    blur = (0, 0), GAIN_SMOOTHING_CELLS
    support, sums = cv2.GaussianBlur(support, *blur), cv2.GaussianBlur(sums, *blur)
    mean = sums / np.maximum(support, 1e-12)[..., None]
    filled = push_pull(mean, np.clip(support / GAIN_CELL_SUPPORT, 0.0, 1.0))
    return np.exp(np.clip(sample_bilinear(filled, position), -limit, limit)).astype(np.float64)


def _samples(
    points: np.ndarray, normals: np.ndarray, camera: Camera, photo: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Colour [N, 3], weight [N] (visibility not included), mask value [N] and view-angle
    cosine [N] of ``points`` with unit ``normals`` [N, 3]."""
    uv, _ = camera.project(points)
    towards_camera = camera.center - points
    towards_camera /= np.linalg.norm(towards_camera, axis=1, keepdims=True)
    cosine = (normals * towards_camera).sum(axis=1)
    low, high = GRAZING_COSINE
    person = sample_bilinear(mask, uv)
    weight = smoothstep((cosine - low) / (high - low)) * smoothstep(
        (person - MASK_PERSON[0]) / (MASK_PERSON[1] - MASK_PERSON[0])
    )
    return sample_bilinear(photo, uv).astype(np.float64), weight, person, cosine


def pull_levels(values: np.ndarray, weight: np.ndarray, steps: list[SparseOperator]) -> list[tuple]:
    """Weighted per-vertex ``values`` [N_L, C] of the finest level averaged down to every
    level, coarsest first: ``(weighted_values [N_l, C], weight [N_l])`` per level, where
    ``weighted_values / weight`` is the level's average and ``weight`` its support in [0, 1]
    (restriction by the transposed subdivision operators, normalised)."""
    pulled = [(values * weight[:, None], weight)]
    for step in reversed(steps):
        restrict = step.matrix.T.tocsr()
        coverage = np.asarray(restrict.sum(axis=1)).ravel()
        weighted_values, support = pulled[0]
        pulled.insert(0, (restrict @ weighted_values / coverage[:, None], restrict @ support / coverage))
    return pulled


def fill_levels(
    colour: np.ndarray, weight: np.ndarray, steps: list[SparseOperator], control_faces: np.ndarray
) -> list[np.ndarray]:
    """Colours of every level, control mesh first, from weighted finest-level colours.

    Args:
        colour: [N_L, C] values at the finest level.
        weight: [N_L] their confidence in [0, 1] (0: unknown).
        steps: the L subdivision operators, ``steps[l]`` maps level l to level l + 1.
        control_faces: [F_0, 3] the control mesh's faces (its Laplacian smooths the holes).

    Returns:
        L + 1 arrays [N_l, C]; every vertex has a value, known ones keep theirs.
    """
    pulled = pull_levels(colour, weight, steps)
    weighted_colour, support = pulled[0]
    levels = [_smooth_fill(weighted_colour, support, control_faces)]
    for step, (weighted_colour, support) in zip(steps, pulled[1:]):
        own = weighted_colour / np.maximum(support, 1e-12)[:, None]
        keep = np.clip(support / FULL_SUPPORT, 0.0, 1.0)[:, None]
        levels.append(keep * own + (1.0 - keep) * step(levels[-1]))
    return levels


def _smooth_fill(weighted_colour: np.ndarray, support: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, C] minimising sum support |c - known|^2 + SMOOTHNESS sum_edges |c_i - c_j|^2
    + MEAN_PULL |c - mean|^2, with ``known = weighted_colour / support``."""
    num = len(support)
    edges, _ = unique_edges(faces)
    adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num, num))
    adjacency = (adjacency + adjacency.T).tocsr()
    laplacian = sp.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    mean = weighted_colour.sum(axis=0) / max(support.sum(), 1e-12)
    system = (sp.diags(support + MEAN_PULL) + SMOOTHNESS * laplacian).tocsc()
    return spla.splu(system).solve(weighted_colour + MEAN_PULL * mean[None, :])


def sharpen_to_photo(
    gaussians: Gaussians, trust: np.ndarray, camera: Camera, photo: np.ndarray, person: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """[N, 3] colours of ``gaussians`` corrected so that their render matches ``photo``, and
    [H, W] the alpha of that render (how the Gaussians cover the source view; colours do not
    change it).

    Splatting blurs: each pixel mixes several Gaussians. Van Cittert iterations (add to
    each Gaussian the residual ``photo - render`` at its projection, times its trust)
    undo most of that blur in the source view. The residual only counts on the person's
    pixels: elsewhere the photo says nothing about the avatar. Trust fades with the
    photo's support, so sharpened and unsharpened Gaussians meet without a seam.

    Args:
        gaussians: the head's Gaussians (RGB features).
        trust: [N] in [0, 1], how far each Gaussian follows the residual (0: keeps its colour).
        camera: the source view.
        photo: [H, W, 3] float32, :attr:`PersonPhoto.image`.
        person: [H, W] bool, :attr:`PersonPhoto.person`.
    """
    colours = gaussians.features.numpy().astype(np.float32, copy=True)
    trusted = np.flatnonzero(trust > 0)
    uv = camera.project(gaussians.means.numpy().astype(np.float64)[trusted])[0]
    gain = trust[trusted, None].astype(np.float32)
    for _ in range(SHARPEN_ITERATIONS):
        current = Gaussians(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, torch.from_numpy(colours))
        out = render(current, camera, backend=host_backend(), background=0.0)
        alpha = out.alpha.numpy()
        residual = (alpha[..., None] * photo - out.features.numpy()) * person[..., None]  # photo minus the render over black
        colours[trusted] = np.clip(colours[trusted] + gain * sample_bilinear(residual, uv), 0.0, 1.0)
    return torch.from_numpy(colours), alpha


@dataclass(frozen=True)
class PersonPhoto:
    """The photo as every sampler reads it (see the module docstring).

    Attributes:
        image: [S, S, 3] float32, the photo on the person's pixels, their push-pull
            extrapolation elsewhere (the photo itself when there is no person).
        person: [S, S] bool, the person's pixels: the mask above :data:`PERSON_THRESHOLD`,
            eroded by :data:`PERSON_EROSION_AT_512` (scaled to the crop) so that pixels
            mixing person and background are out.
        inside: [S, S] float32 signed distance in pixels to the mask's edge (at
            :data:`PERSON_THRESHOLD`), positive on the person.
    """

    image: np.ndarray
    person: np.ndarray
    inside: np.ndarray


def person_photo(photo: np.ndarray, mask: np.ndarray) -> PersonPhoto:
    """``photo`` [S, S, 3] float32 with its portrait ``mask`` [S, S] made into a :class:`PersonPhoto`."""
    above = (mask > PERSON_THRESHOLD).astype(np.uint8)
    radius = max(1, round(PERSON_EROSION_AT_512 * mask.shape[0] / 512))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    person = cv2.erode(above, kernel) > 0
    inside = cv2.distanceTransform(above, cv2.DIST_L2, 3) - cv2.distanceTransform(1 - above, cv2.DIST_L2, 3)
    image = push_pull(photo, person.astype(np.float32)) if person.any() else photo
    return PersonPhoto(image, person, inside)


def silhouette_fade(inside: np.ndarray, sigma_px: np.ndarray, crop_size: int) -> np.ndarray:
    """[N] opacity factors in [0, 1] that keep Gaussians from showing past the mask's edge.

    A Gaussian of standard deviation ``sigma_px`` [N] (pixels) whose centre is ``inside``
    [N] pixels inside the edge (:attr:`PersonPhoto.inside` there) fades out as its reach
    of :data:`SILHOUETTE_REACH` deviations crosses the edge by more than
    :data:`SILHOUETTE_SLACK_AT_512` (scaled to ``crop_size``): coarse levels' large
    Gaussians would otherwise paint a halo around the person.
    """
    slack = SILHOUETTE_SLACK_AT_512 * crop_size / 512
    return smoothstep((inside + slack) / np.maximum(SILHOUETTE_REACH * sigma_px, 1e-6))


def push_pull(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32: ``values`` [H, W, 3] where ``weight`` [H, W] is 1, an extrapolation
    of the weighted values where it is 0, a blend in between.

    Gortler et al.'s push-pull on an image pyramid: weighted averages are pulled to ever
    coarser levels (a level's weight is its children's summed weight, capped at 1), then
    pushed back down, each level filling its gaps from the filled level above. ``weight``
    must be positive somewhere.
    """
    colour, confidence = values.astype(np.float32), np.clip(weight, 0.0, 1.0).astype(np.float32)
    mean = (colour * confidence[..., None]).sum(axis=(0, 1)) / confidence.sum()  # fills the coarsest level's gaps
    levels = [(colour, confidence)]
    while min(colour.shape[:2]) > 1:
        support = cv2.pyrDown(confidence)
        colour = cv2.pyrDown(colour * confidence[..., None]) / np.maximum(support, 1e-12)[..., None]
        confidence = np.minimum(PULL_GAIN * support, 1.0)
        levels.append((colour, confidence))
    filled = _blend(colour, confidence, np.broadcast_to(mean, colour.shape))
    for colour, confidence in reversed(levels[:-1]):
        height, width = confidence.shape
        filled = _blend(colour, confidence, cv2.pyrUp(filled, dstsize=(width, height)))
    return filled


def _blend(colour: np.ndarray, confidence: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """[H, W, 3] ``colour`` where ``confidence`` [H, W] is 1, ``fill`` [H, W, 3] where it is 0."""
    return confidence[..., None] * colour + (1.0 - confidence[..., None]) * fill
