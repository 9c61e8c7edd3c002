"""The desktop app's facade over core: avatars, driving, rendering and figures, no tensors.

The app calls only this package. It keeps the design's two paths apart:

* reconstruction, once per photo, in the background: :meth:`Session.reconstruct` returns a
  :class:`ReconstructionJob` with progress and cancel (photo -> portrait crop -> avatar);
* animation, per frame: a driver thread reads a video or a webcam, tracks the face and
  turns it into a driving state (or plays a tracked driver folder of the release); a render
  thread turns the newest state into images ([H, W, 3] float32 RGB arrays) of the views the
  UI asks for, and a refiner worker refines them as often as it can when the avatar's
  neural refiner is too slow to keep up (:meth:`Session.refined`). None ever blocks the UI.

Without a driving source the avatar follows an idle animation or manual controls.

    session = Session()
    job = session.reconstruct(None, "training-free")   # the demo portrait
    job.wait(); session.set_avatar(job.avatar, job.name)
    session.drive_video("talk.mp4")
    session.request_render([View(camera, lod=1)])      # then session.rendered().images

It also re-exports the plain types and file writers the app uses with it (the camera, the
figures, the latency meter, stream URLs, atomic JSON, PNG and MP4 writers), so the app
imports nothing else from core but :mod:`core.errors`, :mod:`core.paths` and, for its
command line, which loads no torch, :mod:`core.arguments`.
"""

from core.avatar.network_method import NAME as NETWORK_METHOD
from core.avatar.view import INSPECTION_MODES, View
from core.driving import CameraStatus, DrivingEvent, list_webcams
from core.driving.latency import LatencyMeter
from core.fileio import write_json_atomic
from core.geometry.camera import Camera
from core.media import AtomicMp4Writer, MediaWriteError, write_png_atomic
from core.session.controls import MANUAL_CONTROLS, idle_controls
from core.session.driving import PREVIEW_SIZE, DrivingUpdate, VideoDriver, WebcamDriver
from core.session.figures import Figures, RateMeter
from core.session.reconstruction import ReconstructionJob
from core.session.refining import RefinedFrame
from core.session.release_folder import ReleaseFolderDriver
from core.session.rendering import RenderedFrame
from core.session.session import RENDERER_CHOICES, Session
from core.tracking.native_log import filter_native_logs
from core.tracking.stream_urls import is_stream_url, shown_url

__all__ = [
    "INSPECTION_MODES",
    "MANUAL_CONTROLS",
    "NETWORK_METHOD",
    "PREVIEW_SIZE",
    "RENDERER_CHOICES",
    "AtomicMp4Writer",
    "Camera",
    "CameraStatus",
    "DrivingEvent",
    "DrivingUpdate",
    "Figures",
    "LatencyMeter",
    "MediaWriteError",
    "RateMeter",
    "ReconstructionJob",
    "RefinedFrame",
    "ReleaseFolderDriver",
    "RenderedFrame",
    "Session",
    "VideoDriver",
    "View",
    "WebcamDriver",
    "filter_native_logs",
    "idle_controls",
    "is_stream_url",
    "list_webcams",
    "shown_url",
    "write_json_atomic",
    "write_png_atomic",
]
