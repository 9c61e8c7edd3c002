"""The per-frame path up to the driving state, shared by the app, ``drive`` and ``eval``.

    input (video, webcam, stream) -> tracker -> FLAME fit -> animator -> DrivingState
                                     \\________ DrivingPipeline ________/

then :func:`core.avatar.view.render_view` poses the avatar's Gaussians, renders them and
runs the refiner. Synchronous use steps frames one by one::

    with DrivingPipeline(config, avatar) as pipeline:
        for frame in VideoFileSource("talk.mp4"):
            driven = pipeline.step(frame)
            image = render_view(avatar, View(avatar.camera(), lod=1), driven.state, "cpu")

``drive_input(input, pipeline)`` yields an input's driven frames in order on the caller's
thread; pipelined use runs the same loop one frame ahead of the renderer on a
:class:`DrivingThread`.

A driver folder of the OMG-Avatar release needs no tracker: its frames carry FLAME codes and
a camera (:mod:`core.driving.release_driver`), which :mod:`core.driving.release_states` turns
into driving states (and cameras); its cropped frames are :mod:`core.driving.release_images`.
"""

from core.driving.inputs import DrivingInput, VideoPlayback
from core.driving.live import CameraStatus, LiveCamera, list_webcams
from core.driving.pipeline import STAGES, DrivenFrame, DrivingPipeline, drive_input, flame_fitting
from core.driving.worker import Delivery, DrivingEvent, DrivingThread

__all__ = [
    "STAGES",
    "CameraStatus",
    "Delivery",
    "DrivenFrame",
    "DrivingEvent",
    "DrivingInput",
    "DrivingPipeline",
    "DrivingThread",
    "LiveCamera",
    "VideoPlayback",
    "drive_input",
    "flame_fitting",
    "list_webcams",
]
