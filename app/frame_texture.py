"""A texture whose new image is on screen in the very frame drawn after it was given.

Dear PyGui uploads a raw or dynamic texture on every frame through a pixel buffer, and the
buffer it uploads was filled on the frame before: a new image reaches the screen one drawn
frame late (a whole frame interval of latency, about 35 ms while driving live on a 2-core
CPU), and an unchanged or hidden texture still costs an upload every frame. A static
texture is uploaded once, directly, when it is created. So each new image becomes a new
static texture, the items that draw the image are pointed at it, and the old one is
deleted. The price is paid once per image instead of on every frame: Dear PyGui's copy of
the array into its own storage and the driver's upload (about 3 ms each for 512x512 on this
machine's CPU, with Mesa's software OpenGL).
"""

from __future__ import annotations

import cv2
import dearpygui.dearpygui as dpg
import numpy as np


class FrameTexture:
    """The texture of one changing RGB image; ``tag`` names it for the items that draw it."""

    def __init__(self, side: int, fill: tuple[float, float, float]):
        self._registry = dpg.add_texture_registry()
        self._users: list[int] = []
        self.image = np.full((side, side, 3), fill, np.float32)
        self.tag = self._upload(self.image)

    def drawn_by(self, item: int) -> int:
        """Keep ``item`` (a draw_image or image made with :attr:`tag`) on this texture's newest image."""
        self._users.append(item)
        return item

    def show(self, image: np.ndarray) -> None:
        """Show [H, W, 3] RGB ``image`` (values in [0, 1]) from the next frame drawn on."""
        tag = self._upload(image)
        for item in self._users:
            dpg.configure_item(item, texture_tag=tag)
        dpg.delete_item(self.tag)
        self.tag, self.image = tag, image

    def _upload(self, image: np.ndarray) -> int:
        height, width = image.shape[:2]
        # Static textures are RGBA floats; OpenCV adds the opaque alpha 10x faster than numpy.
        rgba = cv2.cvtColor(np.asarray(image, np.float32), cv2.COLOR_RGB2RGBA)
        return dpg.add_static_texture(width, height, rgba, parent=self._registry)
