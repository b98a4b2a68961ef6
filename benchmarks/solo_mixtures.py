"""Artificial mixtures of the score's solo passages, shared by ``solo_passages.py`` (separator) and
``solo_passages_critic.py`` (stage 1's critic). Not a script.

Solo passage: frames where the score has exactly one instrument sounding and no other instrument had a note in the
``margin_s`` before (release tails); there the mixture IS that instrument's stem (36-58 dB SNR measured on
mini-Slakh). An artificial mixture takes, per instrument with probability 0.8, one random piece (0.5-4 s) of a
random solo passage of a random training song, placed at a random offset in the crop, with its piano roll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from scoresep.data.cache import unpack_roll
from scoresep.data.datamodule import SlakhDataModule
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
    solo = SoloPassages(datamodule.cache, features)
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
    """The solo passages of a cache's training songs, and artificial mixtures of them.

    Args:
        cache: the cache folder (``SlakhDataModule.cache``).
        features: its feature settings.
        seed: the random pieces' seed.
        margin_s: seconds after another instrument's last note before a passage may start.
        shortest_s: shortest passage kept.
    """

    def __init__(self, cache: Path, features: FeatureSettings, seed: int = 1, margin_s: float = 0.5,
                 shortest_s: float = 0.5):
        self.cache, self.features, self.rng = Path(cache), features, np.random.default_rng(seed)
        self.n_instruments = len(features.instruments)
        self.passages: dict[int, list[tuple[str, float, int, int]]] = {i: [] for i in range(self.n_instruments)}
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        margin = int(margin_s * features.frame_rate)
        shortest = int(shortest_s * features.frame_rate)
        for entry in json.load(open(self.cache / "index.json"))["tracks"]:
            if entry["split"] != "train":
                continue
            active = unpack_roll(self._array(entry["track"], "rolls")[:], features.n_pitches).any(1)
            recent = active.copy()  # (instrument, frame): sounding now or within the margin before
            for shift in range(1, margin + 1):
                recent[:, shift:] |= active[:, :-shift]
            for instrument in range(self.n_instruments):
                others = np.arange(self.n_instruments) != instrument
                solo = active[instrument] & ~recent[others].any(0)
                edges = np.diff(np.concatenate([[0], solo.astype(np.int8), [0]]))
                for start, end in zip(np.where(edges == 1)[0], np.where(edges == -1)[0], strict=True):
                    if end - start >= shortest:
                        self.passages[instrument].append((entry["track"], entry["scale"], int(start), int(end)))

    def _array(self, track: str, name: str) -> np.ndarray:
        if (track, name) not in self._arrays:
            self._arrays[track, name] = np.load(self.cache / "tracks" / track / f"{name}.npy", mmap_mode="r")
        return self._arrays[track, name]

    def summary(self) -> dict[str, tuple[int, float]]:
        """Per instrument: passages and their minutes."""
        frame_rate = self.features.frame_rate
        return {name: (len(self.passages[i]), round(sum(e - s for _, _, s, e in self.passages[i]) / frame_rate / 60, 1))
                for i, name in enumerate(self.features.instruments)}

    def batch(self, size: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sources (batch, instrument, time), rolls (batch, instrument, pitch, frame))`` of ``size`` artificial
        mixtures of ``seconds``; the mixture is ``sources.sum(1)``."""
        hop, rng = self.features.hop_length, self.rng
        n_frames = 1 + int(seconds * self.features.sample_rate) // hop
        sources = np.zeros((size, self.n_instruments, int(seconds * self.features.sample_rate)), np.float32)
        rolls = np.zeros((size, self.n_instruments, self.features.n_pitches, n_frames), np.float32)
        for item in range(size):
            for instrument in range(self.n_instruments):
                if rng.random() > 0.8 or not self.passages[instrument]:
                    continue
                track, scale, start, end = self.passages[instrument][rng.integers(len(self.passages[instrument]))]
                length = min(end - start, int(rng.uniform(0.5, seconds) * self.features.frame_rate), n_frames - 1)
                first = start + rng.integers(0, end - start - length + 1)
                piece = np.asarray(self._array(track, "mixture")[first * hop:(first + length) * hop], np.float32)
                offset = rng.integers(0, n_frames - 1 - length + 1)
                sources[item, instrument, offset * hop:offset * hop + len(piece)] = piece * scale
                packed = np.asarray(self._array(track, "rolls")[instrument:instrument + 1, :, first:first + length])
                roll = unpack_roll(packed, self.features.n_pitches)[0]
                rolls[item, instrument, :, offset:offset + roll.shape[-1]] = roll
        return torch.from_numpy(sources), torch.from_numpy(rolls)
