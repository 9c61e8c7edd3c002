"""The training-free head's control mesh: face, shell, neck, eyes and mouth in one mesh.

Vertex order: the 468 face-mesh points (vertex i is landmark i), the shell, the neck,
the eye caps, the mouth bowl. The parts are separate components except the face and the
shell, which share the face oval; each part's triangles are wound with outward normals.

Animation data per control vertex (see :class:`core.avatar.avatar.HeadRig`):

* ``binding`` [V, 478]: a vertex's expression displacement as a combination of the
  landmarks' displacements. Face points follow their own landmark; shell vertices near
  the oval follow the oval (fading out towards the back, so an opening jaw drags the
  skin under the chin along); eye caps follow their iris centre; the mouth bowl's lower
  half follows the chin; the neck follows no landmark.
* ``rigidity`` [V]: how much of the head's rotation and translation a vertex follows
  (1 everywhere but down the neck).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.avatar.training_free.cranium import shell_layout
from core.avatar.training_free.eyes import EyeCaps
from core.avatar.training_free.face_topology import CHIN, NUM_LANDMARKS, NUM_MESH_POINTS, face_topology
from core.avatar.training_free.mouth import MouthBowl
from core.avatar.training_free.neck import Neck
from core.avatar.training_free.rings import smoothstep

#: Part names, in vertex order.
PARTS = ("face", "shell", "neck", "eyes", "mouth")
#: Shell vertices follow the face oval's displacement, fading to 0 at this ring progress.
SHELL_BINDING_PROGRESS = 0.3
#: Confidence of the mouth's prior colours: below the photo's, so that what a slightly
#: open mouth shows spreads over the hidden interior next to it.
MOUTH_PRIOR_WEIGHT = 0.8


@dataclass(frozen=True)
class HeadMesh:
    """The control mesh and its per-vertex data.

    Attributes:
        vertices: [V, 3] head-space positions.
        faces: [F, 3] int64.
        part: [V] int index into :data:`PARTS`.
        binding: [V, 478] CSR expression binding (see the module docstring).
        rigidity: [V] in [0, 1].
        opacity: [V] in [0, 1], a factor on the opacity from the photo (the neck fades out).
        prior_colour: [V, 3] colour to use where the photo shows nothing (mouth interior).
        prior_weight: [V] confidence of ``prior_colour`` (0: none).
    """

    vertices: np.ndarray
    faces: np.ndarray
    part: np.ndarray
    binding: sp.csr_matrix
    rigidity: np.ndarray
    opacity: np.ndarray
    prior_colour: np.ndarray
    prior_weight: np.ndarray


def assemble_head(points: np.ndarray, shell: np.ndarray, neck: Neck, eyes: EyeCaps, mouth: MouthBowl) -> HeadMesh:
    """One control mesh from its parts.

    Args:
        points: [478, 3] head-space landmarks (the first 468 are the face's vertices).
        shell: [S, 3] shell vertices in :func:`shell_layout` order.
    """
    topology, layout = face_topology(), shell_layout()
    oval = topology.oval
    counts = (NUM_MESH_POINTS, len(shell), len(neck.vertices), len(eyes.vertices), len(mouth.vertices))
    first = np.concatenate([[0], np.cumsum(counts)])
    shell_faces = np.where(
        layout.faces < len(oval), oval[np.minimum(layout.faces, len(oval) - 1)], layout.faces - len(oval) + first[1]
    )
    faces = np.concatenate(
        [topology.triangles, shell_faces, neck.faces + first[2], eyes.faces + first[3], mouth.faces + first[4]]
    )
    vertices = np.concatenate([points[:NUM_MESH_POINTS], shell, neck.vertices, eyes.vertices, mouth.vertices])
    part = np.repeat(np.arange(len(PARTS)), counts)

    rows, columns, weights = [np.arange(NUM_MESH_POINTS)], [np.arange(NUM_MESH_POINTS)], [np.ones(NUM_MESH_POINTS)]
    # Shell: the oval at the vertex's loop position, linearly between two oval points.
    position = layout.loop_parameter * len(oval)
    below = np.floor(position).astype(int) % len(oval)
    fraction = position - np.floor(position)
    fade = 1.0 - smoothstep(layout.progress / SHELL_BINDING_PROGRESS)
    shell_rows = first[1] + np.arange(len(shell))
    rows += [shell_rows, shell_rows]
    columns += [oval[below], oval[(below + 1) % len(oval)]]
    weights += [(1.0 - fraction) * fade, fraction * fade]
    rows.append(first[3] + np.arange(len(eyes.vertices)))
    columns.append(eyes.iris)
    weights.append(np.ones(len(eyes.vertices)))
    rows.append(first[4] + np.arange(len(mouth.vertices)))
    columns.append(np.full(len(mouth.vertices), CHIN))
    weights.append(mouth.jaw_weight)
    binding = sp.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
        shape=(len(vertices), NUM_LANDMARKS),
    )
    binding.eliminate_zeros()

    rigidity, opacity = np.ones(len(vertices)), np.ones(len(vertices))
    rigidity[first[2] : first[3]] = neck.rigidity
    opacity[first[2] : first[3]] = neck.opacity
    prior_colour = np.zeros((len(vertices), 3))
    prior_colour[first[4] :] = mouth.colour
    prior_weight = MOUTH_PRIOR_WEIGHT * (part == PARTS.index("mouth"))
    return HeadMesh(vertices, faces, part, binding, rigidity, opacity, prior_colour, prior_weight)
