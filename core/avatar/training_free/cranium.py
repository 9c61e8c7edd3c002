"""The cranium: an ellipsoid fitted to the face, and the shell that closes the head.

The face mesh is a disk bounded by the face oval. The shell is a cap of concentric
rings around the head's front axis (+z), from the oval (ring 0) back to a pole behind
the head; rings are joined by a "zipper" over a loop parameter ``u`` in [0, 1) that does
not depend on the photo, so the head's topology, and with it the Gaussian counts of
every level of detail, is the same for every avatar. Near the oval the rings follow the
face (its directions and radii seen from the cranium centre); further back they blend
into the ellipsoid, and their azimuths into an even spacing. Once the shell has its
final shape (fitted to the hair), :func:`join_face` bends its first rings onto the
face's own outward tangent at the oval, so face and shell meet without a crease (a fold
there shades as an edge and hides the cheek behind it).

Proportions are anthropometric ratios to the face's own size (the face height from
forehead top to chin and the width between the cheek extremes), since the photo shows
only the front of the head; the portrait silhouette later fits the shell's crown and
its width and depth row by row to the hair (:mod:`.hair`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from core.avatar.training_free.face_topology import CHEEK_EXTREMES, CHIN, FOREHEAD_TOP, face_topology
from core.avatar.training_free.rings import ring_parameter, smoothstep, zipper

#: Cranium half-width per face width (head breadth about 1.15 x the bizygomatic width).
HALF_WIDTH_PER_FACE_WIDTH = 0.58
#: Crown height above the forehead top, in face heights (forehead top to chin).
CROWN_ABOVE_FOREHEAD = 0.36
#: Ellipsoid centre above the eye corners, in face heights.
CENTRE_ABOVE_EYES = 0.1
#: Ellipsoid half-depth (glabella to the back of the head, halved), in face heights.
HALF_DEPTH_PER_FACE_HEIGHT = 0.56

#: Rings between the face oval and the back pole.
RINGS = 12
#: Vertices of the largest ring (the one around the head's middle).
EQUATOR_VERTICES = 46
#: Ring spacing grows towards the back: ring k sits at progress ((k / (RINGS + 1)) ** this).
RING_SPACING_POWER = 1.25
#: Polar angle of a typical face oval around the front axis, seen from the cranium centre
#: (sets the ring sizes of the fixed layout, not the geometry).
TYPICAL_OVAL_POLAR_DEG = 50.0
#: Progress over which the rings blend from the face's radii to the ellipsoid's.
RADIUS_BLEND_PROGRESS = 0.35
#: Progress at which ring azimuths are fully evenly spaced.
AZIMUTH_BLEND_PROGRESS = 0.6
#: Progress over which the shell goes from the face's tangent at the oval to its own shape
#: (rings 1 and 2, which the hair fit moves far enough out to fold the shell at the oval;
#: a longer blend keeps the shell from the hair between the face and the silhouette).
JOIN_PROGRESS = 0.12


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid in head space.

    Attributes:
        centre: [3].
        radii: [3] semi-axes along x, y, z.
    """

    centre: np.ndarray
    radii: np.ndarray

    def distance_along(self, directions: np.ndarray) -> np.ndarray:
        """[N] distance from the centre to the surface along unit ``directions`` [N, 3]."""
        return 1.0 / np.sqrt(((directions / self.radii) ** 2).sum(axis=1))


def fit_cranium(points: np.ndarray) -> Ellipsoid:
    """The cranium ellipsoid of a face given its [478, 3] head-space landmarks."""
    face_height = points[FOREHEAD_TOP, 1] - points[CHIN, 1]
    face_width = np.linalg.norm(points[CHEEK_EXTREMES[1]] - points[CHEEK_EXTREMES[0]])
    eye_height = points[[33, 133, 362, 263], 1].mean()
    centre_y = eye_height + CENTRE_ABOVE_EYES * face_height
    crown_y = points[FOREHEAD_TOP, 1] + CROWN_ABOVE_FOREHEAD * face_height
    half_depth = HALF_DEPTH_PER_FACE_HEIGHT * face_height
    centre = np.array([0.0, centre_y, points[FOREHEAD_TOP, 2] - half_depth])
    radii = np.array([HALF_WIDTH_PER_FACE_WIDTH * face_width, crown_y - centre_y, half_depth])
    return Ellipsoid(centre, radii)


@dataclass(frozen=True)
class ShellLayout:
    """The shell's fixed topology.

    Local vertex numbering: 0..O-1 are the face oval's vertices (ring 0, in loop order),
    then the rings' vertices ring by ring, then the pole.

    Attributes:
        faces: [F, 3] local indices, wound like the face mesh (outward normals).
        progress: [S] for each shell vertex (not the oval): 0 at the oval, 1 at the pole.
        loop_parameter: [S] position along the rings in [0, 1) (oval vertex i is at i / O).
    """

    faces: np.ndarray
    progress: np.ndarray
    loop_parameter: np.ndarray

    @property
    def num_vertices(self) -> int:
        """Shell vertices, the oval excluded."""
        return len(self.progress)


@functools.lru_cache(maxsize=1)
def shell_layout() -> ShellLayout:
    """The shell topology (built once per process)."""
    num_oval = len(face_topology().oval)
    ring_progress = (np.arange(1, RINGS + 1) / (RINGS + 1)) ** RING_SPACING_POWER
    typical_polar = np.radians(TYPICAL_OVAL_POLAR_DEG)
    polar = typical_polar + (np.pi - typical_polar) * ring_progress
    counts = np.maximum(6, np.rint(EQUATOR_VERTICES * np.sin(polar))).astype(int)

    faces, progress, parameter = [], [], []
    inner = np.arange(num_oval)
    inner_u = inner / num_oval
    first = num_oval
    for count, ring_s in zip(counts, ring_progress):
        outer = first + np.arange(count)
        outer_u = ring_parameter(count)
        faces.extend(zipper(inner, inner_u, outer, outer_u))
        progress.extend([ring_s] * count)
        parameter.extend(outer_u)
        inner, inner_u, first = outer, outer_u, first + count
    pole = first
    faces.extend((inner[(i + 1) % len(inner)], inner[i], pole) for i in range(len(inner)))
    progress.append(1.0)
    parameter.append(0.0)
    return ShellLayout(np.array(faces, dtype=np.int64), np.array(progress), np.array(parameter))


def shell_vertices(points: np.ndarray, cranium: Ellipsoid) -> np.ndarray:
    """[S, 3] head-space positions of the shell vertices (:func:`shell_layout` order).

    Args:
        points: [478, 3] head-space landmarks (the oval's are ring 0).
        cranium: the fitted ellipsoid.
    """
    layout = shell_layout()
    oval = points[face_topology().oval] - cranium.centre  # [O, 3]
    radius = np.linalg.norm(oval, axis=1)
    direction = oval / radius[:, None]
    polar = np.arccos(np.clip(direction[:, 2], -1.0, 1.0))
    azimuth = np.unwrap(np.arctan2(direction[:, 1], direction[:, 0]))  # rising: the oval runs counter-clockwise

    u, s = layout.loop_parameter, layout.progress
    position = u * len(oval)
    oval_polar = _interpolate_loop(polar, position)
    oval_radius = _interpolate_loop(radius, position)
    oval_azimuth = _interpolate_loop(np.append(azimuth, azimuth[0] + 2 * np.pi), position, closed=False)
    even_azimuth = azimuth[0] + 2 * np.pi * u
    ring_azimuth = oval_azimuth + (even_azimuth - oval_azimuth) * smoothstep(s / AZIMUTH_BLEND_PROGRESS)
    ring_polar = oval_polar + (np.pi - oval_polar) * s
    ring_direction = np.column_stack(
        [np.sin(ring_polar) * np.cos(ring_azimuth), np.sin(ring_polar) * np.sin(ring_azimuth), np.cos(ring_polar)]
    )
    blend = smoothstep(s / RADIUS_BLEND_PROGRESS)
    ring_radius = oval_radius + (cranium.distance_along(ring_direction) - oval_radius) * blend
    return cranium.centre + ring_radius[:, None] * ring_direction


def _interpolate_loop(values: np.ndarray, position: np.ndarray, closed: bool = True) -> np.ndarray:
    """Linear interpolation of per-vertex ``values`` of a loop at fractional indices ``position``.

    ``closed``: the loop wraps (values [O]); otherwise ``values`` [O + 1] repeats the first
    vertex at the end (for quantities that do not wrap, such as unwrapped angles).
    """
    table = np.append(values, values[0]) if closed else values
    return np.interp(position, np.arange(len(table)), table)


def join_face(shell: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[S, 3] ``shell`` (:func:`shell_layout` order) leaving the face oval along the face.

    A shell vertex at ring progress ``s`` and loop parameter ``u`` moves from ``shell``
    towards the point as far from the oval (at ``u``) but on the face's outward tangent
    there, fully at ``s = 0`` and not at all from :data:`JOIN_PROGRESS` on (a smoothstep,
    so the shell's direction at the oval is the face's: no crease at any level of detail).

    Args:
        shell: [S, 3] head-space shell vertices.
        points: [478, 3] head-space landmarks (the face mesh).
    """
    layout = shell_layout()
    oval = points[face_topology().oval]
    tangent = _outward_tangents(points)
    position = layout.loop_parameter * len(oval)
    start = np.column_stack([_interpolate_loop(oval[:, axis], position) for axis in range(3)])
    direction = np.column_stack([_interpolate_loop(tangent[:, axis], position) for axis in range(3)])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    on_tangent = start + np.linalg.norm(shell - start, axis=1, keepdims=True) * direction
    weight = smoothstep(layout.progress / JOIN_PROGRESS)[:, None]
    return on_tangent + (shell - on_tangent) * weight


def _outward_tangents(points: np.ndarray) -> np.ndarray:
    """[O, 3] unit directions in which the face mesh leaves each face-oval vertex: away from
    its inner neighbours, across the oval (the oval's own direction projected out)."""
    topology = face_topology()
    oval = topology.oval
    position = np.full(len(points), -1)
    position[oval] = np.arange(len(oval))
    tangents = np.zeros((len(oval), 3))
    for a, b in ((0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)):
        on_oval, inner = topology.triangles[:, a], topology.triangles[:, b]
        pairs = (position[on_oval] >= 0) & (position[inner] < 0)
        np.add.at(tangents, position[on_oval[pairs]], points[on_oval[pairs]] - points[inner[pairs]])
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    along = points[np.roll(oval, -1)] - points[np.roll(oval, 1)]
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    tangents -= (tangents * along).sum(axis=1, keepdims=True) * along
    return tangents / np.linalg.norm(tangents, axis=1, keepdims=True)
