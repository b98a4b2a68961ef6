"""Artificial mixtures of the score's solo passages, shared by ``solo_passages.py`` (separator) and
``solo_passages_critic.py`` (stage 1's critic). Not a script.

The passages and the artificial mixtures are those of ``scoresep.data.solo_passages`` (the ``data.solo_passages``
option): where the score has one instrument alone the mixture is its part (36-58 dB SNR measured on mini-Slakh).
The numbers in docs/results.md were measured with this module's own copy of that code, before it moved into
scoresep; the draws differ, the method is the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.solo_passages import SoloPassages as LibrarySoloPassages
from scoresep.features import FeatureSettings


def minislakh_datamodule() -> SlakhDataModule:
    """``make reproduce``'s training data (data/minislakh300, data/cache), seed 1, batches of 8 4-s crops."""
    datamodule = SlakhDataModule(root="data/minislakh300", cache_dir="data/cache", train_crops_per_track=2,
                                 eval_crops_per_track=1, seed=1, batch_size=8, segment_seconds=4.0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def prepare() -> tuple[FeatureSettings, SlakhDataModule, SoloPassages]:
    """Seeded torch, the project's feature settings, ``minislakh_datamodule()`` and its solo passages (printed)."""
    torch.manual_seed(1)
    features = FeatureSettings.defaults()
    datamodule = minislakh_datamodule()
    solo = SoloPassages(datamodule, features)
    print(solo.summary(), flush=True)
    return features, datamodule, solo


def update(network: torch.nn.Module, optimizer, scheduler, loss: torch.Tensor, step: int, started: float,
           clip: float | None = None) -> None:
    """One optimiser step (gradient-norm clip when given, then the scheduler); progress every 100 steps."""
    optimizer.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(network.parameters(), clip)
    optimizer.step()
    scheduler.step()
    if step % 100 == 0:
        print(f"step {step} loss {loss.item():.4f} {time.perf_counter() - started:.0f} s", flush=True)


def training_batches(datamodule: SlakhDataModule, steps: int) -> Iterator[dict]:
    """``steps`` training batches with their spectrograms, a new crop draw each epoch (as Lightning does)."""
    step, epoch = 0, 0
    while step < steps:
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)
        epoch += 1
        for batch in loader:
            if step >= steps:
                return
            step += 1
            yield datamodule.on_after_batch_transfer(batch, 0)


class SoloPassages:
    """Batches of artificial mixtures of the training songs' solo passages (``scoresep.data.solo_passages``, the
    passages the ``data.solo_passages`` option draws from), for the plain training loops of these benchmarks.

    Args:
        datamodule: a set-up ``SlakhDataModule`` (its training tracks).
        features: its feature settings.
        seed: the random pieces' seed.
    """

    def __init__(self, datamodule: SlakhDataModule, features: FeatureSettings, seed: int = 1):
        self.features, self.rng = features, np.random.default_rng(seed)
        self.passages = LibrarySoloPassages(datamodule.datasets["train"].tracks, features.frame_rate,
                                            features.hop_length, "instruments")

    def summary(self) -> dict[str, tuple[int, float]]:
        """Per instrument: passages and their minutes."""
        return {name: (len(passages), round(minutes, 1)) for name, passages, minutes in
                zip(self.features.instruments, self.passages.passages, self.passages.minutes(), strict=True)}

    def batch(self, size: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sources (batch, instrument, time), rolls (batch, instrument, pitch, frame))`` of ``size`` artificial
        mixtures of ``seconds``; the mixture is ``sources.sum(1)``."""
        frames = int(seconds * self.features.sample_rate) // self.features.hop_length
        draws = [self.passages.draw(self.rng, frames) for _ in range(size)]
        return (torch.from_numpy(np.stack([parts for parts, _ in draws])),
                torch.from_numpy(np.stack([rolls for _, rolls in draws])).float())
