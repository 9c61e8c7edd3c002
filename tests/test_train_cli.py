"""``omg-avatar train``: the command's summary JSON and run folder, the exported checkpoint
reconstructing an avatar through the network method, one-line errors, and a distributed run
under torchrun (2 CPU processes, gloo) that matches one process's loss for the same global batch."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from core.avatar import load_avatar
from core.cli import main
from core.config import config_to_dict
from core.model.encoder import dinov2_vit
from core.paths import PROJECT_ROOT
from core.model.release_network import release_config
from core.train.run_log import read_log
from network_files import frontal_face_landmarks
from synthetic_pairs import train_config, write_flame, write_synthetic_dataset

STEPS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory, samples_dir):
    """A test config (tiny with the smallest DINOv2, batch 2) as YAML, the synthetic FLAME as the
    release's bundle (its landmarks laid on a real face, so that photos fit), random DINOv2
    weights in Meta's layout in a file and a synthetic dataset."""
    root = tmp_path_factory.mktemp("train_cli")
    config = train_config(batch_size=2, validation_every=100, checkpoint_every=100)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, backbone="vit_small_patch14_dinov2"))
    config_file = root / "test.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    flame = write_flame(root / "flame", frontal_face_landmarks(samples_dir, config))
    sizes = release_config(config)
    torch.manual_seed(0)
    dinov2 = root / "dinov2.pth"
    torch.save(dinov2_vit(sizes.image_size, sizes.vit_dim, sizes.vit_depth, sizes.vit_heads).state_dict(), dinov2)
    data = write_synthetic_dataset(root / "data", config, flame, clips=3, frames=2)
    args = ["train", "--config", str(config_file), "--data", str(data), "--flame", str(flame), "--dinov2", str(dinov2)]
    return root, args


def train_losses(run_dir) -> list[float]:
    return [record["loss"] for record in read_log(run_dir) if record["kind"] == "train"]


def test_train_writes_the_summary_json_weights_log_and_state(setup, capsys):
    root, args = setup
    summary_file = root / "single.json"
    assert main([*args, "--out", str(root / "single"), "--steps", str(STEPS), "--json", str(summary_file)]) == 0
    summary = json.loads(summary_file.read_text())
    assert {"loss_first", "loss_last", "val_psnr_first", "val_psnr_last"} <= set(summary)
    assert summary["steps"] == STEPS and summary["loss_last"] < summary["loss_first"]
    for name in ("network.safetensors", "training_state.pt", "log.jsonl", "images/step_00000003.png"):
        assert (root / "single" / name).is_file(), name
    out = capsys.readouterr().out
    assert f"step {STEPS}/{STEPS}" in out and "validation PSNR" in out


def test_the_exported_checkpoint_reconstructs_an_avatar_through_the_network_method(setup, samples_dir):
    root, args = setup
    if not (root / "single" / "network.safetensors").is_file():
        assert main([*args, "--out", str(root / "single"), "--steps", str(STEPS)]) == 0
    flame, dinov2 = (args[args.index(option) + 1] for option in ("--flame", "--dinov2"))
    output = root / "einstein.omg"
    assert main(["reconstruct", str(samples_dir / "photos" / "einstein.jpg"), "-o", str(output), "--method", "network",
                 "--checkpoint", str(root / "single" / "network.safetensors"), "--flame", flame, "--dinov2", dinov2,
                 "--config", "tiny"]) == 0  # fmt: skip
    avatar = load_avatar(output)
    assert avatar.method == "network" and avatar.num_lods == 3 and avatar.refiner is not None
    assert avatar.refiner.image_size == 32  # the trained refiner, at the training config's render size


def test_torchrun_with_two_cpu_processes_matches_one_process(setup):
    root, args = setup
    if not (root / "single" / "log.jsonl").is_file():
        assert main([*args, "--out", str(root / "single"), "--steps", str(STEPS)]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    command = [*torchrun, "-m", "core.cli", *args, "--out", str(root / "ddp"), "--steps", str(STEPS)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training tiny for") == 1  # rank 0 prints
    assert done.stderr.count("the released network ignores model.splat_channels 8") == 1
    assert "over 2 process(es)" in done.stdout
    single, distributed = train_losses(root / "single"), train_losses(root / "ddp")
    assert len(distributed) == STEPS  # rank 0 logs, once per step
    print(f"largest loss difference, 2 processes vs 1: {max(abs(a - b) for a, b in zip(distributed, single)):.2e}")
    # Summing gradients over processes rounds differently; Adam's normalised steps carry that
    # to ~3e-5 by step 3 (measured). Noise drawn per batch instead of per pair made 1.7e-4.
    assert distributed == pytest.approx(single, abs=6e-5)
    assert len(set(single)) == STEPS  # the steps changed the network


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--config": "no_such_config"}, "unknown config 'no_such_config'"),
        ({"--data": "/no/such/dataset"}, "dataset folder not found: /no/such/dataset"),
    ],
)
def test_bad_config_or_missing_data_is_a_one_line_error(setup, capsys, change, message):
    _, args = setup
    args = list(args)
    for option, value in change.items():
        args[args.index(option) + 1] = value
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("omg-avatar: error:") and "\n" not in err
