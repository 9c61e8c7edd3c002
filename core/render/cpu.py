"""The real-time CPU rasteriser: tiled 3D Gaussian splatting compiled with numba.

Why our own code: gsplat's rasteriser is CUDA-only (it compiles CUDA kernels on first
use), and no maintained package on PyPI rasterises 3D Gaussians on the CPU with an
arbitrary number of feature channels, alpha and depth; OpenGL splatting through Mesa's
software driver was 3-4 times slower in our prototypes. numba compiles these loops to
native code, threads them, and is a dependency already.

The rules are :mod:`core.render.constants`, the ones the torch reference follows, and the
stages are the classic tile pipeline:

1. ``_project`` (parallel over Gaussians): EWA projection (the maths of
   :mod:`core.render.projection`, compiled), conic, and the pixel box where the Gaussian
   can reach ``ALPHA_MIN`` inside its 3-sigma footprint (smaller for faint Gaussians).
2. ``_depth_order`` and ``_bin`` (the sorting stage): the surviving Gaussians sorted front
   to back by a stable radix sort of their depths, then dealt into one list per 16x16 tile
   in that order, so every tile's list is depth-sorted (ties keep index order, as in the
   reference); the binning runs on both threads.
3. ``_blend`` (each thread claims the next tile from an atomic counter, so busy tiles, or a
   thread the OS pauses, do not leave the other idle): per tile, Gaussians front to back,
   each applied to the 4x4-pixel blocks of the tile that its box reaches, with branch-free
   arithmetic over the block's 16 pixels that LLVM vectorises (numba has no vectorised
   ``exp``, hence ``_exp_neg``); pixels outside the footprint get weight 0, the exclusive
   early stop is per pixel, a block is skipped once all its pixels have stopped, and a tile
   stops once all its pixels have.

Profiling drove three choices: fixed 16-lane loops instead of per-row spans (3x faster:
spans are 5-8 pixels, too short for SIMD, and LLVM leaves loops of fewer than 16 or of
unknown trips scalar: 8-lane half rows were 4x slower); 4x4 blocks instead of 16-pixel
tile rows (a Gaussian's box, about 9x9 pixels at Sub#1, reaches 25 % fewer pixels in
blocks; blending 19.7 -> 16.9 ms at Sub#1 and 28.7 -> 21.9 ms at Sub#2, 512x512, one
thread); and accumulating up to 4 channels inside the same vectorised loop from registers
(2x faster than a second pass over a weights buffer, which LLVM cannot vectorise because
it cannot prove the buffers do not alias).

Compiled kernels are cached on disk (``cache=True``): the first call in a fresh checkout
compiles them in about 9 s on 2 cores; later processes load them in 0.2 s.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from core.geometry.camera import Camera
from core.interrupts import deferred
from core.render.constants import (
    ALPHA_MAX,
    ALPHA_MIN,
    JACOBIAN_FOV_MARGIN,
    LOW_PASS,
    MAX_POWER,
    NEAR_PLANE,
    TRANSMITTANCE_MIN,
)
from core.render.gaussians import Gaussians
from core.render.output import Background, RenderOutput, background_tensor
from core.render.profiling import StageTimer, stage

#: Tile side in pixels.
TILE = 16
#: A tile is composited in blocks of BLOCK_W x BLOCK_H pixels, one vectorised loop over its
#: LANES pixels each; a Gaussian is applied to the blocks its pixel box reaches.
BLOCK_W, BLOCK_H = 4, 4
LANES = BLOCK_W * BLOCK_H
BLOCKS = TILE * TILE // LANES
BLOCKS_PER_ROW = TILE // BLOCK_W  # blocks are numbered row by row (see _pixel)
#: Features with at most this many channels are zero-padded to it and take the fused path.
NARROW = 4

_FIELDS = ("means", "quats", "scales", "opacities", "features")
# Columns of the per-Gaussian "splat" rows written by _project and read by _blend.
_X, _Y, _A, _B, _C, _OPACITY, _DEPTH = range(7)
# Columns of the inclusive pixel boxes.
_X0, _X1, _Y0, _Y1 = range(4)
# Pixel boxes are widened by this many pixels so rounding never drops a covered pixel;
# the exact per-pixel tests decide coverage.
_BOX_SLACK = 1e-3
# fastmath without "no NaNs / no infinities", so the culling tests stay meaningful.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


def set_threads(count: int | None) -> None:
    """Render with ``count`` threads (None: all of numba's) in the calling thread's later
    renders; other threads keep theirs.

    A parallel kernel waits for its slowest thread, so on cores that other work shares (a
    tracker beside the renderer) one thread is as fast or faster, and leaves the tracker its
    core. Measured on 2 cores, Sub#1 at 512 px driven live at 30 FPS: the app's window went
    from 17.6 to 22.5 frames a second (capture-to-display latency 162 -> 129 ms median);
    ``omg-avatar drive`` kept 29 FPS, its latency p95 went from 86 to 67 ms; a video
    driven offline kept its 31 FPS.
    """
    numba.set_num_threads(count or numba.config.NUMBA_NUM_THREADS)


def render_cpu(
    gaussians: Gaussians,
    camera: Camera,
    background: Background = 0.0,
    timer: StageTimer | None = None,
) -> RenderOutput:
    """Render ``gaussians`` through ``camera`` on the CPU (no autograd). See :class:`RenderOutput`.

    Computes in float32 and returns tensors of the Gaussians' dtype on the CPU. Raises
    ``ValueError`` for inputs that require gradients (with grad mode on): use the reference
    or gsplat backend to train.
    """
    if torch.is_grad_enabled() and any(getattr(gaussians, name).requires_grad for name in _FIELDS):
        raise ValueError(
            "the cpu backend is not differentiable; render with 'reference' or 'gsplat' to train"
        )
    width, height, channels = camera.width, camera.height, gaussians.num_channels
    means, quats, scales, opacities, features = (
        np.ascontiguousarray(getattr(gaussians, name).detach().to("cpu", torch.float32).numpy())
        for name in _FIELDS
    )
    if channels <= NARROW:
        features = np.pad(features, ((0, 0), (0, NARROW - channels)))
    bg = background_tensor(background, channels, torch.float32, "cpu").numpy()
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    workers = min(numba.get_num_threads(), tiles_x * tiles_y)

    with deferred(), stage(timer, "projection"):  # the kernels box their results through Python
        R, t, K = (np.asarray(m, np.float64) for m in (camera.R, camera.t, camera.K))
        splats, boxes = _project(means, quats, scales, opacities, R, t, K, width, height)
    with deferred(), stage(timer, "sorting"):
        tile_start, tile_ids = _bin(_depth_order(splats, boxes), boxes, tiles_x, tiles_y, workers)
    with deferred(), stage(timer, "blending"):
        image = np.empty((height, width, channels), np.float32)
        alpha = np.empty((height, width), np.float32)
        depth = np.empty((height, width), np.float32)
        _blend(splats, boxes, features, tile_start, tile_ids, bg, tiles_x, workers, image, alpha, depth)
    return RenderOutput(*(torch.from_numpy(a).to(gaussians.dtype) for a in (image, alpha, depth)))


# ---------------------------------------------------------------------- projection
@njit(fastmath=_FAST, inline="always")
def _screen_axis(ax, ay, az, R, jacobian):
    """A Gaussian axis (world vector) through the camera rotation R and the perspective
    Jacobian ``(j00, j02, j11, j12)``: its 2D image-plane vector in pixels."""
    j00, j02, j11, j12 = jacobian
    cam_x = R[0, 0] * ax + R[0, 1] * ay + R[0, 2] * az
    cam_y = R[1, 0] * ax + R[1, 1] * ay + R[1, 2] * az
    cam_z = R[2, 0] * ax + R[2, 1] * ay + R[2, 2] * az
    return j00 * cam_x + j02 * cam_z, j11 * cam_y + j12 * cam_z


@njit(parallel=True, fastmath=_FAST, cache=True, nogil=True)
def _project(means, quats, scales, opacities, R, t, K, width, height):
    """EWA-project N Gaussians.

    Returns:
        splats: [N, 7] float32 rows (x, y, conic a, b, c, opacity, depth).
        boxes: [N, 4] int32 inclusive pixel boxes (x0, x1, y0, y1); empty (x0 > x1) when culled.
    """
    n = means.shape[0]
    splats = np.zeros((n, 7), np.float32)
    boxes = np.empty((n, 4), np.int32)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    margin_x = JACOBIAN_FOV_MARGIN * 0.5 * width / fx
    margin_y = JACOBIAN_FOV_MARGIN * 0.5 * height / fy
    for i in prange(n):
        boxes[i, _X0], boxes[i, _X1], boxes[i, _Y0], boxes[i, _Y1] = 0, -1, 0, -1
        opacity = np.float64(opacities[i])
        if not opacity >= ALPHA_MIN:
            continue  # never reaches ALPHA_MIN anywhere
        power_limit = min(MAX_POWER, math.log(opacity / ALPHA_MIN))
        px, py, pz = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        x = R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz + t[0]
        y = R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz + t[1]
        z = R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz + t[2]
        if not z > NEAR_PLANE:
            continue

        # Rotation of the quaternion (w, x, y, z), normalised (a zero quaternion is the
        # identity, as in the reference); its columns scaled are the Gaussian's axes.
        qw, qx = np.float64(quats[i, 0]), np.float64(quats[i, 1])
        qy, qz = np.float64(quats[i, 2]), np.float64(quats[i, 3])
        norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if norm > 0.0:
            qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
        r00, r01, r02 = 1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)
        r10, r11, r12 = 2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)
        r20, r21, r22 = 2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)
        sx, sy, sz = np.float64(scales[i, 0]), np.float64(scales[i, 1]), np.float64(scales[i, 2])

        # cov2d = sum over the Gaussian's axes a of (J W a)(J W a)^T, plus the low-pass, with
        # W the camera rotation and J the Jacobian at the (clamped) centre.
        tan_x = min(max(x / z, -(cx / fx + margin_x)), (width - cx) / fx + margin_x)
        tan_y = min(max(y / z, -(cy / fy + margin_y)), (height - cy) / fy + margin_y)
        jacobian = (fx / z, -fx * tan_x / z, fy / z, -fy * tan_y / z)
        u0, v0 = _screen_axis(r00 * sx, r10 * sx, r20 * sx, R, jacobian)
        u1, v1 = _screen_axis(r01 * sy, r11 * sy, r21 * sy, R, jacobian)
        u2, v2 = _screen_axis(r02 * sz, r12 * sz, r22 * sz, R, jacobian)
        var_x = LOW_PASS + u0 * u0 + u1 * u1 + u2 * u2
        cov_xy = u0 * v0 + u1 * v1 + u2 * v2
        var_y = LOW_PASS + v0 * v0 + v1 * v1 + v2 * v2
        det = var_x * var_y - cov_xy * cov_xy

        u = (K[0, 0] * x + K[0, 1] * y) / z + cx
        v = fy * y / z + cy
        half_w = math.sqrt(2.0 * power_limit * var_x) + _BOX_SLACK
        half_h = math.sqrt(2.0 * power_limit * var_y) + _BOX_SLACK
        x0 = max(0.0, math.ceil(u - half_w - 0.5))
        x1 = min(width - 1.0, math.floor(u + half_w - 0.5))
        y0 = max(0.0, math.ceil(v - half_h - 0.5))
        y1 = min(height - 1.0, math.floor(v + half_h - 0.5))
        if not (det > 0.0 and math.isfinite(u) and math.isfinite(v) and x0 <= x1 and y0 <= y1):
            continue  # degenerate (NaN input) or off the image
        boxes[i, _X0], boxes[i, _X1], boxes[i, _Y0], boxes[i, _Y1] = int(x0), int(x1), int(y0), int(y1)
        splats[i, _X], splats[i, _Y] = u, v
        splats[i, _A], splats[i, _B], splats[i, _C] = var_y / det, -cov_xy / det, var_x / det
        splats[i, _OPACITY], splats[i, _DEPTH] = opacity, z
    return splats, boxes


# ---------------------------------------------------------------------- sorting
@njit(cache=True, nogil=True)
def _depth_order(splats, boxes):
    """[M] int32 ids of the Gaussians that survived projection, front to back.

    An LSD radix sort (3 passes of 11 bits) of the depths' float32 bit patterns, which order
    like the depths themselves because every depth is positive; stable, so equal depths keep
    index order (as in the reference).
    """
    n = boxes.shape[0]
    keep = np.empty(n, np.int32)
    m = 0
    for i in range(n):
        if boxes[i, _X0] <= boxes[i, _X1]:
            keep[m] = i
            m += 1
    depths = np.empty(m, np.float32)
    for k in range(m):
        depths[k] = splats[keep[k], _DEPTH]
    keys, ids = depths.view(np.uint32), keep[:m].copy()
    next_keys, next_ids = np.empty_like(keys), np.empty_like(ids)
    for shift in (0, 11, 22):
        counts = np.zeros(2049, np.int64)
        for k in range(m):
            counts[((keys[k] >> shift) & 2047) + 1] += 1
        offsets = np.cumsum(counts)
        for k in range(m):
            digit = (keys[k] >> shift) & 2047
            next_keys[offsets[digit]] = keys[k]
            next_ids[offsets[digit]] = ids[k]
            offsets[digit] += 1
        keys, next_keys = next_keys, keys
        ids, next_ids = next_ids, ids
    return ids


@njit(parallel=True, cache=True, nogil=True)
def _bin(order, boxes, tiles_x, tiles_y, workers):
    """Gaussian ids per tile, each tile's list in the order of ``order`` (front to back).

    Each worker takes a contiguous share of ``order`` and writes its ids after those of the
    workers before it, so every tile's list keeps the global order.

    Returns:
        tile_start: [tiles + 1] int64; tile k holds ``tile_ids[tile_start[k]:tile_start[k + 1]]``.
        tile_ids: [total] int32.
    """
    num_tiles, m = tiles_x * tiles_y, order.shape[0]
    counts = np.zeros((workers, num_tiles), np.int64)
    for worker in prange(workers):
        for k in range(m * worker // workers, m * (worker + 1) // workers):
            i = order[k]
            for ty in range(boxes[i, _Y0] // TILE, boxes[i, _Y1] // TILE + 1):
                for tx in range(boxes[i, _X0] // TILE, boxes[i, _X1] // TILE + 1):
                    counts[worker, ty * tiles_x + tx] += 1
    tile_start = np.empty(num_tiles + 1, np.int64)
    cursor = np.empty((workers, num_tiles), np.int64)
    total = 0
    for tile in range(num_tiles):
        tile_start[tile] = total
        for worker in range(workers):
            cursor[worker, tile] = total
            total += counts[worker, tile]
    tile_start[num_tiles] = total
    tile_ids = np.empty(total, np.int32)
    for worker in prange(workers):
        for k in range(m * worker // workers, m * (worker + 1) // workers):
            i = order[k]
            for ty in range(boxes[i, _Y0] // TILE, boxes[i, _Y1] // TILE + 1):
                for tx in range(boxes[i, _X0] // TILE, boxes[i, _X1] // TILE + 1):
                    tile = ty * tiles_x + tx
                    tile_ids[cursor[worker, tile]] = i
                    cursor[worker, tile] += 1
    return tile_start, tile_ids


# ---------------------------------------------------------------------- blending
@intrinsic
def _fetch_add(typingctx, array, index, value):
    """Atomically add ``value`` to the int64 ``array[index]``; returns the previous value."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data, position, increment = args
        view = context.make_array(array_type)(context, builder, data)
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [position])
        return builder.atomic_rmw("add", pointer, increment, "monotonic")

    return types.int64(array, index, value), codegen


@njit(fastmath=_FAST, inline="always")
def _exp_neg(power):
    """exp(-power) for power in [0, MAX_POWER], relative error about 2e-6.

    ``(exp(-power / 16)) ** 16`` with a degree-6 Taylor polynomial inside: plain arithmetic,
    so LLVM can vectorise the loops it sits in (numba's ``math.exp`` is a libm call).
    """
    x = power * np.float32(-1.0 / 16.0)
    y = np.float32(1.0 / 120.0) + x * np.float32(1.0 / 720.0)
    y = np.float32(1.0 / 24.0) + x * y
    y = np.float32(1.0 / 6.0) + x * y
    y = np.float32(1.0 / 2.0) + x * y
    y = np.float32(1.0) + x * y
    y = np.float32(1.0) + x * y
    y = y * y
    y = y * y
    y = y * y
    return y * y


@njit(fastmath=_FAST, inline="always")
def _composite_pixel(t, dx, dy, a, b, c, opacity):
    """One Gaussian over one pixel whose transmittance so far is ``t`` (negative once stopped).

    Returns ``(weight, t_after, stop)``: the pixel's compositing weight ``alpha * t`` (0 when
    the pixel is outside the footprint, too faint, or stopped), its new transmittance, and
    1.0 if the pixel stops here, else 0.0. A pixel stops when this Gaussian would bring its
    transmittance below ``TRANSMITTANCE_MIN`` (the exclusive early stop: the Gaussian is
    not composited); its transmittance is then kept, negated. Branch-free, so the loops
    over a block vectorise.
    """
    power = np.float32(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = min(np.float32(ALPHA_MAX), opacity * _exp_neg(power))
    t_next = t * (np.float32(1.0) - alpha)
    covered = (t > np.float32(0.0)) & (power <= np.float32(MAX_POWER)) & (alpha >= np.float32(ALPHA_MIN))
    stops = covered & (t_next < np.float32(TRANSMITTANCE_MIN))
    blends = covered & (t_next >= np.float32(TRANSMITTANCE_MIN))
    weight = alpha * t if blends else np.float32(0.0)
    t_after = -t if stops else (t_next if blends else t)
    return weight, t_after, np.float32(1.0) if stops else np.float32(0.0)


@njit(fastmath=_FAST, inline="always")
def _composite_tile(g_first, g_last, tile_ids, splats, boxes, features, left, top, right, bottom, buffers):
    """Composite the tile's Gaussians ``tile_ids[g_first:g_last]`` front to back into ``buffers``.

    ``buffers`` = (transmittance [BLOCKS, LANES], depth_sum [BLOCKS, LANES], narrow
    accumulator [BLOCKS, NARROW, LANES], wide accumulator [BLOCKS, LANES, C], block weights
    [LANES], lane columns [LANES], lane rows [LANES], pixels stopped per block [BLOCKS]),
    indexed [block, lane] within the tile (see :func:`_pixel`); the caller initialised the
    first four, this function counts the stopped pixels.
    """
    transmittance, depth_sum, accum_narrow, accum_wide, weights, lane_x, lane_y, stopped_in_block = buffers
    narrow = features.shape[1] == NARROW
    channels = accum_wide.shape[2]
    stopped = 0
    for block in range(BLOCKS):
        stopped_in_block[block] = 0
        for lane in range(LANES):
            stopped_in_block[block] += 1 if transmittance[block, lane] < 0 else 0  # beyond the image
        stopped += stopped_in_block[block]
    for k in range(g_first, g_last):
        if stopped == TILE * TILE:
            break
        g = tile_ids[k]
        mx, my = splats[g, _X], splats[g, _Y]
        a, b, c = splats[g, _A], splats[g, _B], splats[g, _C]
        opacity, z = splats[g, _OPACITY], splats[g, _DEPTH]
        f0, f1, f2, f3 = features[g, 0], features[g, 1], features[g, 2], features[g, 3]  # narrow path
        first_column = (max(left, boxes[g, _X0]) - left) // BLOCK_W  # the blocks the box reaches
        last_column = (min(right - 1, boxes[g, _X1]) - left) // BLOCK_W
        first_row = (max(top, boxes[g, _Y0]) - top) // BLOCK_H
        last_row = (min(bottom - 1, boxes[g, _Y1]) - top) // BLOCK_H
        for block_row in range(first_row, last_row + 1):
            dy0 = np.float32(top + block_row * BLOCK_H) + np.float32(0.5) - my
            for block_column in range(first_column, last_column + 1):
                block = block_row * BLOCKS_PER_ROW + block_column
                if stopped_in_block[block] == LANES:
                    continue  # every pixel of the block has stopped
                dx0 = np.float32(left + block_column * BLOCK_W) + np.float32(0.5) - mx
                t_block, d_block = transmittance[block], depth_sum[block]
                block_stops = np.float32(0.0)
                if narrow:
                    acc = accum_narrow[block]
                    for lane in range(LANES):
                        w, t_block[lane], stop = _composite_pixel(
                            t_block[lane], dx0 + lane_x[lane], dy0 + lane_y[lane], a, b, c, opacity
                        )
                        block_stops += stop
                        d_block[lane] += w * z
                        acc[0, lane] += w * f0
                        acc[1, lane] += w * f1
                        acc[2, lane] += w * f2
                        acc[3, lane] += w * f3
                else:
                    block_weight = np.float32(0.0)
                    for lane in range(LANES):
                        w, t_block[lane], stop = _composite_pixel(
                            t_block[lane], dx0 + lane_x[lane], dy0 + lane_y[lane], a, b, c, opacity
                        )
                        block_stops += stop
                        d_block[lane] += w * z
                        weights[lane] = w
                        block_weight += w
                    if block_weight > 0:
                        acc = accum_wide[block]
                        for lane in range(LANES):
                            w = weights[lane]
                            for ch in range(channels):
                                acc[lane, ch] += w * features[g, ch]
                stopped_in_block[block] += int(block_stops)
                stopped += int(block_stops)


@njit(inline="always")
def _pixel(block, lane):
    """The (row, column) within its tile of a tile buffer's ``[block, lane]``."""
    return (block // BLOCKS_PER_ROW) * BLOCK_H + lane // BLOCK_W, (block % BLOCKS_PER_ROW) * BLOCK_W + lane % BLOCK_W


@njit(parallel=True, fastmath=_FAST, cache=True, nogil=True)
def _blend(splats, boxes, features, tile_start, tile_ids, background, tiles_x, workers, image, alpha, depth):
    """Composite every tile into ``image`` [H, W, C], ``alpha`` and ``depth`` [H, W].

    ``features`` is [N, NARROW] (zero-padded) when C <= NARROW: those channels are
    accumulated in the vectorised block loop itself (channel-major tile buffer). Wider
    features are accumulated after each block, the channel loop vectorised (pixel-major
    tile buffer).
    """
    height, width, channels = image.shape
    narrow = features.shape[1] == NARROW
    num_tiles = tile_start.shape[0] - 1
    next_tile = np.zeros(1, np.int64)
    for _ in prange(workers):
        lanes = np.arange(LANES)
        buffers = (
            np.empty((BLOCKS, LANES), np.float32),  # transmittance, negative once stopped
            np.empty((BLOCKS, LANES), np.float32),  # sum of weight * depth
            np.empty((BLOCKS, NARROW if narrow else 0, LANES), np.float32),
            np.empty((BLOCKS, LANES, 0 if narrow else channels), np.float32),
            np.empty(LANES, np.float32),
            (lanes % BLOCK_W).astype(np.float32),
            (lanes // BLOCK_W).astype(np.float32),
            np.empty(BLOCKS, np.int64),  # pixels stopped per block
        )
        transmittance, depth_sum, accum_narrow, accum_wide = buffers[:4]
        while True:
            tile = _fetch_add(next_tile, 0, 1)  # the next unclaimed tile
            if tile >= num_tiles:
                break
            left, top = (tile % tiles_x) * TILE, (tile // tiles_x) * TILE
            right, bottom = min(left + TILE, width), min(top + TILE, height)
            for block in range(BLOCKS):  # pixels beyond the image start (and stay) stopped
                for lane in range(LANES):
                    row, column = _pixel(block, lane)
                    transmittance[block, lane] = 1.0 if top + row < bottom and left + column < right else -1.0
            depth_sum[:] = 0.0
            accum_narrow[:] = 0.0
            accum_wide[:] = 0.0
            _composite_tile(tile_start[tile], tile_start[tile + 1], tile_ids, splats, boxes, features,
                            left, top, right, bottom, buffers)
            for block in range(BLOCKS):
                for lane in range(LANES):
                    row, column = _pixel(block, lane)
                    y, x = top + row, left + column
                    if y >= bottom or x >= right:
                        continue
                    t = abs(transmittance[block, lane])
                    for ch in range(channels):
                        acc = accum_narrow[block, ch, lane] if narrow else accum_wide[block, lane, ch]
                        image[y, x, ch] = acc + t * background[ch]
                    alpha[y, x] = 1 - t
                    depth[y, x] = depth_sum[block, lane] / max(1 - t, np.float32(1e-10))
