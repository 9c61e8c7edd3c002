"""The trainer: progressive levels of detail, the learning-rate schedule, resumable
checkpoints that continue the same loss curve bit for bit, the exported weights, and
one-line errors for missing model files and mismatched resumes."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from core.errors import ConfigError, ModelFileError
from core.model.checkpoint import load_strict, read_checkpoint
from core.train.run_log import TENSORBOARD_DIR, read_log
from core.train.schedules import check_lod_schedule, levels_on, lod_at, make_scheduler
from core.train.state import FILE, TrainingStateError, load_state
from core.train.summary import KEYS as SUMMARY_KEYS
from core.train.summary import LOSS_WINDOW, RunSummary
from core.train.trainer import WEIGHTS_FILE, ModelFiles, Trainer, TrainOptions, build_network
from lpips_stand_in import write_stand_in_lpips
from synthetic_pairs import flame_layer, train_config, write_flame, write_synthetic_dataset

CONFIG = train_config(batch_size=4, checkpoint_every=3, validation_every=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    flame = write_flame(root / "flame")
    # 3 training clips of 3 frames: 2 steps of 4 pairs per epoch, so 6 steps cross epochs
    data = write_synthetic_dataset(root / "data", CONFIG, flame_layer(flame, CONFIG), clips=4, frames=3)
    return data, ModelFiles(flame=flame, random_dinov2=True)


def trainer(files, run_dir, steps=6, resume=False, config=CONFIG) -> Trainer:
    data, model_files = files
    return Trainer(config, TrainOptions(data, run_dir, steps=steps, resume=resume, files=model_files))


def train_losses(run_dir) -> list[float]:
    return [record["loss"] for record in read_log(run_dir) if record["kind"] == "train"]


# --------------------------------------------------------------------------- schedules
def test_levels_of_detail_switch_on_progressively_and_then_take_turns():
    schedule = [0.0, 0.3, 0.6]
    assert [lod_at(step, 10, schedule) for step in range(10)] == [0, 0, 0, 1, 0, 1, 0, 1, 2, 0]
    assert levels_on(9, 10, schedule) == [0, 1, 2] and levels_on(9, 10, [0.0, 0.5, 1.0]) == [0, 1]


@pytest.mark.parametrize("schedule", [[0.0, 0.5], [0.1, 0.5, 0.6], [0.0, 0.6, 0.5], [0.0, 0.5, 1.5]])
def test_a_bad_lod_schedule_is_a_config_error(schedule):
    config = train_config(lod_schedule=schedule)
    with pytest.raises(ConfigError, match="training.lod_schedule"):
        check_lod_schedule(config)


def test_cosine_schedule_falls_to_zero_and_constant_stays():
    rates = {}
    for name in ("cosine", "constant"):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make_scheduler(name, optimizer, 4)
        rates[name] = []
        for _ in range(5):
            rates[name].append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
    assert rates["cosine"][0] == 1.0 and rates["cosine"][2] == pytest.approx(0.5) and rates["cosine"][4] < 1e-12
    assert rates["constant"] == [1.0] * 5
    with pytest.raises(ConfigError, match="unknown 'step'"):
        make_scheduler("step", optimizer, 4)


# --------------------------------------------------------------------------- summary
def test_the_summary_keeps_first_and_latest_losses_their_window_means_and_psnrs_across_a_resume():
    summary = RunSummary()
    assert set(summary.values()) == set(SUMMARY_KEYS) and not any(summary.values().values())
    losses = [float(step) for step in range(1, 26)]
    for loss in losses[:12]:
        summary.add_loss(loss)
    for psnr in (10.0, 12.0, 15.0):
        summary.add_validation(psnr)
    resumed = RunSummary()
    resumed.load_state_dict(summary.state_dict())
    for loss in losses[12:]:
        resumed.add_loss(loss)
    values = resumed.values()
    assert (values["loss_first"], values["loss_last"]) == (1.0, 25.0)
    assert values["loss_first_mean"] == sum(losses[:LOSS_WINDOW]) / LOSS_WINDOW
    assert values["loss_last_mean"] == sum(losses[-LOSS_WINDOW:]) / LOSS_WINDOW
    assert (values["val_psnr_first"], values["val_psnr_last"]) == (10.0, 15.0)


# --------------------------------------------------------------------------- resume
def tensorboard_scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    """(step, value) of ``tag`` as TensorBoard reads the run's event files (purged steps dropped)."""
    board = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    board.Reload()
    return [(event.step, event.value) for event in board.Scalars(tag)]


def test_resume_continues_the_same_loss_curve_bit_for_bit(files, tmp_path):
    straight = trainer(files, tmp_path / "straight")
    straight.fit()
    interrupted = trainer(files, tmp_path / "resumed")
    interrupted.fit(until=3)
    assert interrupted.step == 3 and load_state(tmp_path / "resumed")["step"] == 3
    resumed = trainer(files, tmp_path / "resumed", resume=True)
    assert resumed.step == 3
    summary = resumed.fit()
    expected = train_losses(tmp_path / "straight")
    assert len(expected) == 6 and len(set(expected)) == 6
    assert train_losses(tmp_path / "resumed") == expected  # exactly equal
    # TensorBoard drops what the interrupted run logged after its checkpoint, like log.jsonl
    assert [step for step, _ in tensorboard_scalars(tmp_path / "resumed", "train/loss")] == list(range(1, 7))
    assert [value for _, value in tensorboard_scalars(tmp_path / "resumed", "train/loss")] == pytest.approx(expected)
    assert summary == straight.summary.values()
    assert summary["loss_first"] == expected[0] and summary["loss_last"] == expected[-1]
    assert summary["loss_first_mean"] == pytest.approx(sum(expected) / 6)  # a window longer than the run
    assert summary["val_psnr_first"] is not None and summary["val_psnr_last"] is not None
    # both runs export the same weights
    state_a, config = read_checkpoint(tmp_path / "straight" / WEIGHTS_FILE)
    state_b, _ = read_checkpoint(tmp_path / "resumed" / WEIGHTS_FILE)
    assert config == CONFIG and state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)


def test_the_checkpoint_holds_model_optimiser_scheduler_step_rng_and_data_position(files, tmp_path):
    run = trainer(files, tmp_path, steps=6)
    run.fit(until=3)
    state = load_state(tmp_path)
    assert {"model", "optimizer", "scheduler", "scaler", "step", "rng", "data", "config", "summary"} <= set(state)
    assert state["data"] == {"epoch": 1, "position": 1, "steps_per_epoch": 2, "world_size": 1, "seed": 0}
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["scheduler"]["last_epoch"] == 3 and state["optimizer"]["state"]
    assert not [key for key in state["model"] if key.startswith(("backbone.", "poser."))]
    validation = [record for record in read_log(tmp_path) if record["kind"] == "validation"]
    assert [record["step"] for record in validation] == [0, 3]
    assert {"psnr", "psnr_lod0", "ssim_lod0"} <= set(validation[-1]) and "psnr_lod1" not in validation[-1]
    assert (tmp_path / "images" / "step_00000003.png").is_file()
    assert not (tmp_path / WEIGHTS_FILE).exists()  # only at the end of the run
    # the exported weights fit a freshly built network
    run.fit()
    last = [record for record in read_log(tmp_path) if record["kind"] == "validation"][-1]
    assert last["step"] == 6 and {"psnr_lod1", "ssim_lod1"} <= set(last)  # level 1 joined at step 3
    net = build_network(CONFIG, files[1])
    state, _ = read_checkpoint(tmp_path / WEIGHTS_FILE)
    load_strict(net, state, WEIGHTS_FILE)
    assert torch.equal(net.refiner.to_rgb.weight, run.net.refiner.to_rgb.weight)


def test_a_resumed_run_drops_what_was_logged_after_its_checkpoint(files, tmp_path):
    trainer(files, tmp_path).fit(until=3)
    # a step logged before a crash, never checkpointed
    with open(tmp_path / "log.jsonl", "a") as log:
        log.write('{"step": 4, "kind": "train", "loss": 1000.0}\n')
    board_dir = tmp_path / TENSORBOARD_DIR
    before = set(board_dir.iterdir())
    with SummaryWriter(str(board_dir)) as board:
        board.add_scalar("train/loss", 1000.0, 4)
    # its event file named as if opened in the resume's second by a process whose host, pid
    # and counter sort after the resume's: TensorBoard reads files in name order
    (crashed,) = set(board_dir.iterdir()) - before
    crashed.rename(board_dir / f"events.out.tfevents.{int(time.time()) + 1:010d}.~crashed.99999.9")
    resumed = trainer(files, tmp_path, resume=True)
    assert [record["step"] for record in read_log(tmp_path)] == [0, 1, 2, 3, 3]  # validations at 0 and 3
    resumed.fit()
    logged = tensorboard_scalars(tmp_path, "train/loss")
    assert [step for step, _ in logged] == list(range(1, 7)) and max(value for _, value in logged) < 1000.0


def test_validation_reports_the_evaluation_metrics_with_lpips_from_the_perceptual_weights(files, tmp_path):
    lpips = write_stand_in_lpips(tmp_path / "lpips.safetensors", "vgg")
    config = train_config(batch_size=4, validation_every=100, checkpoint_every=100, perceptual_weights=str(lpips))
    trainer(files, tmp_path / "run", steps=1, config=config).fit()
    records = read_log(tmp_path / "run")
    first_step = next(record for record in records if record["kind"] == "train")
    assert first_step["perceptual"] > 0.0
    last = [record for record in records if record["kind"] == "validation"][-1]
    assert last["lpips_lod0"] > 0.0 and 0.0 < last["ssim_lod0"] < 1.0
    assert {"akd_lod0", "apd_lod0"} <= set(last)  # None: MediaPipe finds no face at 64 px
    assert tensorboard_scalars(tmp_path / "run", "validation/lpips_lod0")[-1][1] == pytest.approx(last["lpips_lod0"])


def test_resuming_needs_a_state_the_same_plan_and_the_same_config(files, tmp_path):
    with pytest.raises(TrainingStateError, match=f"nothing to resume: .*{FILE}"):
        trainer(files, tmp_path, resume=True)
    trainer(files, tmp_path, steps=4).fit(until=1)
    with pytest.raises(TrainingStateError, match="planned for 4 steps"):
        trainer(files, tmp_path, steps=6, resume=True)
    assert trainer(files, tmp_path, steps=None, resume=True).total_steps == 4
    other = dataclasses.replace(CONFIG, training=dataclasses.replace(CONFIG.training, learning_rate=0.5))
    with pytest.raises(TrainingStateError, match="another config"):
        trainer(files, tmp_path, steps=4, resume=True, config=other)


# --------------------------------------------------------------------------- model files
def test_missing_flame_or_dinov2_files_are_one_line_model_file_errors(files, tmp_path):
    data, _ = files
    for model_files, match in (
        (ModelFiles(flame=tmp_path / "absent.pkl", random_dinov2=True), "FLAME model not found"),
        (ModelFiles(flame=files[1].flame, dinov2=tmp_path / "absent.pth"), "DINOv2 weights not found"),
    ):
        with pytest.raises(ModelFileError, match=match) as error:
            Trainer(CONFIG, TrainOptions(data, tmp_path / "run", files=model_files))
        assert "\n" not in str(error.value)
