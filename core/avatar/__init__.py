"""Avatars: reconstruction methods producing one :class:`Avatar` type, its ``.omg`` file,
and the per-frame animation core.

    from core.avatar import Animator, load_avatar, reconstruct, save_avatar
    avatar = reconstruct(portrait)                 # training-free by default
    save_avatar(avatar, "me.omg"); avatar = load_avatar("me.omg")
    animator = Animator(avatar)
    for tracked in tracker.track_frames(frames):   # core.tracking.Tracker
        gaussians = avatar.gaussians(lod=1, state=animator.drive(tracked))
        image = render(gaussians, avatar.camera()).features
"""

from core.avatar.animation import Animator
from core.avatar.avatar import Avatar, AvatarError, DrivingState
from core.avatar.avatar_file import AvatarFileError, load_avatar, save_avatar
from core.avatar.reconstruction import (
    ReconstructionCancelled,
    UnknownMethodError,
    available_methods,
    reconstruct,
)

__all__ = [
    "Animator",
    "Avatar",
    "AvatarError",
    "AvatarFileError",
    "DrivingState",
    "ReconstructionCancelled",
    "UnknownMethodError",
    "available_methods",
    "load_avatar",
    "reconstruct",
    "save_avatar",
]
