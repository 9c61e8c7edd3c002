"""Training the released OMG-Avatar network (:mod:`core.train.network`) on (source, driving)
pairs of the same clip.

Per step: the pairs of the batch go through :class:`Reenactor` (the network encodes the
source photo, reconstructs the avatar at the step's level of detail with its head on the
driving FLAME pose, the Gaussians are splatted through the driving camera at
``model.render_size`` with the covariances the release's rasteriser draws from its raw
quaternions: the first three of the 32 channels are the coarse image,
:meth:`ReleaseNetwork.refine` gives the refined one, with fresh noise as the release trains),
the loss of :mod:`core.train.losses` against the driving frame, Adam (DINOv2 and FLAME
frozen). Level k trains head generators 0..k. The level of detail and the learning rate follow
:mod:`core.train.schedules`. Rendering uses the differentiable torch reference on the CPU and
gsplat on CUDA. Everything runs in float32: the network's occlusion test depends on the last
bits of float32 NDC depths (:mod:`core.geometry.release_camera`), which float16 autocast loses.

Every ``validation_every`` steps (and at step 0 and the last step) rank 0 renders the fixed
validation pairs at every level trained so far and logs the evaluation's metrics (PSNR,
SSIM, LPIPS with the perceptual weights, AKD, APD: :mod:`core.evaluation.scoring`) and an
image grid to TensorBoard and ``log.jsonl`` (:mod:`core.train.run_log`). Every
``checkpoint_every`` steps it writes the resumable state (:mod:`core.train.state`); a resumed
run continues the same loss curve (bit for bit on the CPU, where training runs torch's
deterministic algorithms). At the end the weights are exported with
:func:`core.model.network_checkpoint.save_network_checkpoint` to ``RUN_DIR/network.safetensors``,
which the ``network`` reconstruction method loads (with the same FLAME and DINOv2 files).
Distributed runs (``torchrun``) are :mod:`core.train.distributed`'s.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from core.config import Config, config_to_dict
from core.dataset.layout import DatasetError
from core.errors import ConfigError
from core.evaluation import metrics
from core.evaluation.scoring import FrameScorer, FrameScores, mean_present
from core.geometry.camera import Camera
from core.model.network_checkpoint import learned_state, save_network_checkpoint
from core.model.release_gaussians import ReleaseGaussians
from core.model.release_network import ReleaseNetwork, Source
from core.render import render
from core.train.distributed import Distributed
from core.train.losses import PerceptualLoss, ReconstructionLoss, load_perceptual
from core.train.network import ModelFiles, build_network, drawn_gaussians, ignored_sizes
from core.train.pairs import FrameBatch, PairBatch, PairDataset, collate_pairs
from core.train.run_log import RunLog
from core.train.schedules import check_lod_schedule, levels_on, lod_at, make_scheduler
from core.train.state import TrainingStateError, capture_rng, load_state, restore_rng, save_state
from core.train.summary import RunSummary

WEIGHTS_FILE = "network.safetensors"
GRID_PAIRS = 4  # validation pairs shown in an image grid
#: The evaluation metrics validation reports per level (AED needs a FLAME fit per stream: eval only).
VALIDATION_METRICS = ("psnr", "ssim", "lpips", "akd", "apd")


@dataclass(frozen=True)
class TrainOptions:
    """``steps``: total steps of the run (None: ``training.epochs`` passes over the training
    frames); ``resume``: continue from ``run_dir``'s training state."""

    data: Path
    run_dir: Path
    steps: int | None = None
    resume: bool = False
    files: ModelFiles = field(default_factory=ModelFiles)


@dataclass(frozen=True)
class StepRecord:
    """One finished step: its number (1-based), the level trained, the loss and its weighted
    parts (averaged over processes) and the learning rate it used."""

    step: int
    total_steps: int
    lod: int
    loss: float
    parts: dict[str, float]
    learning_rate: float


class Reenactor(nn.Module):
    """The network and the renderer: a batch of pairs to the coarse and refined driving images.

    Args:
        net: the network.
        backend: ``reference`` (CPU, differentiable) or ``gsplat`` (CUDA).
    """

    def __init__(self, net: ReleaseNetwork, backend: str) -> None:
        super().__init__()
        self.net = net
        self.backend = backend

    def forward(self, batch: PairBatch, lod: int, noise: Sequence[torch.Generator]) -> tuple[Tensor, Tensor, Tensor]:
        """Coarse [B, 3, R, R], refined [B, 3, R, R] (R = the refiner's size) and the learned
        FLAME offsets [B, V_0, 3] (metres); the refiner draws fresh noise, as the release trains,
        for pair i from ``noise[i]``."""
        encoding = self.net.encode(self.source(batch.source))
        avatar = self.net.reconstruct(encoding, lod, batch.driving.pose)
        coarse, refined = self.render(avatar.gaussians, batch.driving.cameras, noise)
        return coarse, refined, encoding.offsets

    def source(self, frames: FrameBatch) -> Source:
        """The network's input: the frames resized (antialiased) to DINOv2's side, their cameras and poses."""
        size = self.net.config.image_size
        image = F.interpolate(frames.image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return Source(image, frames.transform, frames.pose)

    def render(
        self, gaussians: ReleaseGaussians, cameras: Sequence[Camera], noise: Sequence[torch.Generator] | None = None
    ) -> tuple[Tensor, Tensor]:
        """B Gaussian sets through their B cameras: coarse and refined images [B, 3, R, R].
        ``noise``: one generator per image, from which the refiner draws its noise (one image at
        a time, so that a pair's noise does not depend on its batch); None: its fixed noise."""
        size = self.net.config.refiner_size
        splats = []
        for index, camera in enumerate(cameras):
            drawn, covariances = drawn_gaussians(gaussians, index)
            splats.append(render(drawn, camera.resized(size, size), self.backend, covariances=covariances).features)
        features = torch.stack(splats).permute(0, 3, 1, 2)  # [B, 32, R, R]
        if noise is None:
            return features[:, :3], self.net.refine(features)
        refined = [self.net.refine(image[None], "random", generator) for image, generator in zip(features, noise)]
        return features[:, :3], torch.cat(refined)


class Trainer:
    """Trains ``config``'s network on ``options.data``; see the module docstring.

    :meth:`fit` returns the run's :class:`~core.train.summary.RunSummary` values (first and
    latest loss, their means over a few steps, validation PSNR at level 0); they survive a resume.
    """

    def __init__(self, config: Config, options: TrainOptions, dist: Distributed | None = None) -> None:
        check_lod_schedule(config)
        training = config.training
        self.config, self.options = config, options
        self.dist = dist or Distributed.from_env()
        self.device = self.dist.device()
        if training.batch_size % self.dist.world_size:
            raise ConfigError(
                f"training.batch_size {training.batch_size} does not split over {self.dist.world_size} processes"
            )
        self.local_batch = training.batch_size // self.dist.world_size
        self.train_set, self.val_set = (
            PairDataset(options.data, split, config.image_size, training.seed) for split in ("train", "validation")
        )
        self.sampler = DistributedSampler(
            self.train_set, self.dist.world_size, self.dist.rank, shuffle=True, seed=training.seed, drop_last=True
        )
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch == 0 or len(self.val_set) == 0:
            raise DatasetError(
                f"{options.data}: {len(self.train_set)} training and {len(self.val_set)} validation pairs; "
                f"training needs a batch of {training.batch_size} and validation at least one"
            )
        state = load_state(options.run_dir) if options.resume else None
        self.total_steps = self._total_steps(state)

        torch.manual_seed(training.seed)
        self.net = build_network(config, options.files).to(self.device)
        self._train_mode()
        ignored = ignored_sizes(config, self.net)
        if ignored and self.dist.is_main:
            print(f"omg-avatar: warning: the released network ignores {'; '.join(ignored)}", file=sys.stderr)
        self.model = Reenactor(self.net, "gsplat" if self.device.type == "cuda" else "reference")
        self.ddp: nn.Module = self.model
        if self.dist.world_size > 1:
            self.ddp = DistributedDataParallel(self.model, find_unused_parameters=True, broadcast_buffers=False)
        self.lpips = load_perceptual(training.perceptual_weights, self.dist.is_main)
        self.loss = ReconstructionLoss(training.loss, PerceptualLoss(self.lpips.network) if self.lpips else None)
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], training.learning_rate)
        self.scheduler = make_scheduler(training.scheduler, self.optimizer, self.total_steps)
        self.step = 0
        self.summary = RunSummary()
        self.log = RunLog(options.run_dir, state["step"] if state else None) if self.dist.is_main else None
        if state is not None:
            self._restore(state)

    # ------------------------------------------------------------------ the loop
    def fit(self, until: int | None = None, on_step: Callable[[StepRecord], None] | None = None) -> dict:
        """Train to step ``until`` (default: the last), validating and checkpointing on the
        way; returns the summary's values. ``on_step`` sees every step's record (rank 0 only)."""
        until = self.total_steps if until is None else min(until, self.total_steps)
        with _deterministic(self.device.type == "cpu"):
            if self.step == 0 and self.dist.is_main:
                self._validate()
            while self.step < until:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                for batch in self._batches(epoch, position):
                    record = self._train_step(batch)
                    self.step += 1
                    if self.dist.is_main:
                        self._after_step(record, until, on_step)
                    if self.step >= until:
                        break
        if self.dist.is_main:
            self.log.flush()
            if self.step == self.total_steps:
                save_network_checkpoint(self.net, self.options.run_dir / WEIGHTS_FILE)
        self.dist.barrier()
        return self.summary.values()

    def _after_step(self, record: StepRecord, until: int, on_step: Callable[[StepRecord], None] | None) -> None:
        """Rank 0: log the step, validate and checkpoint when due."""
        self.summary.add_loss(record.loss)
        self.log.scalars(record.step, "train", {"loss": record.loss, **record.parts, "lod": record.lod,
                                                "learning_rate": record.learning_rate})  # fmt: skip
        if on_step is not None:
            on_step(record)
        training = self.config.training
        if self.step % training.validation_every == 0 or self.step == self.total_steps:
            self._validate()
        if self.step % training.checkpoint_every == 0 or self.step == until:
            self._save()

    def _batches(self, epoch: int, position: int) -> DataLoader:
        """Epoch ``epoch``'s batches of this process from batch ``position`` on."""
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        indices = list(self.sampler)
        size = self.local_batch
        batches = [indices[i * size : (i + 1) * size] for i in range(position, self.steps_per_epoch)]
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            collate_fn=collate_pairs,
            num_workers=self.config.training.data_workers,
            generator=torch.Generator().manual_seed(self.config.training.seed),  # leaves the global RNG alone
        )

    def _train_step(self, batch: PairBatch) -> StepRecord:
        lod = lod_at(self.step, self.total_steps, self.config.training.lod_schedule)
        batch = batch.to(self.device)
        target = self._at_render_size(batch.driving.image)
        coarse, refined, offsets = self.ddp(batch, lod, self._noise_generators(len(batch.source.cameras)))
        total, parts = self.loss(coarse, refined, target, offsets)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        learning_rate = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        values = self.dist.mean(torch.stack([total.detach(), *(p.detach() for p in parts.values())])).tolist()
        return StepRecord(self.step + 1, self.total_steps, lod, values[0], dict(zip(parts, values[1:])), learning_rate)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float | None]:
        """The evaluation's scores (:class:`~core.evaluation.scoring.FrameScorer`) of the refined
        images of the fixed validation pairs at every level trained so far, means over the pairs:
        ``psnr_lod<k>``, ``ssim_lod<k>``, ``lpips_lod<k>`` (with the perceptual LPIPS weights),
        ``akd_lod<k>`` and ``apd_lod<k>`` (over the pairs where MediaPipe finds a face in the
        render and its target; None where it finds none, as in an untrained network's renders),
        and ``coarse_psnr_lod<k>`` (what the splatted RGB alone
        gives); ``psnr`` is level 0's. Also returns, under ``grid``, the first pairs' images at
        the finest level: source, driving, coarse, refined."""
        levels = levels_on(max(self.step - 1, 0), self.total_steps, self.config.training.lod_schedule)
        count = min(self.config.training.validation_pairs, len(self.val_set))
        indices = np.linspace(0, len(self.val_set) - 1, count).round().astype(int).tolist()
        scores: dict[int, list[FrameScores]] = {level: [] for level in levels}
        coarse_psnr: dict[int, list[float]] = {level: [] for level in levels}
        grid = None
        self.net.eval()
        try:
            with FrameScorer(self.config.tracking, self.lpips) as scorer:
                for start in range(0, count, self.local_batch):
                    batch = collate_pairs([self.val_set[i] for i in indices[start : start + self.local_batch]])
                    batch = batch.to(self.device)
                    source, driving = batch.source, batch.driving
                    target = self._at_render_size(driving.image)
                    encoding = self.net.encode(self.model.source(source))
                    for level in levels:
                        avatar = self.net.reconstruct(encoding, level, driving.pose)
                        coarse, refined = self.model.render(avatar.gaussians, driving.cameras)
                        for image, rough, reference in zip(_rgb8(refined), _rgb8(coarse), _rgb8(target)):
                            scores[level].append(scorer.compare(image, reference))
                            coarse_psnr[level].append(metrics.psnr(rough / 255.0, reference / 255.0))
                    if grid is None:
                        grid = [source.image, driving.image, coarse.clamp(0, 1), refined]
                        grid = [images[:GRID_PAIRS].float() for images in grid]
        finally:
            self._train_mode()
        result = {}
        for level in levels:
            for name in VALIDATION_METRICS:
                result[f"{name}_lod{level}"] = mean_present([getattr(found, name) for found in scores[level]])
            result[f"coarse_psnr_lod{level}"] = mean_present(coarse_psnr[level])
        return {"psnr": result["psnr_lod0"], **result, "grid": grid}

    def _validate(self) -> None:
        """Rank 0: validate, log the scalars and the grid, update the summary."""
        result = self.validate()
        grid = result.pop("grid")
        self.log.scalars(self.step, "validation", result)
        self.log.image_grid(self.step, grid)
        self.summary.add_validation(result["psnr"])

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> Path:
        epoch, position = divmod(self.step, self.steps_per_epoch)
        return save_state(
            self.options.run_dir,
            {
                "config": config_to_dict(self.config),
                "step": self.step,
                "total_steps": self.total_steps,
                "data": {"epoch": epoch, "position": position, "steps_per_epoch": self.steps_per_epoch,
                         "world_size": self.dist.world_size, "seed": self.config.training.seed},  # fmt: skip
                "model": learned_state(self.net),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng(),
                "summary": self.summary.state_dict(),
            },
        )

    def _total_steps(self, state: dict | None) -> int:
        """``--steps``, else the resumed run's, else ``epochs`` passes; a resumed run keeps its plan."""
        planned = self.options.steps or self.config.training.epochs * self.steps_per_epoch
        if state is None:
            return planned
        if self.options.steps is not None and self.options.steps != state["total_steps"]:
            raise TrainingStateError(
                f"{self.options.run_dir} was planned for {state['total_steps']} steps (its learning-rate and "
                f"level-of-detail schedules depend on it); resume with --steps {state['total_steps']} or none"
            )
        return int(state["total_steps"])

    def _restore(self, state: dict) -> None:
        if state["config"] != config_to_dict(self.config):
            raise TrainingStateError(f"{self.options.run_dir} was trained with another config; resume with the same")
        self._load_learned(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.summary.load_state_dict(state["summary"])
        restore_rng(state["rng"])
        data = state["data"]
        if data["world_size"] != self.dist.world_size and self.dist.is_main:
            print(f"omg-avatar: warning: resuming a run of {data['world_size']} processes with "
                  f"{self.dist.world_size}: the data order differs from here on", file=sys.stderr)  # fmt: skip

    def _load_learned(self, model: dict[str, Tensor]) -> None:
        """The resumed run's learned weights into the network: exactly its learned entries."""
        expected = learned_state(self.net)
        if model.keys() != expected.keys() or any(model[k].shape != v.shape for k, v in expected.items()):
            raise TrainingStateError(f"{self.options.run_dir}: its weights do not fit the network of its config")
        self.net.load_state_dict(model, strict=False)  # the frozen entries come from the model files

    # ------------------------------------------------------------------ helpers
    def _noise_generators(self, count: int) -> list[torch.Generator]:
        """The refiner's noise generators of this step's ``count`` pairs of this process, seeded
        by the run's seed, the step and the pair's place in the global batch: the same noise
        with any number of processes, and after a resume."""
        first = self.dist.rank * self.local_batch
        seeds = (np.random.SeedSequence([self.config.training.seed, self.step, first + i]) for i in range(count))
        return [torch.Generator(self.device).manual_seed(int(seed.generate_state(1)[0])) for seed in seeds]

    def _train_mode(self) -> None:
        """The network in training mode; on the CPU its query decoder without dropout: torch's
        CPU attention with dropout builds the [B, 8, V, V] weights (measured for 2 x 2,646
        queries of 32 channels: 4.8 s instead of 0.24 s forward, 2.2 s instead of 1.0 s backward)."""
        self.net.train()
        if self.device.type == "cpu":
            self.net.transformer.eval()

    def _at_render_size(self, image: Tensor) -> Tensor:
        size = self.config.model.render_size
        if image.shape[-1] == size:
            return image
        return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch's deterministic algorithms while training on the CPU, where the threaded
    ``index_add`` of the reference renderer otherwise sums in a varying order; restored after.
    Without their filling of every new tensor (a debugging aid that took a quarter of a step)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(enabled or previous)
    torch.utils.deterministic.fill_uninitialized_memory = previous_fill and previous
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill


def _rgb8(images: Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> [B, H, W, 3] uint8 RGB."""
    return (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy()
