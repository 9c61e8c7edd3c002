"""The geometry path of the OMG-Avatar release, from FLAME coefficients and cameras to what its
Gaussian generators consume, composed from the single-purpose modules:

* source mesh: FLAME(source shape, expression, pose, eyes), no offsets (``core.flame.release``);
* target mesh: FLAME(source shape, target expression, pose, eyes, learned offsets);
* both subdivided to level ``l`` (``core.geometry.release_subdivision``): the head Gaussians sit
  at the target's level-``l`` vertices;
* the source's level-``l`` vertices projected with the source camera
  (``core.geometry.release_camera``): normalised coordinates for plane sampling
  (``core.model.projection``) and NDC for the occlusion test;
* the depth map of the source's level-``l`` mesh (level-1 faces above level 0, the release's
  quirk; ``core.render.release_zbuffer``), normalised, the occlusion test and the shoulder
  plane's mask (``core.model.occlusion``);
* the face-only depth maps (neck and boundary faces removed) of the level-0 meshes, which the
  release computes but does not feed to the Gaussians.

Shapes: B batch, V_l vertices of level l, 512 the depth map's side, 296 the plane grid's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.flame.release import ReleaseFlame
from core.geometry.release_camera import RELEASE_IMAGE_SIZE, project_release
from core.geometry.release_subdivision import ReleaseSubdivision
from core.model.occlusion import PLANE_SIZE, faces_without_vertices, normalized_depth, occluded_vertices, plane_mask
from core.render.release_zbuffer import release_zbuffer


@dataclass(frozen=True)
class FlamePose:
    """One batch of the release's FLAME coefficients.

    Attributes:
        shape: [B, 300]; expression: [B, 100];
        pose: [B, 6] global rotation then jaw; eyes: [B, 6] left then right eye (axis-angle).
    """

    shape: Tensor
    expression: Tensor
    pose: Tensor
    eyes: Tensor


@dataclass(frozen=True)
class SourceView:
    """The source mesh at one level as the source camera sees it.

    Attributes:
        points: [B, V_l, 3] subdivided source vertices (world).
        n_coords: [B, V_l, 2] normalised image coordinates, clamped to [0, 1].
        ndc: [B, V_l, 3] NDC (unmodified).
        depth_map: [B, 1, 512, 512] normalised depth of the source mesh.
        occluded: [B, V_l] bool, True = occluded or off the image.
        plane_mask: [B, 296, 296, 1] shoulder-plane background mask.
    """

    points: Tensor
    n_coords: Tensor
    ndc: Tensor
    depth_map: Tensor
    occluded: Tensor
    plane_mask: Tensor


class ReleaseGeometry:
    """FLAME, the template topology and its levels, as the release combines them.

    Args:
        flame: FLAME in the release's convention.
        template_faces: [F, 3] the topology (``head_template_mesh.obj``'s faces).
        neck_vertices: vertices whose faces the face-only meshes drop (``neck`` + ``boundary``).
        levels: subdivision levels above 0.
    """

    def __init__(
        self, flame: ReleaseFlame, template_faces: np.ndarray, neck_vertices: np.ndarray, levels: int = 2
    ) -> None:
        self.flame = flame
        self.subdivision = ReleaseSubdivision(template_faces, flame.num_vertices, levels)
        self.face_only_faces = faces_without_vertices(template_faces, neck_vertices)

    def mesh(self, coefficients: FlamePose, offsets: Tensor | None = None) -> Tensor:
        """[B, V_0, 3] world vertices; ``offsets`` [B, V_0, 3] in FLAME metres (the target's)."""
        c = coefficients
        return self.flame(c.shape, c.expression, c.pose, c.eyes, offsets)

    def subdivide(self, values: Tensor, level: int) -> Tensor:
        """[B, V_0, C] vertices or features -> [B, V_level, C]."""
        return self.subdivision.refine(values, level)

    def source_view(self, source_points: Tensor, transform: Tensor, level: int) -> SourceView:
        """Projection, depth map, occlusion and plane mask of the level-0 source mesh
        ``source_points`` [B, V_0, 3] subdivided to ``level``, seen by ``transform`` [B, 3, 4]."""
        points = self.subdivide(source_points, level)
        n_coords, ndc = project_release(points, transform)
        depth_map = self.depth_map(points, self.subdivision.faces(level), transform)
        occluded = occluded_vertices(ndc, depth_map)
        return SourceView(points, n_coords, ndc, depth_map, occluded, plane_mask(depth_map, PLANE_SIZE))

    def face_depth_map(self, points: Tensor, transform: Tensor) -> Tensor:
        """[B, 1, 512, 512] normalised depth of a level-0 mesh without its neck faces."""
        return self.depth_map(points, self.face_only_faces, transform)

    @staticmethod
    def depth_map(points: Tensor, faces: np.ndarray, transform: Tensor) -> Tensor:
        """[B, 1, 512, 512] normalised depth of ``points`` [B, V, 3] with ``faces`` [F, 3]."""
        zbuffer = release_zbuffer(points, torch.as_tensor(faces), transform, RELEASE_IMAGE_SIZE)
        return normalized_depth(zbuffer)
