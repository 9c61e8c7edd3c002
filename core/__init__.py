"""OMG-Avatar core: one photo to an animatable multi-LOD Gaussian avatar, driven per frame.

Two paths run through the packages, and each step has one owner:

Reconstruction, once per photo::

    photo -> portrait crop, landmarks, mask      tracking.photo
          -> (FLAME fit, features, encode)       tracking.flame_tracking, model   (network)
          -> Avatar (every LOD), .omg file        avatar.reconstruction, avatar.avatar_file

Animation, per frame::

    input (video, webcam, stream)                driving.inputs, driving.live (read tracking.sources)
    -> tracker: face mesh, followed face, crop,   tracking.tracker, tracking.follow
       smoothing, pose
    -> FLAME fit                                 tracking.flame_tracking
    -> driving state                             avatar.animation (Animator)
       (the three above: driving.DrivingPipeline; driving.DrivingThread runs it ahead)
    -> Gaussians -> render -> refiner -> image   avatar.view.render_view (render, model.refiner)

Who runs them: ``session`` (the app's only door into the core), ``cli`` (the
``omg-avatar`` commands, e.g. ``drive``), ``evaluation`` (``eval``'s reenactment and
metrics) and ``train`` (the network's training, on ``dataset``'s layout).

Below them: ``config`` (YAML into dataclasses), ``paths`` (assets and the user's model
files), ``fileio`` and ``media`` (atomic writes, video and images), ``geometry`` (camera,
subdivision, mesh helpers, least squares), ``flame`` (FLAME files, LBS, parameters) and
``render`` (Gaussians, the gsplat / cpu / reference backends, PLY).
"""

__version__ = "0.1.0"
