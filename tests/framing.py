"""The viewer's home framing, checked on rendered alpha (a test helper): the neutral avatar
in the view the app shows after a reset keeps off the view's edges and is not tiny."""

from __future__ import annotations

import numpy as np

from app.orbit_camera import OrbitCamera, OrbitHome
from core.avatar.view import View, render_view

#: The view's side in pixels, the outer band that must stay empty (share of the side), the
#: alpha that counts as drawn, and the least height of the avatar (share of the side).
SIZE = 256
EDGE_BAND = 0.03
DRAWN_ALPHA = 0.02
LEAST_HEIGHT = 0.6


def home_view_alpha(session, lod: int) -> np.ndarray:
    """[SIZE, SIZE] alpha of the session's neutral avatar at ``lod`` in the viewer's view after
    a reset (:meth:`Session.home_orbit` through :class:`OrbitCamera`)."""
    target, *orbit = session.home_orbit()
    camera = OrbitCamera(OrbitHome(tuple(target), *orbit)).camera(SIZE, SIZE)
    return render_view(session.avatar, View(camera, lod, "alpha"), None, session.backend)[..., 0]


def assert_framed_with_a_margin(session) -> None:
    """At every level of detail, nothing drawn in the view's outer band on any side, and the
    avatar (head and shoulders) at least :data:`LEAST_HEIGHT` of the view's height."""
    band = round(EDGE_BAND * SIZE)
    for lod in range(session.avatar.num_lods):
        alpha = home_view_alpha(session, lod)
        edges = {"top": alpha[:band], "bottom": alpha[-band:], "left": alpha[:, :band], "right": alpha[:, -band:]}
        for side, edge in edges.items():
            assert edge.max() < DRAWN_ALPHA, f"Sub#{lod}: the avatar reaches the view's {side} edge"
        rows = np.flatnonzero((alpha > DRAWN_ALPHA).any(axis=1))
        height = rows[-1] - rows[0] + 1
        assert height >= LEAST_HEIGHT * SIZE, f"Sub#{lod}: the avatar is {height} px tall"
