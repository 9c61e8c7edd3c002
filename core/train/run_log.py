"""What a run writes for people to look at (rank 0 only). TensorBoard is not installed
here, so scalars go to ``RUN_DIR/log.jsonl`` (one JSON object per line: ``{"step": n,
"kind": "train" | "validation", name: value, ...}``) and image grids to
``RUN_DIR/images/step_<n>.png`` (one row per validation pair: source, driving, coarse, refined)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

LOG_FILE = "log.jsonl"
IMAGES_DIR = "images"


class RunLog:
    """Appends scalars and writes image grids under ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def scalars(self, step: int, kind: str, values: dict[str, Any]) -> None:
        with open(self.run_dir / LOG_FILE, "a") as file:
            file.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop the lines logged after ``step`` (a resumed run repeats those steps)."""
        path = self.run_dir / LOG_FILE
        if path.is_file():
            lines = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in lines))

    def image_grid(self, step: int, columns: list[Tensor]) -> Path:
        """``columns``: [B, 3, H_i, W_i] images in [0, 1]; each resized to the last one's size."""
        size = columns[-1].shape[-2:]
        resized = [F.interpolate(c.float(), size=size, mode="bilinear", antialias=True) for c in columns]
        grid = torch.cat([torch.cat(list(column), dim=1) for column in resized], dim=2)  # [3, B * H, columns * W]
        array = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        path = self.run_dir / IMAGES_DIR / f"step_{step:08d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(array).save(path)
        return path


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/log.jsonl``, in order."""
    return [json.loads(line) for line in (Path(run_dir) / LOG_FILE).read_text().splitlines()]
