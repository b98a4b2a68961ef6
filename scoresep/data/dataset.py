"""Crops of cached tracks, as the batch contract of the project.

One item (a dict; the DataLoader stacks them into a batch):

| key           | shape (item)   | meaning                                                           |
|---------------|----------------|-------------------------------------------------------------------|
| ``mixture``     | (T,) float32   | mono waveform at ``sample_rate`` (sum of ``sources`` by default)  |
| ``sources``     | (S, T) float32 | per-instrument waveform (sum of that class's stems); zeros absent |
| ``has_sources`` | () bool        | False when the track has no rendered stems (score-only data)      |
| ``rolls``       | (S, P, N) f32  | frame-level piano roll, N = 1 + T // hop_length STFT frames       |
| ``active``      | (S,) bool      | the instrument plays in this clip (clip-level weak label)          |
| ``track``       | str            | track id (``TrackNNNNN``; ``A+B+C`` for a cross-song remix)       |
| ``solo_parts``  | (S, T) float32 | training, with solo passages only: an artificial mixture's parts  |
| ``solo_rolls``  | (S, P, N) f32  | ... and their rolls (``solo_passages.py``; no stem is read)       |

Crops start on a hop boundary, so roll frame ``n`` of a crop starting at frame ``f`` is global frame
``f + n``: audio and rolls stay in step. A track shorter than a crop is zero-padded (rolls too).
Training crops come from ``np.random.default_rng((seed, epoch, slot))`` (see samplers.py); evaluation
crops are fixed positions, the same on every run and for any number of processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from scoresep.data.cached_track import CachedTrack
from scoresep.errors import SettingsError

if TYPE_CHECKING:
    from scoresep.data.solo_passages import SoloPassages

__all__ = ["CachedTrack", "SlakhCrops"]  # CachedTrack lives in cached_track.py; imported from here too


class SlakhCrops(Dataset):
    """Fixed-length crops of cached tracks.

    Args:
        cache: the cache folder (with ``tracks/``).
        records: index entries of the tracks to use (one split).
        n_pitches: pitch rows of the rolls.
        hop_length: STFT hop; crops start on multiples of it.
        segment_frames: crop length in hops (``T = segment_frames * hop_length`` samples,
            ``N = segment_frames + 1`` frames).
        train: random crops keyed by ``(epoch, slot)``; otherwise fixed crops, ``eval_crops_per_track`` per
            track evenly spaced over the track.
        remix_probability: probability that a training item is a cross-song remix (each instrument's source
            and roll from a different random track with stems; mixture = sum of those sources).
        mixture: ``instruments`` (the paper's data): the mixture is the sum of the selected instruments' sources,
            so other parts (drums, strings, ...) are left out; ``full``: the track's own mixture file, with
            every part (needed for score-only tracks, which have no stems to sum).
        solo_passages: with it, every training item also holds one artificial mixture of the score's solo
            passages (``solo_parts``, ``solo_rolls``), drawn from its own generator ``(seed, epoch, slot, 1)``
            so the crops are those of a run without it.
    """

    def __init__(self, cache: Path, records: list[dict], n_pitches: int, hop_length: int, segment_frames: int,
                 train: bool, remix_probability: float = 0.0, eval_crops_per_track: int = 4, seed: int = 0,
                 mixture: str = "instruments", solo_passages: SoloPassages | None = None):
        if not records:
            raise SettingsError(f"{cache}: no tracks for this split")
        if mixture not in ("instruments", "full"):
            raise SettingsError(f"mixture must be 'instruments' or 'full', got {mixture!r}")
        if mixture == "instruments":
            score_only = [r["track"] for r in records if not r["has_sources"]]
            if score_only:
                raise SettingsError(f"{cache}: mixture='instruments' sums the instruments' stems, but "
                                    f"{len(score_only)} track(s) have none (e.g. {score_only[0]}); "
                                    "use mixture: full for score-only data")
        self.mixture_kind = mixture
        if not 0.0 <= remix_probability <= 1.0:
            raise SettingsError(f"remix_probability must be in [0, 1], got {remix_probability}")
        self.tracks = [CachedTrack(Path(cache) / "tracks" / r["track"], r, n_pitches) for r in records]
        self.hop_length, self.segment_frames = hop_length, segment_frames
        self.segment_samples = segment_frames * hop_length
        self.train, self.remix_probability, self.seed = train, remix_probability, seed
        self.with_sources = [i for i, t in enumerate(self.tracks) if t.has_sources]
        if train and remix_probability > 0 and not self.with_sources:
            raise SettingsError(f"{cache}: remix needs tracks with stems, and no training track has any")
        self.crops = [] if train else self._eval_crops(eval_crops_per_track)
        self.solo_passages = solo_passages if train else None

    def _last_start(self, track: CachedTrack) -> int:
        """Last hop-aligned start frame whose crop fits entirely inside the track (0 if none does)."""
        return max(0, track.n_samples // self.hop_length - self.segment_frames)

    def _eval_crops(self, per_track: int) -> list[tuple[int, int]]:
        crops = []
        for index, track in enumerate(self.tracks):
            last = self._last_start(track)
            count = max(1, min(per_track, last // self.segment_frames + 1))
            starts = np.linspace(0, last, count).round().astype(int) if count > 1 else [0]
            crops += [(index, int(start)) for start in starts]
        return crops

    def __len__(self) -> int:
        return len(self.crops) if not self.train else len(self.tracks)

    def _crop(self, track: CachedTrack, start_frame: int) -> tuple[np.ndarray, np.ndarray]:
        start = start_frame * self.hop_length
        return track.sources(start, self.segment_samples), track.rolls(start_frame, self.segment_frames + 1)

    def _item(self, mixture, sources, has_sources, rolls, name) -> dict:
        rolls = torch.from_numpy(np.ascontiguousarray(rolls))
        return {
            "mixture": torch.from_numpy(np.ascontiguousarray(mixture)),
            "sources": torch.from_numpy(np.ascontiguousarray(sources)),
            "has_sources": torch.tensor(bool(has_sources)),
            "rolls": rolls.float(),
            "active": rolls.flatten(1).any(dim=1),
            "track": name,
        }

    def _draw(self, key) -> tuple[bool, np.random.Generator, int]:
        """``(is remix, generator for the rest of the item, slot)`` of a training key ``(epoch, slot)``."""
        epoch, slot = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, slot])
        return bool(rng.random() < self.remix_probability), rng, slot

    def crop_position(self, key) -> tuple[int, int]:
        """``(track index, start frame)`` of a plain (not remixed) crop; its first sample is ``frame * hop``."""
        if not self.train:
            return self.crops[key]
        _, rng, slot = self._draw(key)
        index = slot % len(self.tracks)
        return index, int(rng.integers(0, self._last_start(self.tracks[index]) + 1))

    def is_remix(self, key) -> bool:
        return self.train and self._draw(key)[0]

    def __getitem__(self, key) -> dict:
        item = self._crop_item(key)
        if self.solo_passages is not None:
            epoch, slot = key if isinstance(key, tuple) else (0, key)
            parts, rolls = self.solo_passages.draw(np.random.default_rng([self.seed, epoch, slot, 1]),
                                                   self.segment_frames)
            item["solo_parts"], item["solo_rolls"] = torch.from_numpy(parts), torch.from_numpy(rolls).float()
        return item

    def _crop_item(self, key) -> dict:
        if self.train:
            remix, rng, _ = self._draw(key)
            if remix:
                return self._remix(rng)
        index, start_frame = self.crop_position(key)
        track = self.tracks[index]
        sources, rolls = self._crop(track, start_frame)
        if self.mixture_kind == "instruments":
            mixture = sources.sum(axis=0)
        else:
            mixture = track.mixture(start_frame * self.hop_length, self.segment_samples)
        return self._item(mixture, sources, track.has_sources, rolls, track.record["track"])

    def _remix(self, rng: np.random.Generator) -> dict:
        n_instruments = len(self.tracks[0].record["active"])
        picks = rng.choice(self.with_sources, size=n_instruments, replace=len(self.with_sources) < n_instruments)
        sources, rolls, names = [], [], []
        for row, index in enumerate(picks):
            track = self.tracks[int(index)]
            start_frame = int(rng.integers(0, self._last_start(track) + 1))
            source, roll = self._crop(track, start_frame)
            sources.append(source[row])
            rolls.append(roll[row])
            names.append(track.record["track"])
        sources, rolls = np.stack(sources), np.stack(rolls)
        return self._item(sources.sum(axis=0), sources, True, rolls, "+".join(names))
