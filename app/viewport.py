"""The large view of the avatar: one or two images in a drawlist, an overlay of figures,
and the mouse gestures that steer the orbit camera.

Images arrive as [H, W, 3] float32 RGB arrays in [0, 1] (what the session renders) and
become :class:`~app.frame_texture.FrameTexture` images, on screen in the next frame drawn;
Dear PyGui scales them to the view on the GPU.
Each image can carry an inset in its lower right corner (a third of its side, framed in the
accent colour and labelled): the app shows the live coarse stream there while the main image
is the newest refined frame (see :mod:`app.application`).
Gestures are read by polling the mouse once per frame on the UI thread (left drag: orbit,
right or middle drag: pan, wheel: zoom, double click: reset), so no UI callback ever
touches the camera's angles.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

from app import theme
from app.frame_texture import FrameTexture
from app.orbit_camera import OrbitCamera
from core.session import Figures

#: Gap between the two images of the side-by-side mode, and around the images, in pixels.
GAP = 8
OVERLAY_PADDING = 10
OVERLAY_LINE_HEIGHT = 20
#: Room under each image for its label.
LABEL_HEIGHT = 28
#: An inset's side as a share of its image's side, and its margin from the image's corner, pixels.
INSET_SHARE = 1.0 / 3.0
INSET_MARGIN = 8
#: Lines of the overlay.
OVERLAY_LINES = 5


class Viewport:
    """Owns the view's textures, drawing and gestures inside ``parent`` (a child window)."""

    def __init__(self, parent: int | str, render_size: int, fonts: theme.Fonts):
        self.render_size = render_size
        self.drawlist = dpg.add_drawlist(1, 1, parent=parent)
        self._textures = [FrameTexture(render_size, theme.VIEWPORT_BACKGROUND) for _ in range(2)]  # 2: side by side
        inset = 0.5 / render_size  # sample texel centres only: no wrap-around at the edges
        self._images = [texture.drawn_by(dpg.draw_image(texture.tag, (0, 0), (1, 1), uv_min=(inset, inset),
                                                        uv_max=(1 - inset, 1 - inset), parent=self.drawlist))
                        for texture in self._textures]
        self._insets: list[Inset] = []
        self._labels = [dpg.draw_text((0, 0), "", size=theme.OVERLAY_FONT_SIZE, color=theme.TEXT_DIM,
                                      parent=self.drawlist) for _ in range(2)]
        self._overlay_box = dpg.draw_rectangle((0, 0), (1, 1), fill=(16, 18, 22, 190), color=(0, 0, 0, 0),
                                               rounding=6, parent=self.drawlist, show=False)
        self.overlay_lines = [dpg.draw_text((0, 0), "", size=theme.OVERLAY_FONT_SIZE, color=theme.TEXT,
                                            parent=self.drawlist) for _ in range(OVERLAY_LINES)]
        self._message = dpg.draw_text((0, 0), "", size=theme.BODY_FONT_SIZE + 6, color=theme.TEXT,
                                      parent=self.drawlist)
        if fonts.overlay is not None:
            dpg.bind_item_font(self.drawlist, fonts.overlay)
        self._size = (1, 1)
        self._side_by_side = False
        self._labelled = False
        self._drag: tuple[int, tuple[float, float]] | None = None  # button, last mouse position
        self._wheel_steps = 0.0
        self._layout_dirty = True
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)

    # ------------------------------------------------------------------ images
    def show(self, images: list[np.ndarray], labels: list[str] = ()) -> None:
        """Show one image, or two side by side; ``labels`` name them (under each image)."""
        side_by_side = len(images) == 2
        labelled = any(labels)
        if (side_by_side, labelled) != (self._side_by_side, self._labelled):
            self._side_by_side, self._labelled = side_by_side, labelled
            self._layout_dirty = True
        for texture, image in zip(self._textures, images):
            texture.show(image)
        for index, label in enumerate(self._labels):
            dpg.configure_item(label, text=labels[index] if index < len(labels) else "")

    def show_insets(self, images: list[np.ndarray] | None, label: str = "") -> None:
        """Show ``images`` as the insets of the images on screen (one each), named ``label``;
        None hides them."""
        images = images or []
        while len(self._insets) < len(images):
            self._insets.append(Inset(self.drawlist, self.render_size, before=self._labels[0]))
            self._layout_dirty = True
        for index, inset in enumerate(self._insets):
            inset.show(images[index] if index < len(images) else None, label)

    @property
    def insets_shown(self) -> int:
        """How many insets are on screen."""
        return sum(inset.shown for inset in self._insets)

    def first_inset(self) -> np.ndarray | None:
        """The first inset's pixels ([S/2, S/2, 3] float32), None when it is hidden."""
        return self._insets[0].texture.image if self._insets and self._insets[0].shown else None

    def first_image(self) -> np.ndarray:
        """The (first) image on screen, [H, W, 3] float32."""
        return self._textures[0].image

    def set_message(self, text: str) -> None:
        """A centred line over the view (e.g. while reconstructing); empty to hide."""
        if dpg.get_item_configuration(self._message)["text"] != text:
            dpg.configure_item(self._message, text=text)
            self._layout_dirty = True

    def set_overlay(self, figures: Figures | None, lod_label: str = "") -> None:
        """Show the session's figures, with ``lod_label`` (e.g. "Sub#1 (auto)"); None hides it."""
        if figures is None:
            lines = [""] * OVERLAY_LINES
        else:
            tracker = "idle" if figures.tracker_ms is None else f"{figures.tracker_ms:.1f} ms"
            refiner = _refiner_line(figures)
            lines = [
                f"Render {figures.render_fps:5.1f} FPS    End-to-end {figures.end_to_end_fps:5.1f} FPS",
                f"Tracker {tracker}    {figures.gaussians:,} Gaussians",
                f"LOD {lod_label}    Renderer {figures.backend}"
                + ("  (compiling cpu, first start only)" if figures.compiling else ""),
                refiner,
                "" if figures.camera is None else f"Camera {figures.camera.describe()}",
            ]
            lines = [line for line in lines if line] + [""] * lines.count("")  # no gaps
        for item, line in zip(self.overlay_lines, lines):
            dpg.configure_item(item, text=line)
        dpg.configure_item(self._overlay_box, show=figures is not None)

    def overlay_text(self) -> str:
        return "\n".join(dpg.get_item_configuration(item)["text"] for item in self.overlay_lines)

    # ------------------------------------------------------------------ layout
    def fit(self, width: int, height: int) -> None:
        """Size the drawlist to ``width`` x ``height`` pixels and lay out the images."""
        width, height = max(width, 1), max(height, 1)
        if (width, height) == self._size and not self._layout_dirty:
            return
        self._size, self._layout_dirty = (width, height), False
        dpg.configure_item(self.drawlist, width=width, height=height)
        count = 2 if self._side_by_side else 1
        label_room = LABEL_HEIGHT if self._labelled else 0
        side = max(1, min((width - (count + 1) * GAP) // count, height - 2 * GAP - label_room))
        left = (width - count * side - (count - 1) * GAP) // 2
        top = (height - side - label_room) // 2
        for index, image in enumerate(self._images):
            x = left + index * (side + GAP)
            dpg.configure_item(image, pmin=(x, top), pmax=(x + side, top + side), show=index < count)
            dpg.configure_item(self._labels[index], pos=(x + OVERLAY_PADDING, top + side + 6))
            if index < len(self._insets):
                inset_side = side * INSET_SHARE
                corner = (x + side - INSET_MARGIN, top + side - INSET_MARGIN)
                self._insets[index].place((corner[0] - inset_side, corner[1] - inset_side), corner)
        dpg.configure_item(self._overlay_box, pmin=(GAP, GAP),
                           pmax=(GAP + 430, GAP + 2 * OVERLAY_PADDING + OVERLAY_LINES * OVERLAY_LINE_HEIGHT))
        for row, item in enumerate(self.overlay_lines):
            dpg.configure_item(item, pos=(GAP + OVERLAY_PADDING, GAP + OVERLAY_PADDING + row * OVERLAY_LINE_HEIGHT))
        message = dpg.get_item_configuration(self._message)["text"]
        char_width = 0.55 * (theme.BODY_FONT_SIZE + 6)
        dpg.configure_item(self._message, pos=(width / 2 - len(message) * char_width / 2, height / 2 - 14))

    # ------------------------------------------------------------------ gestures
    def _on_wheel(self, sender, steps) -> None:
        if dpg.is_item_hovered(self.drawlist):
            self._wheel_steps += steps

    def steer(self, camera: OrbitCamera) -> bool:
        """Apply this frame's mouse gestures to ``camera``; True if it moved."""
        moved = False
        if self._wheel_steps:
            camera.zoom(self._wheel_steps)
            self._wheel_steps, moved = 0.0, True
        hovered = dpg.is_item_hovered(self.drawlist)
        if hovered and dpg.is_mouse_button_double_clicked(dpg.mvMouseButton_Left):
            camera.reset()
            return True
        position = tuple(dpg.get_mouse_pos(local=False))
        if self._drag is None:
            for button in (dpg.mvMouseButton_Left, dpg.mvMouseButton_Right, dpg.mvMouseButton_Middle):
                if hovered and dpg.is_mouse_button_clicked(button):
                    self._drag = (button, position)
            return moved
        button, last = self._drag
        if not dpg.is_mouse_button_down(button):
            self._drag = None
            return moved
        dx, dy = position[0] - last[0], position[1] - last[1]
        self._drag = (button, position)
        if dx or dy:
            if button == dpg.mvMouseButton_Left:
                camera.orbit(dx, dy)
            else:
                camera.pan(dx, dy, self._image_side())
            moved = True
        return moved

    def _image_side(self) -> float:
        pmin, pmax = (dpg.get_item_configuration(self._images[0])[key] for key in ("pmin", "pmax"))
        return max(1.0, pmax[1] - pmin[1])

    def image_rect(self) -> tuple[int, int, int, int]:
        """Where the (first) image is in the window, in pixels: (left, top, right, bottom),
        right and bottom exclusive (e.g. to find it in a screenshot of the window)."""
        left, top = dpg.get_item_rect_min(self.drawlist)
        pmin, pmax = (dpg.get_item_configuration(self._images[0])[key] for key in ("pmin", "pmax"))
        return tuple(round(value) for value in (left + pmin[0], top + pmin[1], left + pmax[0], top + pmax[1]))


def _refiner_line(figures: Figures) -> str:
    """The refiner worker's cost, empty when frames are not refined there."""
    if not figures.refining:
        return ""
    if figures.refine_ms is None:
        return "Refiner  refining the first frame..."
    return f"Refiner {figures.refine_ms:5.0f} ms a frame    {figures.refined_fps:4.1f} refined FPS"


class Inset:
    """A small image over an image's corner: a half-size texture (a quarter of the upload),
    a frame in the accent colour and a label inside its top."""

    def __init__(self, drawlist: int, render_size: int, before: int):
        self.texture = FrameTexture((render_size + 1) // 2, (0.0, 0.0, 0.0))
        self._image = self.texture.drawn_by(dpg.draw_image(self.texture.tag, (0, 0), (1, 1), parent=drawlist,
                                                           before=before, show=False))
        self._frame = dpg.draw_rectangle((0, 0), (1, 1), color=(*theme.ACCENT, 255), thickness=2,
                                         parent=drawlist, before=before, show=False)
        self._label = dpg.draw_text((0, 0), "", size=theme.OVERLAY_FONT_SIZE, color=theme.TEXT,
                                    parent=drawlist, before=before, show=False)
        self.shown = False

    def show(self, image: np.ndarray | None, label: str) -> None:
        """Show every other pixel of ``image`` (None: hide the inset)."""
        if image is not None:
            self.texture.show(image[::2, ::2])
        shown = image is not None
        if shown != self.shown:
            self.shown = shown
            for item in (self._image, self._frame, self._label):
                dpg.configure_item(item, show=shown)
        dpg.configure_item(self._label, text=label)

    def place(self, pmin: tuple[float, float], pmax: tuple[float, float]) -> None:
        dpg.configure_item(self._image, pmin=pmin, pmax=pmax)
        dpg.configure_item(self._frame, pmin=pmin, pmax=pmax)
        dpg.configure_item(self._label, pos=(pmin[0] + 6, pmin[1] + 4))
