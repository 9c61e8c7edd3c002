"""A CI-sized training run of the released network: the tiny config (32 px render) on the
synthetic dataset learns: the loss falls and the validation PSNR rises above step 0's."""

from __future__ import annotations

import time

from core.train.run_log import read_log
from core.train.trainer import ModelFiles, Trainer, TrainOptions
from synthetic_pairs import train_config, write_flame, write_synthetic_dataset

STEPS = 12


def test_tiny_training_lowers_the_loss_and_raises_validation_psnr(tmp_path):
    config = train_config(batch_size=2, validation_every=STEPS, checkpoint_every=STEPS)
    flame = write_flame(tmp_path / "flame")
    data = write_synthetic_dataset(tmp_path / "data", config, flame, clips=5, frames=4)
    options = TrainOptions(data, tmp_path / "run", steps=STEPS, files=ModelFiles(flame=flame, random_dinov2=True))
    trainer = Trainer(config, options)
    started = time.perf_counter()
    summary = trainer.fit()
    seconds = time.perf_counter() - started
    losses = [record["loss"] for record in read_log(tmp_path / "run") if record["kind"] == "train"]
    validation = [record for record in read_log(tmp_path / "run") if record["kind"] == "validation"]
    print(f"{STEPS / seconds:.2f} steps/s; loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
          f"val PSNR {summary['val_psnr_first']:.2f} -> {summary['val_psnr_last']:.2f} dB, coarse "
          f"{validation[0]['coarse_psnr_lod0']:.2f} -> {validation[-1]['coarse_psnr_lod0']:.2f} dB")  # fmt: skip
    assert len(losses) == STEPS and summary["loss_first"] == losses[0] and summary["loss_last"] == losses[-1]
    assert sum(losses[-3:]) / 3 <= 0.6 * losses[0]
    assert summary["val_psnr_last"] > summary["val_psnr_first"] + 1.0
    assert validation[-1]["coarse_psnr_lod0"] > validation[0]["coarse_psnr_lod0"] + 1.0  # the splats learn too
