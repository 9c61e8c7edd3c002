"""Shared fixtures: the sample media folder, a training-free avatar of a sample photo, the
compiled cpu kernels, and a CUDA guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.avatar import reconstruct, save_avatar
from core.config import load_config
from core.paths import SAMPLES_DIR
from core.render import kernels
from core.tracking.photo import prepare_portrait


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/samples; tests that need it skip with a clear message when it is absent."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"sample media not found at {SAMPLES_DIR} (a checkout beside shared/ has it)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def einstein_avatar_file(samples_dir, tmp_path_factory) -> Path:
    """A training-free avatar of the Einstein sample photo (paper config), made once per run;
    tests read it and never change it."""
    config = load_config("paper")
    portrait = prepare_portrait(samples_dir / "photos" / "einstein.jpg", config.tracking)
    return save_avatar(reconstruct(portrait, config=config), tmp_path_factory.mktemp("avatar") / "einstein.omg")


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    """Compile (first run of a checkout) or load the cpu kernels before any test, so that no
    session starts a background compile and renders with the torch reference meanwhile: a
    test's images would then depend on how far that compile got. The first start's fallback
    has its own tests (test_render_kernels.py, with their own empty caches)."""
    kernels.warm_up()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
