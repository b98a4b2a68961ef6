"""Shared fixtures: a tiny mini-Slakh rendered by the project itself, and its cache.

Markers: ``slow`` (run with ``make test-full``), ``gpu`` (skipped when CUDA is not available).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from scoresep.constants import DEFAULT_INSTRUMENTS, HOP_LENGTH, MAX_MIDI, MIN_MIDI, SAMPLE_RATE
from scoresep.data.cache import prepare
from scoresep.data.synth import synthesise

INSTRUMENTS = DEFAULT_INSTRUMENTS


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def minislakh(tmp_path_factory) -> Path:
    """10 composed tracks of 6 s at 16 kHz (6 train, 2 validation, 2 test), seed 0.

    Read-only for tests: copy it (``minislakh_copy``) before changing anything.
    """
    root = tmp_path_factory.mktemp("data") / "minislakh"
    synthesise(root, tracks=10, seconds=6.0, seed=0, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def minislakh_solo(tmp_path_factory) -> Path:
    """6 composed tracks of 24 s (4 train), seed 3: long enough for whole sections where one instrument plays
    alone (25 bass solo passages in the training tracks), which ``minislakh``'s 6-s songs never have.

    Read-only for tests."""
    root = tmp_path_factory.mktemp("data_solo") / "minislakh_solo"
    synthesise(root, tracks=6, seconds=24.0, seed=3, workers=2, progress=False)
    return root


@pytest.fixture
def minislakh_copy(minislakh, tmp_path) -> Path:
    """A private copy of the mini-Slakh that a test may damage."""
    target = tmp_path / "minislakh"
    shutil.copytree(minislakh, target)
    return target


@pytest.fixture(scope="session")
def tiny_checkpoints(minislakh, tmp_path_factory) -> dict[str, Path]:
    """Tiny stage-1 and stage-2 checkpoints of ``minislakh`` (3 steps each: the weights are not trivial).

    Read-only for tests: ``{"stage1": path, "stage2": path}``; copy one before changing it."""
    from tests.helpers import train_tiny_stages

    folder = tmp_path_factory.mktemp("tiny_checkpoints")
    train_tiny_stages(minislakh, folder, steps=3)
    return {name: folder / f"{name}.ckpt" for name in ("stage1", "stage2")}


@pytest.fixture(scope="session")
def cache(minislakh, tmp_path_factory) -> Path:
    """The cache of ``minislakh`` for the default settings."""
    return prepare(minislakh, tmp_path_factory.mktemp("cache"), INSTRUMENTS, SAMPLE_RATE, HOP_LENGTH, MIN_MIDI,
                   MAX_MIDI, workers=2, progress=False)
