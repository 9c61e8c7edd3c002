"""Shared fixtures: the sample media folder and a CUDA guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.paths import SAMPLES_DIR


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/samples; tests that need it skip with a clear message when it is absent."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"sample media not found at {SAMPLES_DIR} (a checkout beside shared/ has it)")
    return SAMPLES_DIR


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
