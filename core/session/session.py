"""The :class:`Session`: one avatar, what drives it, how it is rendered, and the figures."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from core.avatar import Avatar, DrivingState, available_methods, load_avatar, save_avatar
from core.avatar.animation import REFERENCE_FRAMES, attach_flame
from core.avatar.flame_rig import rig_flame_file
from core.avatar.network_method import NetworkFiles
from core.avatar.view import View
from core.config import Config, load_config
from core.driving import DrivingEvent, DrivingPipeline
from core.errors import OmgError
from core.geometry.camera import Camera
from core.render import available_backends, kernels, resolve_backend, save_ply
from core.render.constants import ALPHA_MIN, EXTENT_SIGMAS
from core.session.controls import ControlRig, idle_controls
from core.session.driving import Driver, DrivingUpdate, TrackedDriver, VideoDriver, WebcamDriver
from core.session.figures import REFINED_RATE_WINDOW_S, Figures, RateMeter, smoothed
from core.session.reconstruction import ReconstructionJob, network_files_in_use
from core.session.refining import RefinedFrame
from core.session.release_folder import ReleaseFolderDriver
from core.session.rendering import RenderedFrame, RenderRequest, RenderThread

#: Renderer choices offered to the user (the torch reference is for tests, not for viewing).
RENDERER_CHOICES = ("auto", "gsplat", "cpu")
#: The One-Euro minimum cutoff (Hz) at smoothing strength 0 and 1 (log scale between).
SMOOTHING_CUTOFF_HZ = (8.0, 0.25)
#: Share of the view's side the home view leaves empty on each side of the avatar.
HOME_MARGIN = 0.07


class Session:
    """The app's state behind the window. Call it from the UI thread only; its workers
    (reconstruction, driver, renderer) hand results over through it."""

    def __init__(self, config: Config | str = "paper", backend: str = "auto"):
        """``backend``: one of :data:`RENDERER_CHOICES`. Unless numba's cache already holds the
        cpu renderer, it starts compiling in a background process; until it is done, ``auto``
        renders with the torch reference (see :mod:`core.render.kernels`)."""
        self.config = config if isinstance(config, Config) else load_config(config)
        self.set_backend(backend)
        if "gsplat" not in available_backends():
            kernels.start_background_compile()
        self.avatar: Avatar | None = None
        self.avatar_name = ""
        self.network_files = NetworkFiles()  # the network method's files (None: default places)
        self.use_refiner = True  # the final image through the avatar's refiner, when it has one
        self.driver: Driver | None = None
        self.last_render_ms = 0.0
        self._controls: ControlRig | None = None
        self._state: DrivingState | None = None  # the newest driven state
        self._driven_by: tuple[int, float] | None = None  # its source frame's index and timestamp
        self._tracker_ms: float | None = None
        self._render_ms: float | None = None
        self._refine_ms: float | None = None
        self._refined = RateMeter(REFINED_RATE_WINDOW_S)
        self._refining = False  # the newest rendered frame's refined images come from the refiner worker
        self._shown = RateMeter()
        self._smoothing_cutoff = self.config.tracking.smoothing.min_cutoff
        self._requests = 0
        self._rendered_by = ""  # the backend of the newest rendered frame
        self._wake = threading.Event()  # set by the renderer and the driver when they have news
        self._renderer = RenderThread(self._wake)

    # ------------------------------------------------------------------ the avatar
    @staticmethod
    def methods() -> list[str]:
        return available_methods()

    def reconstruct(self, photo: str | Path | None, method: str) -> ReconstructionJob:
        """Start building an avatar from ``photo`` (None: the demo portrait) in the background
        (the network method with :attr:`network_files`)."""
        photo = Path(photo) if photo is not None else None
        return ReconstructionJob(photo, method, self.config, self.network_files)

    def set_network_file(self, kind: str, path: str | Path) -> None:
        """Use ``path`` as the network method's ``kind`` file (a :class:`NetworkFiles` field:
        ``checkpoint``, ``flame`` or ``dinov2``) from the next reconstruction on."""
        self.network_files = dataclasses.replace(self.network_files, **{kind: Path(path)})

    def network_files_in_use(self) -> NetworkFiles:
        """The network method's files the next reconstruction uses: :attr:`network_files`,
        else the default places (:func:`~core.session.reconstruction.network_files_in_use`)."""
        return network_files_in_use(self.network_files)

    def set_avatar(self, avatar: Avatar, name: str) -> None:
        """Show and drive ``avatar``; one with a FLAME rig gets its FLAME model when the
        FLAME file (:attr:`network_files`, else the release's in the models folder) is there,
        for driven expressions."""
        flame_file = rig_flame_file(self.network_files.flame) if avatar.flame else None
        self.avatar, self.avatar_name = attach_flame(avatar, flame_file, self.config), name
        self._controls = ControlRig(avatar.rig.landmarks, avatar.flame.source if avatar.flame else None)
        self._state, self._driven_by, self._refine_ms = None, None, None
        if self.driver is not None:
            self.driver.set_avatar(self.avatar)

    def load_avatar(self, path: str | Path) -> None:
        path = Path(path)
        self.set_avatar(load_avatar(path), path.stem)

    def save_avatar(self, path: str | Path) -> Path:
        return save_avatar(self._require_avatar(), path)

    @property
    def lod_counts(self) -> list[int]:
        """Gaussians (head and shoulders) per level of detail of the current avatar."""
        if self.avatar is None:
            return []
        return [self.avatar.num_gaussians(lod) for lod in range(self.avatar.num_lods)]

    @property
    def has_refiner(self) -> bool:
        """Whether the avatar has a neural refiner (network avatars do)."""
        return self.avatar is not None and self.avatar.refiner is not None

    def home_orbit(self) -> tuple[np.ndarray, float, float, float, float]:
        """Where the viewer starts: (target, yaw and pitch in degrees, distance, normalised
        focal length), in :meth:`Camera.orbit`'s conventions.

        Yaw and pitch are the source photo's direction about the rig centre and the focal is
        the photo's, so the perspective is the photo's. The target and distance frame the
        neutral avatar as the viewer shows it after a reset, from the front (yaw 0, pitch 0;
        :class:`~app.orbit_camera.OrbitCamera`): centred, :data:`HOME_MARGIN` of the view
        left empty on each side. The photo's own view is its crop, which big hair fills to
        the top and whose bottom edge cuts the shoulders."""
        avatar = self._require_avatar()
        camera, centre = avatar.source_camera, avatar.rig.centre.astype(np.float64)
        offset = camera.center - centre
        yaw = math.degrees(math.atan2(offset[0], offset[2]))
        pitch = math.degrees(math.asin(float(np.clip(offset[1] / np.linalg.norm(offset), -1.0, 1.0))))
        focal = camera.K[0, 0] / (min(camera.width, camera.height) / 2.0)
        front = Camera.orbit(centre, 0.0, 0.0, 1.0, 1, 1, focal).R  # the reset view's turn (any size)
        target, distance = framing_orbit(*footprints(avatar, front), front, focal, HOME_MARGIN)
        return target, yaw, pitch, distance, focal

    def _require_avatar(self) -> Avatar:
        if self.avatar is None:
            raise OmgError("there is no avatar yet: open a photo or an .omg file first")
        return self.avatar

    # ------------------------------------------------------------------ driving
    def drive_video(
        self, path: str | Path, paced_by_consumer: bool = False, reference_frames: int = REFERENCE_FRAMES
    ) -> VideoDriver:
        """Drive from a video file (real time; ``paced_by_consumer``: every frame, for
        benchmarks); its first ``reference_frames`` faces make the driver's neutral face."""
        return self._start(VideoDriver(Path(path), self._pipeline(reference_frames), self._wake, paced_by_consumer))

    def drive_webcam(self, spec: int | str, stamped: bool = False) -> WebcamDriver:
        """Drive from a live camera: webcam ``spec`` (a number) or the stream at URL ``spec``
        (``stamped``: its frames carry the loopback camera's corner code; see :class:`WebcamDriver`)."""
        return self._start(WebcamDriver(spec, self._pipeline(REFERENCE_FRAMES), self._wake, stamped))

    def drive_release_folder(self, path: str | Path) -> ReleaseFolderDriver:
        """Drive from a tracked driver folder of the OMG-Avatar release, looping in real time
        (see :mod:`core.session.release_folder`); a folder that cannot be read raises
        :class:`~core.errors.ModelFileError` and the current driver goes on."""
        driver = ReleaseFolderDriver(path, self.avatar, self._wake)
        return self._start(driver)

    def stop_driving(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        self.driver, self._state, self._driven_by, self._tracker_ms = None, None, None, None

    def _pipeline(self, reference_frames: int) -> DrivingPipeline:
        """The per-frame path for a new driver (before there is an avatar it only tracks)."""
        pipeline = DrivingPipeline(self.config, self.avatar, reference_frames)
        pipeline.set_smoothing(self._smoothing_cutoff)
        return pipeline

    def _start(self, driver: Driver) -> Driver:
        self.stop_driving()
        self.driver = driver.start()
        return driver

    def recenter(self) -> None:
        """Take the driving face as it is now as its neutral face."""
        if self.driver is not None:
            self.driver.recenter()

    def set_smoothing(self, strength: float) -> None:
        """0 follows every jitter, 1 is very smooth and slow (the tracker's One-Euro cutoff)."""
        low, high = SMOOTHING_CUTOFF_HZ
        self._smoothing_cutoff = low * (high / low) ** float(np.clip(strength, 0.0, 1.0))
        if self.driver is not None:
            self.driver.set_smoothing_cutoff(self._smoothing_cutoff)

    def smoothing_strength(self) -> float:
        low, high = SMOOTHING_CUTOFF_HZ
        return math.log(self._smoothing_cutoff / low) / math.log(high / low)

    def idle_state(self, seconds: float) -> DrivingState:
        """The idle animation ``seconds`` after it started."""
        return self.manual_state(idle_controls(seconds))

    def manual_state(self, controls: dict[str, float]) -> DrivingState:
        """The state for manual ``controls`` (see :data:`core.session.controls.MANUAL_CONTROLS`)."""
        self._require_avatar()
        return self._controls.state(controls)

    def poll(self) -> tuple[DrivingUpdate | None, list[DrivingEvent]]:
        """The driver's newest frame (None if nothing new) and its events since the last poll."""
        if self.driver is None:
            return None, []
        frame, events = self.driver.take(), self.driver.events()
        if frame is not None:
            if frame.tracker_ms is not None:
                self._tracker_ms = smoothed(self._tracker_ms, frame.tracker_ms)
            if frame.state is not None:
                self._state, self._driven_by = frame.state, (frame.position, frame.timestamp_s)
        return frame, events

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, waking early when a frame was rendered or driven."""
        self._wake.wait(timeout)
        self._wake.clear()

    # ------------------------------------------------------------------ rendering
    def set_backend(self, name: str) -> None:
        """Render with ``name`` from now on (``auto`` is resolved per frame)."""
        resolve_backend(name)  # raises for an unknown or unavailable backend
        self.backend = name

    @staticmethod
    def backends() -> list[str]:
        """The renderers this machine can run, among :data:`RENDERER_CHOICES`."""
        return [name for name in available_backends() if name in RENDERER_CHOICES]

    def set_use_refiner(self, on: bool) -> None:
        """Show the final image through the avatar's refiner (when it has one), or the coarse RGB."""
        self.use_refiner = bool(on)

    def request_render(self, views: list[View], state: DrivingState | None = None) -> int:
        """Ask the render thread for ``views`` (``state`` None: the newest driven state); a
        request that has not started yet is replaced. Returns the request's serial number."""
        driven_by = self._driven_by if state is None else None
        state = self._state if state is None else state
        self._requests += 1
        backend = resolve_backend(self.backend)
        avatar = self._require_avatar()
        views = tuple(dataclasses.replace(view, use_refiner=self.use_refiner) for view in views)
        tracked = isinstance(self.driver, TrackedDriver)
        cpu_threads = 1 if tracked else None  # a tracker shares the cores
        follows = self.driver.newest_state if driven_by is not None and tracked and not self.driver.paced else None
        self._renderer.submit(RenderRequest(self._requests, avatar, views, state, backend, driven_by, cpu_threads,
                                            follows))  # fmt: skip
        return self._requests

    def renders_driven_frame(self, position: int) -> bool:
        """Whether the renderer already started on source frame ``position`` by itself (a request
        that follows a live driver takes its newest state): the UI need not ask for it again."""
        started = self._renderer.started_driven_by
        return started is not None and started[0] == position

    def rendered(self) -> RenderedFrame | None:
        """The render thread's newest finished frame, once. When it is ``refining``, its images
        are the coarse RGB and :meth:`refined` delivers the refined ones later."""
        frame = self._renderer.take()
        if frame is not None and frame.error is None:
            self.last_render_ms = frame.render_ms
            self._rendered_by = frame.request.backend
            self._render_ms = smoothed(self._render_ms, frame.render_ms)
            self._refining = frame.refining
        return frame

    def refined(self) -> RefinedFrame | None:
        """The refiner worker's newest refined frame, once (see :mod:`core.session.rendering`)."""
        frame = self._renderer.take_refined()
        if frame is not None and frame.error is None:
            self._refine_ms = smoothed(self._refine_ms, frame.refine_ms)
            self._refined.tick()
        return frame

    def frame_shown(self) -> None:
        """Count a new avatar frame on screen (the end-to-end rate)."""
        self._shown.tick()

    def figures(self, lod: int) -> Figures:
        counts = self.lod_counts
        return Figures(
            render_fps=1000.0 / self._render_ms if self._render_ms else 0.0,
            end_to_end_fps=self._shown.rate(),
            tracker_ms=self._tracker_ms if self.driver is not None else None,
            gaussians=counts[lod] if lod < len(counts) else 0,
            lod=lod,
            backend=self._rendered_by or resolve_backend(self.backend),
            compiling=self.compiling_renderer,
            refining=self._refining,
            refine_ms=self._refine_ms if self._refining else None,
            refined_fps=self._refined.rate() if self._refining else 0.0,
            camera=self.driver.status() if isinstance(self.driver, WebcamDriver) else None,
        )

    def export_ply(self, path: str | Path, lod: int, state: DrivingState | None = None) -> Path:
        """The Gaussians of ``lod`` in ``state`` (None: the newest driven one) as a 3DGS PLY file."""
        state = self._state if state is None else state
        with torch.inference_mode():
            return save_ply(self._require_avatar().gaussians(lod, state), path)

    @property
    def compiling_renderer(self) -> bool:
        """Whether the cpu renderer still compiles in the background (first start on a machine)."""
        return kernels.compiling()

    def close(self) -> None:
        """Stop the driver, the render thread and the refiner worker (each within half a
        second, unless a refinement is under way). A background
        compile of the renderer goes on in its own process until the cache is filled."""
        self.stop_driving()
        self._renderer.stop()


def footprints(avatar: Avatar, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the neutral ``avatar`` can colour a pixel: per Gaussian of its coarsest level of
    detail, its centre [N, 3] and the half sizes [N, 3] of the box that bounds its footprint,
    both along the axes of ``rotation`` ([3, 3], world to camera: x right, y down, z forward),
    in world units. The coarsest level's Gaussians are the largest: its footprint holds the
    finer levels' (by a few pixels of 256 on the sample avatars), so the framing does not
    depend on the level shown, and it is the quickest to bound.

    Renderers draw a Gaussian out to ``EXTENT_SIGMAS`` standard deviations, and only as far as
    its alpha reaches ``ALPHA_MIN`` (:mod:`core.render.constants`): a faint one ends sooner, one
    fainter than that draws nothing. Seen along z, the box's x and y half sizes are those of
    the footprint's bounding box (the projection's low-pass, under a pixel, is left out).
    """
    with torch.inference_mode():
        gaussians = avatar.gaussians(0)
    opacities, means, quats, scales = (value.double().numpy() for value in (
        gaussians.opacities, gaussians.means, gaussians.quats, gaussians.scales))
    drawn = opacities >= ALPHA_MIN
    # alpha = opacity * exp(-s^2 / 2) at s standard deviations falls to ALPHA_MIN at this s
    sigmas = np.minimum(np.sqrt(2.0 * np.log(opacities[drawn] / ALPHA_MIN)), EXTENT_SIGMAS)
    # A Gaussian's standard deviation along a camera axis u is |diag(scales) A^T u|, with A its
    # axes (columns); the rows of ``rotation @ A`` are those u^T A. scipy's quaternions are xyzw.
    turned = rotation @ Rotation.from_quat(quats[drawn][:, [1, 2, 3, 0]]).as_matrix()  # [n, 3, 3]
    deviations = np.linalg.norm(turned * scales[drawn][:, None, :], axis=2)  # [n, 3]
    return means[drawn] @ rotation.T, sigmas[:, None] * deviations


def framing_orbit(
    centres: np.ndarray, half_sizes: np.ndarray, rotation: np.ndarray, focal: float, margin: float
) -> tuple[np.ndarray, float]:
    """The orbit target [3] and distance from which a square camera turned by ``rotation``
    ([3, 3], world to camera) with the normalised ``focal`` sees all the boxes (``centres`` and
    ``half_sizes``, [N, 3] each, along the camera's axes) inside its view less ``margin`` of
    its side on each side, centred, from as close as that allows. The target is on the
    optical axis, at the boxes' middle depth.

    Along one image axis, with the eye at ``e`` across and ``d`` along the view, a box at ``x``
    and depth ``z`` shows inside when both its sides ``x +- h`` do at its near depth ``z - h_z``:
    ``|x +- h - e| <= k (z - h_z - d)`` with ``k = (1 - 2 margin) / focal`` (the view's edge is
    at ``focal * x / z = 1``). For all boxes that is ``e - k d >= low`` and ``e + k d <= high``:
    the eye comes closest, ``d`` largest, with ``e`` halfway between the bounds, on each axis.
    """
    k = (1.0 - 2.0 * margin) / focal
    near = centres[:, 2] - half_sizes[:, 2]
    low = np.max(centres[:, :2] + half_sizes[:, :2] - k * near[:, None], axis=0)  # [2], per image axis
    high = np.min(centres[:, :2] - half_sizes[:, :2] + k * near[:, None], axis=0)
    eye_depth = float(np.min((high - low) / (2.0 * k)))  # the axis the avatar fills decides
    middle = (float(near.min()) + float(np.max(centres[:, 2] + half_sizes[:, 2]))) / 2.0
    target = rotation.T @ np.array([*(low + high) / 2.0, middle])
    return target, middle - eye_depth
