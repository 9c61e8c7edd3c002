"""The views sheet of ``omg-avatar eval --views-sheet``: a reconstructed avatar at every level of
detail (rows) seen from the side as well as from the front (columns: :data:`VIEW_YAWS`), next to
the photo it was made from, so that the LODs and the side views can be judged at a glance."""

from __future__ import annotations

import numpy as np

from core.avatar.avatar import Avatar
from core.avatar.view import View, render_view
from core.media import captioned, rgb8

#: Yaw of each column, degrees (positive: the camera moves to the subject's left).
VIEW_YAWS = (-45, -20, 0, 20, 45)
#: The sheet's column titles.
VIEW_COLUMNS = ("source photo", *(f"yaw {yaw:+d}" if yaw else "yaw 0" for yaw in VIEW_YAWS))


def view_rows(
    avatar: Avatar, photo: np.ndarray, name: str, background: tuple[float, float, float], backend: str
) -> list[list[np.ndarray]]:
    """One row per level of detail: the source ``photo`` [S, S, 3] uint8 (the crop the avatar
    was made from, captioned with ``name`` and the level), then the neutral avatar through its
    source view orbited to each of :data:`VIEW_YAWS`, at the photo's size."""
    size = photo.shape[0]
    rows = []
    for lod in range(avatar.num_lods):
        row = [captioned(photo, f"{name} Sub#{lod}")]
        for yaw in VIEW_YAWS:
            view = View(avatar.camera(yaw_deg=yaw).resized(size, size), lod, background=background)
            row.append(rgb8(render_view(avatar, view, None, backend)))
        rows.append(row)
    return rows
