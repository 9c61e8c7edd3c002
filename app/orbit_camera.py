"""The viewer's orbit camera: yaw, pitch and distance around a target, plus pan and presets.

Mouse gestures arrive as pixel deltas and wheel steps; the UI never touches angles. The
camera produces :class:`~core.session.Camera` objects in world space (FLAME's:
+y up, +z towards a frontal viewer), so a yaw of 0 and a pitch of 0 look at the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.session import Camera

#: Degrees of rotation per pixel of left drag.
ORBIT_DEG_PER_PIXEL = 0.35
#: Distance factor per wheel step (towards the target).
ZOOM_PER_STEP = 0.9
#: The distance stays within these multiples of the home distance.
ZOOM_RANGE = (0.35, 3.0)
#: Pitch is kept within +-PITCH_LIMIT degrees.
PITCH_LIMIT = 80.0
#: Named views: (yaw, pitch) in degrees from the home view. Left and right are the
#: subject's sides.
PRESETS = {"front": (0.0, 0.0), "left": (60.0, 0.0), "right": (-60.0, 0.0)}


@dataclass(frozen=True)
class OrbitHome:
    """Where reset returns to (the avatar's source view): target, angles, distance, lens."""

    target: tuple[float, float, float]
    yaw: float
    pitch: float
    distance: float
    focal_normalized: float


class OrbitCamera:
    """Orbits a target; ``camera(width, height)`` gives the current view."""

    def __init__(self, home: OrbitHome):
        self.home = home
        self.reset()

    def reset(self) -> None:
        """Back to the frontal home view."""
        self.yaw, self.pitch = PRESETS["front"]
        self.distance = self.home.distance
        self.target = np.asarray(self.home.target, dtype=np.float64)

    def preset(self, name: str) -> None:
        """One of :data:`PRESETS` at the current distance and target."""
        yaw, pitch = PRESETS[name]
        self.yaw, self.pitch = self.home.yaw + yaw, self.home.pitch + pitch

    def orbit(self, dx_pixels: float, dy_pixels: float) -> None:
        """Dragging right turns the subject to the viewer's right; dragging down looks from above."""
        self.yaw = (self.yaw - ORBIT_DEG_PER_PIXEL * dx_pixels + 180.0) % 360.0 - 180.0
        self.pitch = float(np.clip(self.pitch + ORBIT_DEG_PER_PIXEL * dy_pixels, -PITCH_LIMIT, PITCH_LIMIT))

    def pan(self, dx_pixels: float, dy_pixels: float, view_height: float) -> None:
        """Move the target so the scene follows the mouse (``view_height``: the view's pixel height)."""
        camera = self.camera(int(view_height), int(view_height))
        world_per_pixel = self.distance / camera.K[1, 1]
        right, down = camera.R[0], camera.R[1]
        self.target = self.target - world_per_pixel * (dx_pixels * right + dy_pixels * down)

    def zoom(self, steps: float) -> None:
        """Positive steps move closer."""
        low, high = (factor * self.home.distance for factor in ZOOM_RANGE)
        self.distance = float(np.clip(self.distance * ZOOM_PER_STEP**steps, low, high))

    def state(self) -> tuple:
        """A value that changes whenever the view does (for render-only-when-dirty)."""
        return (self.yaw, self.pitch, self.distance, *self.target.tolist())

    def camera(self, width: int, height: int) -> Camera:
        return Camera.orbit(
            self.target, self.yaw, self.pitch, self.distance, width, height, self.home.focal_normalized
        )
