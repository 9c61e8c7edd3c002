"""The trainer of the released network: progressive levels of detail, the learning-rate
schedule, resumable checkpoints that continue the same loss curve bit for bit, the exported
weights, and one-line errors for missing model files, mismatched resumes and runs of the
earlier network."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from core.config import load_config
from core.errors import ConfigError, ModelFileError
from core.model.network_checkpoint import read_network_checkpoint
from core.model.release_loading import load_release_network
from core.model.release_network import ReleaseConfig
from core.model.encoder import dinov2_vit
from core.model.release_network import release_config
from core.model.release_loading import load_dinov2
from core.model.network_checkpoint import FROM_FILES
from core.train.run_log import TENSORBOARD_DIR, read_log
from core.train.schedules import check_lod_schedule, levels_on, lod_at, make_scheduler
from core.train.state import FILE, TrainingStateError, load_state, save_state
from core.train.summary import KEYS as SUMMARY_KEYS
from core.train.summary import LOSS_WINDOW, RunSummary
from core.train.trainer import WEIGHTS_FILE, ModelFiles, Trainer, TrainOptions
from lpips_stand_in import write_stand_in_lpips
from synthetic_pairs import train_config, write_flame, write_synthetic_dataset

CONFIG = train_config(batch_size=2, checkpoint_every=3, validation_every=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    flame = write_flame(root / "flame")
    # 2 training clips of 2 frames: 2 steps of 2 pairs per epoch, so 6 steps cross epochs
    data = write_synthetic_dataset(root / "data", CONFIG, flame, clips=3, frames=2)
    return data, ModelFiles(flame=flame, random_dinov2=True)


def trainer(files, run_dir, steps=6, resume=False, config=CONFIG) -> Trainer:
    data, model_files = files
    return Trainer(config, TrainOptions(data, run_dir, steps=steps, resume=resume, files=model_files))


def train_losses(run_dir) -> list[float]:
    return [record["loss"] for record in read_log(run_dir) if record["kind"] == "train"]


# --------------------------------------------------------------------------- sizes
def test_the_paper_config_is_the_released_network_and_tiny_is_small():
    assert release_config(load_config("paper")) == ReleaseConfig()
    tiny = release_config(load_config("tiny"))
    assert (tiny.dim, tiny.transformer_layers, tiny.image_size, tiny.refiner_size, tiny.plane_size) == (32, 1, 56, 64, 32)
    assert (tiny.vit_dim, tiny.vit_depth, tiny.vit_heads) == (768, 12, 12)  # timm's vit_base_patch14_dinov2
    small = dataclasses.replace(CONFIG, model=dataclasses.replace(CONFIG.model, backbone="vit_small_patch14_dinov2"))
    assert (release_config(small).vit_dim, release_config(small).vit_heads) == (384, 6)
    other = dataclasses.replace(CONFIG, model=dataclasses.replace(CONFIG.model, backbone="vit_base_patch16_224"))
    with pytest.raises(ConfigError, match="not a DINOv2 ViT with 14 px patches"):
        release_config(other)


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
    # both runs export the same weights, the released network's of the config's sizes
    exported_a = read_network_checkpoint(tmp_path / "straight" / WEIGHTS_FILE)
    exported_b = read_network_checkpoint(tmp_path / "resumed" / WEIGHTS_FILE)
    assert exported_a.sizes == release_config(CONFIG) and exported_a.model.keys() == exported_b.model.keys()
    assert all(torch.equal(exported_a.model[key], exported_b.model[key]) for key in exported_a.model)


def test_the_checkpoint_holds_model_optimiser_scheduler_step_rng_and_data_position(files, tmp_path):
    run = trainer(files, tmp_path, steps=6)
    run.fit(until=3)
    state = load_state(tmp_path)
    assert {"model", "optimizer", "scheduler", "step", "rng", "data", "config", "summary"} <= set(state)
    assert state["data"] == {"epoch": 1, "position": 1, "steps_per_epoch": 2, "world_size": 1, "seed": 0}
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["scheduler"]["last_epoch"] == 3 and state["optimizer"]["state"]
    assert {"head_base", "gs_head_generators.1.color_layers.0.weight", "upsampler.final_linear.weight"} <= set(
        state["model"]
    )
    assert not [key for key in state["model"] if key.startswith(FROM_FILES)]  # DINOv2 and FLAME are files
    validation = [record for record in read_log(tmp_path) if record["kind"] == "validation"]
    assert [record["step"] for record in validation] == [0, 3]
    assert {"psnr", "psnr_lod0", "ssim_lod0"} <= set(validation[-1]) and "psnr_lod1" not in validation[-1]
    assert (tmp_path / "images" / "step_00000003.png").is_file()
    assert not (tmp_path / WEIGHTS_FILE).exists()  # only at the end of the run
    # the exported weights load as the network method loads them (DINOv2 from its file)
    run.fit()
    last = [record for record in read_log(tmp_path) if record["kind"] == "validation"][-1]
    assert last["step"] == 6 and {"psnr_lod1", "ssim_lod1"} <= set(last)  # level 1 joined at step 3
    dinov2 = tmp_path / "dinov2.pth"
    torch.save(run.net.base_dino_model.dino_model.state_dict(), dinov2)
    loaded = load_release_network(tmp_path / WEIGHTS_FILE, files[1].flame, dinov2)
    trained = run.net.state_dict()
    assert loaded.state_dict().keys() == trained.keys()
    assert all(torch.equal(value, trained[key]) for key, value in loaded.state_dict().items())


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
    config = train_config(batch_size=2, validation_every=100, checkpoint_every=100, perceptual_weights=str(lpips))
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


def test_a_run_of_the_earlier_network_is_refused_in_one_line(files, tmp_path):
    save_state(tmp_path, {"step": 3, "model": {"backbone.x": torch.zeros(1)}})
    state = torch.load(tmp_path / FILE, weights_only=True)
    torch.save({**state, "version": 1}, tmp_path / FILE)  # what the earlier trainer wrote
    with pytest.raises(TrainingStateError, match="a run of the earlier network, which cannot be resumed") as error:
        trainer(files, tmp_path, resume=True)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- model files
def test_missing_flame_or_dinov2_files_are_one_line_model_file_errors(files, tmp_path):
    data, _ = files
    for model_files, match in (
        (ModelFiles(flame=tmp_path / "absent.pt", random_dinov2=True), "FLAME model not found"),
        (ModelFiles(flame=files[1].flame, dinov2=tmp_path / "absent.pth"), "DINOv2 weights not found"),
    ):
        with pytest.raises(ModelFileError, match=match) as error:
            Trainer(CONFIG, TrainOptions(data, tmp_path / "run", files=model_files))
        assert "\n" not in str(error.value)


def test_meta_dinov2_weights_of_another_image_size_load_with_their_position_embedding_resampled(tmp_path):
    torch.manual_seed(0)
    meta = dinov2_vit(112, 48, 4, 2)  # Meta's file is at 518 px; any other size shows the same
    torch.save(meta.state_dict(), tmp_path / "dinov2.pth")
    vit = dinov2_vit(56, 48, 4, 2)
    load_dinov2(vit, tmp_path / "dinov2.pth")
    assert vit.pos_embed.shape == (1, 1 + 4 * 4, 48)
    torch.testing.assert_close(vit.pos_embed[:, 0], meta.pos_embed[:, 0])  # the class token's stays
    assert torch.equal(vit.blocks[3].mlp.fc2.weight, meta.blocks[3].mlp.fc2.weight)
    with pytest.raises(ModelFileError, match="does not fit the config's DINOv2 ViT") as error:
        load_dinov2(dinov2_vit(56, 64, 4, 2), tmp_path / "dinov2.pth")
    assert "\n" not in str(error.value)
