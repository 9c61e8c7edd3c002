"""What changes with the training step: the level of detail trained and the learning rate.

Levels of detail are switched on progressively (the paper): level k joins the trained
levels once ``step >= lod_schedule[k] * total_steps``; each step trains one of the levels
on so far, in turn (``step`` modulo their count), so coarse levels keep training after
finer ones join. Every process of a distributed run computes the same level.
"""

from __future__ import annotations

import torch

from core.config import Config
from core.errors import ConfigError

SCHEDULERS = ("cosine", "constant")


def check_lod_schedule(config: Config) -> None:
    """:class:`ConfigError` unless ``training.lod_schedule`` has one fraction per level
    0..K, starting at 0, non-decreasing, each in [0, 1] (1: the level is never trained)."""
    schedule = config.training.lod_schedule
    levels = config.lod.levels + 1
    if (
        len(schedule) != levels
        or schedule[0] != 0
        or any(b < a for a, b in zip(schedule, schedule[1:]))
        or not all(0 <= f <= 1 for f in schedule)
    ):
        raise ConfigError(
            f"training.lod_schedule must give {levels} fractions in [0, 1] for levels 0..{levels - 1}, "
            f"the first 0, non-decreasing; got {schedule}"
        )


def levels_on(step: int, total_steps: int, schedule: list[float]) -> list[int]:
    """The levels switched on at ``step`` (0-based) of ``total_steps``, coarse first."""
    return [level for level, start in enumerate(schedule) if step >= start * total_steps]


def lod_at(step: int, total_steps: int, schedule: list[float]) -> int:
    """The level of detail trained at ``step`` (0-based) of ``total_steps``."""
    enabled = levels_on(step, total_steps, schedule)
    return enabled[step % len(enabled)]


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """``cosine``: from the learning rate to 0 at ``total_steps``; ``constant``: unchanged."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ConfigError(f"training.scheduler: unknown '{name}', choose one of {', '.join(SCHEDULERS)}")
