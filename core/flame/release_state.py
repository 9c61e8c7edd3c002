"""FLAME as the released network carries it (its ``flame_model``): :class:`ReleaseFlame`'s maths
with the release's 16 state-dict entries, so that the network's state dict has the release's
keys and its checkpoint's ``flame_model.*`` load by name.

The entries, in the release's order: ``faces_tensor`` [F, 3] (our ``faces``), ``v_template``,
``shapedirs`` [V, 3, 400], ``posedirs`` [P, 3V] (ours is [V, 3, P]: the release's is its
transposed flattening), ``J_regressor``, ``parents``, ``lbs_weights``, and buffers the release's
inference never reads: ``eye_pose`` [1, 6] and ``neck_pose`` [1, 3] (zeros), the landmark
embeddings ``lmk_faces_idx`` [51], ``lmk_bary_coords`` [51, 3], ``dynamic_lmk_faces_idx``
[79, 17], ``dynamic_lmk_bary_coords`` [79, 17, 3], ``full_lmk_faces_idx`` [1, 70],
``full_lmk_bary_coords`` [1, 70, 3] (zeros until a checkpoint is loaded) and
``neck_kin_chain`` [2] = (1, 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.flame.files import FlameModelData
from core.flame.release import ReleaseFlame

#: The landmark buffers the release carries (static 51, dynamic 79 x 17, 70 with the eyes).
LANDMARK_SHAPES = {
    "lmk_faces_idx": ((51,), torch.int64),
    "lmk_bary_coords": ((51, 3), torch.float32),
    "dynamic_lmk_faces_idx": ((79, 17), torch.int64),
    "dynamic_lmk_bary_coords": ((79, 17, 3), torch.float32),
    "full_lmk_faces_idx": ((1, 70), torch.int64),
    "full_lmk_bary_coords": ((1, 70, 3), torch.float32),
}
#: Entries that are :class:`ReleaseFlame`'s own buffers (under another name or layout for two).
SHARED = ("faces_tensor", "v_template", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights")
ORDER = (*SHARED, "eye_pose", "neck_pose", *LANDMARK_SHAPES, "neck_kin_chain")


class ReleaseFlameModel(ReleaseFlame):
    """:class:`ReleaseFlame` whose ``state_dict`` / ``load_state_dict`` speak the release's
    ``flame_model`` entries (see the module docstring)."""

    def __init__(self, model: FlameModelData) -> None:
        super().__init__(model)
        self.register_buffer("eye_pose", torch.zeros(1, 6))
        self.register_buffer("neck_pose", torch.zeros(1, 3))
        for name, (shape, dtype) in LANDMARK_SHAPES.items():
            self.register_buffer(name, torch.zeros(shape, dtype=dtype))
        self.register_buffer("neck_kin_chain", torch.tensor([1, 0], dtype=torch.int64))
        self.register_state_dict_post_hook(_release_entries)
        self.register_load_state_dict_pre_hook(_load_release_entries)

    def release_entry(self, name: str) -> Tensor:
        """The release's entry ``name`` (a view of our buffer for the shared ones)."""
        if name == "faces_tensor":
            return self.faces
        if name == "posedirs":
            return self.posedirs.reshape(-1, self.posedirs.shape[2]).T
        return getattr(self, name)


def _release_entries(module: ReleaseFlameModel, state_dict: dict, prefix: str, local_metadata) -> None:
    """State-dict post-hook: the release's entries, in its order."""
    for name in ORDER:
        state_dict.pop(prefix + name, None)
    for name in ORDER:
        state_dict[prefix + name] = module.release_entry(name).detach()


def _load_release_entries(
    module: ReleaseFlameModel, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    """Load pre-hook: the release's shared entries into our buffers (missing ones reported); the
    others are ordinary persistent buffers and load the usual way."""
    for name in SHARED:
        key = prefix + name
        if key not in state_dict:
            missing_keys.append(key)
            continue
        value, expected = state_dict.pop(key), module.release_entry(name).shape
        if tuple(value.shape) != tuple(expected):
            error_msgs.append(f"size mismatch for {key}: copying {list(value.shape)}, model has {list(expected)}")
            continue
        if name == "posedirs":  # [P, 3V] -> ours [V, 3, P]
            value = value.T.reshape(module.posedirs.shape)
        target = module.faces if name == "faces_tensor" else getattr(module, name)
        with torch.no_grad():
            target.copy_(value)
