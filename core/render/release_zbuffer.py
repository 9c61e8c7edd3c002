"""The depth buffer the OMG-Avatar release draws with pytorch3d, reproduced in torch.

The release rasterises meshes with ``MeshRasterizer`` (``FoVPerspectiveCameras`` from its
``[R | T]`` camera, fov ``2 atan(1 / 12)``, near 0.01, far 100, 512 x 512, blur 0, one face per
pixel, perspective-correct barycentrics, no culling). Its occlusion test compares depths whose
spread is tiny, so this module follows pytorch3d's arithmetic step by step in float32 (the
naive CPU kernel's order of operations) rather than our :mod:`core.render.zbuffer` rules
(inclusive edges, float64):

* vertices: world -> view by the 4x4 row-vector matrix ``[[R, 0], [T, 1]]``, then view ->
  NDC by the transposed FoV perspective matrix (built in float32 from the fov in degrees, as
  pytorch3d does), divided by w; x, y are pytorch3d NDC (+x left, +y up), z the view depth;
* pixel ``(row, col)`` is the NDC point ``(1 - (2 col + 1) / W, 1 - (2 row + 1) / H)``, the
  centre of the pixel (row 0 at the top, column 0 at the left of the image);
* faces with a vertex at z < 1e-8 or a screen area within +-1e-8 are skipped;
* a pixel is covered when its centre is inside the face's bounding box and all three
  perspective-corrected barycentrics are > 0 (strictly: edges are not covered); its depth is
  the barycentric interpolation of the vertices' view depths (skipped when negative);
* the nearest covering face wins (a tie between faces keeps the lower face index, which
  gives the same depth); uncovered pixels hold -1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from core.geometry.release_camera import RELEASE_FOCAL, RELEASE_IMAGE_SIZE, RELEASE_ZFAR, RELEASE_ZNEAR

EPSILON = 1e-8  # pytorch3d's kEpsilon (a double)
EMPTY = -1.0  # depth of uncovered pixels
_PAIRS_PER_CHUNK = 1 << 20  # (pixel, face) pairs evaluated at once (bounds the memory)


def fov_perspective(
    focal: float = RELEASE_FOCAL, znear: float = RELEASE_ZNEAR, zfar: float = RELEASE_ZFAR,
    device: torch.device | str = "cpu",
) -> Tensor:  # fmt: skip
    """[4, 4] float32 column-vector projection of pytorch3d's ``FoVPerspectiveCameras`` for a
    normalised focal length (fov ``2 atan(1 / focal)`` in degrees, square pixels), computed in
    float32 as pytorch3d does (so ``[0, 0]`` is not exactly ``focal``)."""
    fov_degrees = torch.tensor([2 * math.atan(1.0 / focal) * 180 / math.pi], dtype=torch.float32, device=device)
    near = torch.tensor([znear], dtype=torch.float32, device=device)
    far = torch.tensor([zfar], dtype=torch.float32, device=device)
    half_height = torch.tan((math.pi / 180) * fov_degrees / 2) * near
    half_width = half_height * torch.ones_like(half_height)  # aspect ratio 1
    matrix = torch.zeros(4, 4, dtype=torch.float32, device=device)
    matrix[0, 0] = torch.div(2.0 * near, half_width - -half_width)[0]
    matrix[1, 1] = torch.div(2.0 * near, half_height - -half_height)[0]
    matrix[2, 2] = (1.0 * far / (far - near))[0]
    matrix[2, 3] = (-(far * near) / (far - near))[0]
    matrix[3, 2] = 1.0
    return matrix


def pytorch3d_screen_vertices(points: Tensor, transform: Tensor, focal: float = RELEASE_FOCAL) -> Tensor:
    """What pytorch3d's ``MeshRasterizer`` rasterises: [B, V, 3] world points -> [B, V, 3]
    (NDC x, NDC y, view z), float32.

    Args:
        points: [B, V, 3] world points.
        transform: [B, 3, 4] ``[R | T]`` release cameras.
    """
    batch, count = points.shape[:2]
    points = points.to(torch.float32)
    world_to_view = torch.zeros(batch, 4, 4, dtype=torch.float32, device=points.device)
    world_to_view[:, :3, :3] = transform[:, :, :3]
    world_to_view[:, 3, :3] = transform[:, :, 3]
    world_to_view[:, 3, 3] = 1.0
    ones = points.new_ones(batch, count, 1)
    view = torch.bmm(torch.cat([points, ones], dim=2), world_to_view)
    view = view[..., :3] / view[..., 3:]
    projection = fov_perspective(focal, device=points.device).transpose(0, 1).contiguous().expand(batch, 4, 4)
    clip = torch.bmm(torch.cat([view, ones], dim=2), projection)
    ndc = clip[..., :3] / clip[..., 3:]
    return torch.cat([ndc[..., :2], view[..., 2:]], dim=2)


@torch.no_grad()
def release_zbuffer(
    points: Tensor, faces: Tensor, transform: Tensor, size: int = RELEASE_IMAGE_SIZE, focal: float = RELEASE_FOCAL
) -> Tensor:
    """Raw depth buffers of meshes under release cameras.

    Args:
        points: [B, V, 3] world vertices.
        faces: [F, 3] vertex indices (shared by the batch).
        transform: [B, 3, 4] ``[R | T]``.
        size: the square image's side.

    Returns:
        [B, size, size] float32 view depth of the nearest face per pixel, -1 where none.
    """
    screen = pytorch3d_screen_vertices(points, transform, focal)
    faces = faces.to(device=points.device, dtype=torch.long)
    return torch.stack([rasterize_depth(screen[b][faces], size, size) for b in range(screen.shape[0])])


def rasterize_depth(face_vertices: Tensor, height: int, width: int) -> Tensor:
    """pytorch3d's naive rasteriser, depth only.

    Args:
        face_vertices: [F, 3 corners, 3] float32 (NDC x, NDC y, view z).

    Returns:
        [height, width] float32 nearest depth per pixel, -1 where no face covers it.
    """
    device = face_vertices.device
    x, y, z = face_vertices.to(torch.float32).unbind(dim=2)  # [F, 3] each
    x0, x1, x2 = x.unbind(1)
    y0, y1, y2 = y.unbind(1)
    # faces pytorch3d skips: a vertex behind z = 1e-8, or (nearly) no area
    face_area = (x0 - x1) * (y2 - y1) - (y0 - y1) * (x2 - x1)
    flat = (face_area.double() <= EPSILON) & (face_area.double() >= -EPSILON)
    usable = torch.nonzero(~flat & (z.min(dim=1).values.double() >= EPSILON)).flatten()
    x, y, z = x[usable], y[usable], z[usable]
    x_min, x_max = x.min(dim=1).values, x.max(dim=1).values
    y_min, y_max = y.min(dim=1).values, y.max(dim=1).values
    # barycentric denominator: an edge function in float32, plus 1e-8 in double, back to float32
    edge = (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]) - (y[:, 2] - y[:, 0]) * (x[:, 1] - x[:, 0])
    bary_area = (edge.double() + EPSILON).to(torch.float32)

    # candidate pixel ranges from the bounding boxes (one pixel of margin; exact tests below)
    col_from, col_to = _pixel_range(x_min, x_max, width)
    row_from, row_to = _pixel_range(y_min, y_max, height)
    box_width = (col_to - col_from + 1).clamp(min=0)
    counts = box_width * (row_to - row_from + 1).clamp(min=0)
    col_ndc = _pixel_ndc(width, device)
    row_ndc = _pixel_ndc(height, device)

    buffer = torch.full((height * width,), torch.inf, dtype=torch.float32, device=device)
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(counts):
        done_before = int(ends[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(ends, done_before + _PAIRS_PER_CHUNK, right=True)), start + 1)
        chunk = torch.arange(start, min(stop, len(counts)), device=device)
        face = torch.repeat_interleave(chunk, counts[chunk])
        local = torch.arange(len(face), device=device) - (ends[face] - counts[face] - done_before)
        col = col_from[face] + local % box_width[face]
        row = row_from[face] + local // box_width[face]
        depth, covered = _cover(x[face], y[face], z[face], bary_area[face], col_ndc[col], row_ndc[row])
        covered &= (col_ndc[col] <= x_max[face]) & (col_ndc[col] >= x_min[face])
        covered &= (row_ndc[row] <= y_max[face]) & (row_ndc[row] >= y_min[face])
        buffer.scatter_reduce_(0, (row * width + col)[covered], depth[covered], reduce="amin")
        start = stop
    return torch.where(torch.isinf(buffer), EMPTY, buffer).reshape(height, width)


def _cover(x: Tensor, y: Tensor, z: Tensor, area: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
    """Depth at pixel centres ``(px, py)`` [N] of triangles ``x, y, z`` [N, 3] and whether the
    centre is strictly inside with a non-negative depth, in pytorch3d's float32 steps."""
    x0, x1, x2 = x.unbind(1)
    y0, y1, y2 = y.unbind(1)
    z0, z1, z2 = z.unbind(1)
    w0 = ((px - x1) * (y2 - y1) - (py - y1) * (x2 - x1)) / area
    w1 = ((px - x2) * (y0 - y2) - (py - y2) * (x0 - x2)) / area
    w2 = ((px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)) / area
    top0, top1, top2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1  # perspective correction
    denominator = (top0 + top1 + top2).clamp_min(torch.tensor(EPSILON, dtype=torch.float32))
    b0, b1, b2 = top0 / denominator, top1 / denominator, top2 / denominator
    depth = b0 * z0 + b1 * z1 + b2 * z2
    return depth, (depth >= 0) & (b0 > 0) & (b1 > 0) & (b2 > 0)


def _pixel_ndc(count: int, device: torch.device) -> Tensor:
    """[count] float32 NDC coordinate of each pixel centre along an axis, index 0 at +1."""
    flipped = torch.arange(count - 1, -1, -1, device=device).to(torch.float32)
    return (2.0 * flipped + 1.0) / count - 1.0


def _pixel_range(low: Tensor, high: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """First and last pixel index whose centre may lie in NDC ``[low, high]`` (index 0 at +1)."""
    first = torch.ceil(((1.0 - high.double()) * count - 1.0) / 2.0).long() - 1
    last = torch.floor(((1.0 - low.double()) * count - 1.0) / 2.0).long() + 1
    return first.clamp(min=0), last.clamp(max=count - 1)
