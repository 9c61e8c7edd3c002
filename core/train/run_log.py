"""What a run writes for people to look at (rank 0 only):

* TensorBoard event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``):
  scalars as ``<kind>/<name>`` (``train/loss``, ``validation/psnr_lod0``, ...) and the
  validation image grid as ``validation/grid``;
* the same scalars in ``RUN_DIR/log.jsonl``, one JSON object per line (``{"step": n,
  "kind": "train" | "validation", name: value, ...}``; null where a metric is unavailable),
  for scripts;
* image grids as ``RUN_DIR/images/step_<n>.png`` (one row per validation pair: source,
  driving, coarse, refined).

A resumed run repeats the steps after its checkpoint, so whatever was logged after it is
dropped: lines of ``log.jsonl`` now, TensorBoard events when TensorBoard reads them
(``purge_step``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from core.fileio import write_bytes_atomic
from core.media import write_png_atomic

LOG_FILE = "log.jsonl"
IMAGES_DIR = "images"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    """Writes scalars and image grids under ``run_dir``; ``resumed_at``: the step a resumed
    run continues from (later records are dropped)."""

    def __init__(self, run_dir: Path, resumed_at: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        purge_step = None
        if resumed_at is not None:
            self._truncate_after(resumed_at)
            _wait_until_new_event_files_sort_last(self.run_dir / TENSORBOARD_DIR)
            purge_step = resumed_at + 1
        self._board = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=purge_step)

    def scalars(self, step: int, kind: str, values: dict[str, float | None]) -> None:
        with open(self.run_dir / LOG_FILE, "a") as file:
            file.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
        for name, value in values.items():
            if value is not None:
                self._board.add_scalar(f"{kind}/{name}", value, step)

    def image_grid(self, step: int, columns: list[Tensor]) -> Path:
        """``columns``: [B, 3, H_i, W_i] images in [0, 1]; each resized to the last one's size."""
        size = columns[-1].shape[-2:]
        resized = [F.interpolate(c.float(), size=size, mode="bilinear", antialias=True) for c in columns]
        grid = torch.cat([torch.cat(list(column), dim=1) for column in resized], dim=2)  # [3, B * H, columns * W]
        array = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        path = self.run_dir / IMAGES_DIR / f"step_{step:08d}.png"
        write_png_atomic(path, array)
        self._board.add_image("validation/grid", array, step, dataformats="HWC")
        return path

    def flush(self) -> None:
        """Put what is logged on disk (TensorBoard buffers its events)."""
        self._board.flush()

    def _truncate_after(self, step: int) -> None:
        path = self.run_dir / LOG_FILE
        if path.is_file():
            lines = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            write_bytes_atomic(path, "".join(line + "\n" for line in lines).encode())


def _wait_until_new_event_files_sort_last(board_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order, and a name is
    ``events.out.tfevents.<unix second>.<host>.<pid>.<counter>``: a file opened in the same
    second as an earlier one may sort before it (pid and counter compare as text), so the
    resumed run's purge would be read before the events it should drop. Waits (under a
    second) until the clock is past the newest file's second."""
    seconds = [int(path.name.split(".")[3]) for path in board_dir.glob("events.out.tfevents.*")]
    if seconds:
        time.sleep(max(0.0, max(seconds) + 1 - time.time()))


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/log.jsonl``, in order."""
    return [json.loads(line) for line in (Path(run_dir) / LOG_FILE).read_text().splitlines()]
