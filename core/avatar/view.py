"""The per-frame path's render step: an avatar in a driving state, seen through a
:class:`View`, as an image. The app's render thread, ``omg-avatar drive``, ``eval`` and
the presenter window all draw through :func:`render_view`.

Inspection modes show what each part contributes: the final image (the avatar's neural
refiner on all splatted channels when it has one and the view uses it, else the splatted
colour), the coarse RGB (the first three splatted channels), alpha, depth, the Gaussians'
centres as points, and the occlusion-aware visibility mask of OAFF (which head Gaussians
the source photo sees: green, hidden: orange, shoulders: grey).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.avatar.avatar import Avatar, DrivingState
from core.geometry.camera import Camera
from core.render import Gaussians, render, visible_vertices

#: Inspection modes of a view, with their labels.
INSPECTION_MODES = {
    "final": "Final image",
    "coarse": "Coarse RGB",
    "alpha": "Alpha",
    "depth": "Depth",
    "points": "Gaussian centres",
    "visibility": "Visibility mask (OAFF)",
}
#: Colours of the visibility mode: seen by the source photo, hidden from it, shoulders.
VISIBLE_COLOUR = (0.35, 0.85, 0.45)
HIDDEN_COLOUR = (0.95, 0.55, 0.2)
SHOULDER_COLOUR = (0.55, 0.55, 0.6)


@dataclass(frozen=True)
class View:
    """How to draw an avatar: through ``camera`` at level of detail ``lod``, in an
    inspection ``mode``, over ``background`` (RGB in 0..1), through the avatar's refiner
    (when it has one) if ``use_refiner``. ``follow_head`` moves the camera with the driven
    head, so the head stays where the camera put it."""

    camera: Camera
    lod: int
    mode: str = "final"
    follow_head: bool = False
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    use_refiner: bool = True


def render_view(avatar: Avatar, view: View, state: DrivingState | None, backend: str) -> np.ndarray:
    """[H, W, 3] float32 RGB image (0..1) of ``avatar`` posed by ``state`` (None: neutral)
    as ``view`` shows it, rendered by ``backend``."""
    if view.mode == "final" and view.use_refiner and avatar.refiner is not None:
        features = splatted_features(avatar, view, state, backend)
        with torch.inference_mode():
            return _rgb(avatar.rgb(features).cpu().numpy())
    camera = view_camera(avatar, view, state)
    background = np.asarray(view.background, np.float32)
    with torch.inference_mode():
        gaussians = avatar.gaussians(view.lod, state)
        if view.mode == "points":
            return _points_image(gaussians, camera, background)
        if view.mode == "visibility":
            gaussians = _visibility_coloured(avatar, view.lod, gaussians)
        output = render(coarse_rgb(gaussians), camera, backend, background=background)
    alpha = output.alpha.cpu().numpy()  # one copy per frame from a CUDA renderer, none on the CPU
    if view.mode == "alpha":
        return _rgb(np.repeat(alpha[..., None], 3, axis=2))
    if view.mode == "depth":
        return _rgb(_depth_image(output.depth.cpu().numpy(), alpha, background))
    return _rgb(output.features.cpu().numpy())


def splatted_features(avatar: Avatar, view: View, state: DrivingState | None, backend: str) -> torch.Tensor:
    """[H, W, C] every splatted channel of ``avatar`` as ``view`` sees it: what its refiner takes
    (the final image of an avatar with a refiner)."""
    with torch.inference_mode():
        gaussians = avatar.gaussians(view.lod, state)
        background = avatar.feature_background(tuple(view.background))
        return render(gaussians, view_camera(avatar, view, state), backend, background=background).features


def view_camera(avatar: Avatar, view: View, state: DrivingState | None) -> Camera:
    """The camera ``view`` renders ``avatar`` through in ``state``: its own, or carried along by
    the driven head when it follows the head."""
    if view.follow_head and state is not None:
        return camera_following_head(view.camera, state, avatar.rig.pivot)
    return view.camera


def camera_following_head(camera: Camera, state: DrivingState, pivot: np.ndarray) -> Camera:
    """``camera`` carried along by the state's rigid head motion (about ``pivot``), so the
    head appears as it would without that motion."""
    rotation = np.asarray(state.rotation, np.float64)
    pivot = np.asarray(pivot, np.float64)
    R = camera.R @ rotation.T
    t = camera.t + camera.R @ pivot - R @ (pivot + np.asarray(state.translation, np.float64))
    return Camera(camera.K, R, t, camera.width, camera.height)


def source_visibility(avatar: Avatar, lod: int) -> np.ndarray:
    """[N] bool: which head Gaussians of ``lod`` the source camera sees (the mesh's depth
    buffer test OAFF uses), for the neutral head; computed once per avatar and level."""
    per_lod = _visibility_cache.setdefault(avatar, {})
    if lod not in per_lod:
        vertices = avatar.head_means(lod).numpy()
        faces = avatar.levels.faces[avatar.first_level + lod]
        per_lod[lod] = visible_vertices(vertices, faces, avatar.source_camera)
    return per_lod[lod]


_visibility_cache: weakref.WeakKeyDictionary[Avatar, dict[int, np.ndarray]] = weakref.WeakKeyDictionary()


def coarse_rgb(gaussians: Gaussians) -> Gaussians:
    """The Gaussians with only their first three feature channels (the coarse RGB)."""
    if gaussians.num_channels == 3:
        return gaussians
    g = gaussians
    return Gaussians(g.means, g.quats, g.scales, g.opacities, g.features[:, :3])


def _rgb(values: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in 0..1, contiguous; ``values`` is clipped in place when it is such
    an array already (a fresh render: no new 3 MB array, and no page faults, per frame)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    out = values if values.flags.writeable else np.empty_like(values)
    np.minimum(values, 1.0, out=out)  # then maximum, not np.clip: 0.8 ms instead of 1.8 for a fresh 512x512 render
    return np.maximum(out, 0.0, out=out)


def _depth_image(depth: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Depth in colour (near: warm, far: cool), spread over the covered pixels' range."""
    covered = alpha > 0.5
    if not covered.any():
        return np.broadcast_to(background, (*depth.shape, 3))
    near, far = np.percentile(depth[covered], (1, 99))
    scaled = np.clip((depth - near) / max(far - near, 1e-6), 0.0, 1.0)
    colour = cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    weight = alpha[..., None]
    return colour * weight + background * (1.0 - weight)


def _points_image(gaussians: Gaussians, camera: Camera, background: np.ndarray) -> np.ndarray:
    """Every Gaussian's centre as one pixel of its colour, the nearest in front."""
    uv, depth = camera.project(gaussians.means.numpy())
    colours = np.clip(gaussians.features[:, :3].numpy(), 0.0, 1.0)
    x, y = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (depth > 0) & (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)
    order = np.argsort(-depth[inside])  # far first, so near points overwrite them
    image = np.empty((camera.height, camera.width, 3), np.float32)
    image[...] = background
    image[y[inside][order], x[inside][order]] = colours[inside][order]
    return image


def _visibility_coloured(avatar: Avatar, lod: int, gaussians: Gaussians) -> Gaussians:
    """``gaussians`` coloured by the source view's visibility of their neutral head vertex."""
    visible = torch.from_numpy(source_visibility(avatar, lod))
    colours = torch.empty(len(gaussians), 3, dtype=gaussians.dtype)
    colours[:] = torch.tensor(SHOULDER_COLOUR)
    head = colours[: len(visible)]
    head[visible] = torch.tensor(VISIBLE_COLOUR)
    head[~visible] = torch.tensor(HIDDEN_COLOUR)
    return Gaussians(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, colours)
