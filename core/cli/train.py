"""``omg-avatar train``: train the released OMG-Avatar network on a dataset in the layout of
:mod:`core.dataset.layout` (see :mod:`core.train.trainer`). Under ``torchrun`` every process
runs this command; rank 0 prints, logs and writes files.

Writes to the run folder: ``training_state.pt`` (resumable, ``--resume``), ``log.jsonl``,
``images/step_<n>.png`` and, at the end, ``network.safetensors`` (the network method's
checkpoint: ``omg-avatar reconstruct --method network --checkpoint RUN_DIR/network.safetensors
--flame FILE``). ``--json`` writes ``loss_first``, ``loss_last``, ``loss_first_mean``,
``loss_last_mean`` (over the first and last 10 steps), ``val_psnr_first``, ``val_psnr_last``
(dB, level 0), ``steps``, ``steps_per_second`` and ``weights``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.arguments import positive_int
from core.config import load_config
from core.fileio import write_json_atomic
from core.progress import ProgressClock
from core.train.distributed import Distributed
from core.train.summary import LOSS_WINDOW
from core.train.trainer import WEIGHTS_FILE, ModelFiles, StepRecord, Trainer, TrainOptions

PROGRESS_INTERVAL_S = 5.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the OMG-Avatar network on a preprocessed dataset",
        description="Train the network on (source, driving) frame pairs of a dataset written by "
        "omg-avatar preprocess. Runs on one process, or on several under torchrun "
        "(torchrun --nproc_per_node N -m core.cli train ...).",
    )
    parser.add_argument("--config", required=True, help="config name in assets/configs (paper, tiny) or a YAML file")
    parser.add_argument("--data", required=True, type=Path, metavar="DATASET", help="dataset folder")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--steps", type=positive_int, metavar="N",
                        help="train N steps in all (default: training.epochs passes over the data)")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the run's summary to FILE as JSON")
    parser.add_argument("--flame", type=Path, metavar="FILE",
                        help="the release's FLAME_with_eye.pt, with head_template_mesh.obj and FLAME_masks.pkl "
                             "beside it (default: <models>/flame/FLAME_with_eye.pt)")  # fmt: skip
    parser.add_argument("--dinov2", type=Path, metavar="FILE",
                        help="DINOv2 weights (default: <models>/dinov2/dinov2_vitb14_pretrain.pth)")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    dist = Distributed.from_env()
    dist.start()
    try:
        options = TrainOptions(
            data=args.data,
            run_dir=args.out or Path("runs") / config.name,
            steps=args.steps,
            resume=args.resume,
            files=ModelFiles(flame=args.flame, dinov2=args.dinov2),
        )
        trainer = Trainer(config, options, dist)
        start_step, started = trainer.step, time.perf_counter()
        if dist.is_main:
            print(
                f"training {config.name} for {trainer.total_steps} steps (from step {start_step}), batch "
                f"{config.training.batch_size} over {dist.world_size} process(es) on {trainer.device}; "
                f"{len(trainer.train_set)} training and {len(trainer.val_set)} validation pairs; "
                f"run folder {options.run_dir}"
            )
        summary = trainer.fit(on_step=_progress_printer(started, start_step))
        elapsed = time.perf_counter() - started
        if dist.is_main:
            summary.update(
                steps=trainer.step,
                steps_per_second=(trainer.step - start_step) / elapsed if elapsed > 0 else None,
                weights=str(options.run_dir / WEIGHTS_FILE),
            )
            print(
                f"done: loss {summary['loss_first']:.4f} -> {summary['loss_last']:.4f} (mean of {LOSS_WINDOW} "
                f"steps {summary['loss_first_mean']:.4f} -> {summary['loss_last_mean']:.4f}), validation PSNR "
                f"{summary['val_psnr_first']:.2f} -> {summary['val_psnr_last']:.2f} dB; weights in {summary['weights']}"
            )
            if args.json:
                write_json_atomic(args.json, summary)
    finally:
        dist.stop()
    return 0


def _progress_printer(started: float, start_step: int):
    """An ``on_step`` callback that prints a line every :data:`PROGRESS_INTERVAL_S` seconds and at the last step."""
    clock = ProgressClock(PROGRESS_INTERVAL_S)

    def report(record: StepRecord) -> None:
        if clock.due() or record.step == record.total_steps:
            rate = (record.step - start_step) / max(time.perf_counter() - started, 1e-9)
            parts = ", ".join(f"{name} {value:.4f}" for name, value in record.parts.items())
            print(f"step {record.step}/{record.total_steps}  LOD {record.lod}  loss {record.loss:.4f} ({parts})  "
                  f"lr {record.learning_rate:.2e}  {rate:.2f} steps/s", flush=True)  # fmt: skip

    return report
