"""One cached track's arrays (mixture, stems, rolls), memory-mapped: what the crops (``dataset.py``), the solo
passages (``solo_passages.py``) and whole-track evaluation read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoresep.data.cache import unpack_roll


class CachedTrack:
    """Memory-mapped arrays of one cached track (opened lazily, so each worker opens its own)."""

    def __init__(self, folder: Path, record: dict, n_pitches: int):
        self.folder, self.record, self.n_pitches = folder, record, n_pitches
        self.n_samples, self.n_frames = record["n_samples"], record["n_frames"]
        self.scale, self.has_sources = record["scale"], record["has_sources"]
        self._arrays: dict[str, np.ndarray] = {}

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        return self._arrays[name]

    def __getstate__(self) -> dict:  # memory maps are reopened in each worker, never pickled
        return {**self.__dict__, "_arrays": {}}

    def _audio(self, name: str, start: int, length: int) -> np.ndarray:
        array = self._array(name)
        piece = np.asarray(array[..., start : start + length], dtype=np.float32) * self.scale
        if piece.shape[-1] < length:
            piece = np.pad(piece, [(0, 0)] * (piece.ndim - 1) + [(0, length - piece.shape[-1])])
        return piece

    def mixture(self, start: int, length: int) -> np.ndarray:
        """``(length,)`` float32 from sample ``start``."""
        return self._audio("mixture", start, length)

    def sources(self, start: int, length: int) -> np.ndarray:
        """``(instrument, length)`` float32 (zeros when the track has no stems)."""
        if not self.has_sources:
            return np.zeros((len(self.record["active"]), length), dtype=np.float32)
        return self._audio("sources", start, length)

    def rolls(self, first_frame: int, count: int) -> np.ndarray:
        """``(instrument, pitch, count)`` bool from frame ``first_frame``."""
        packed = np.asarray(self._array("rolls")[:, :, first_frame : first_frame + count])
        roll = unpack_roll(packed, self.n_pitches)
        if roll.shape[-1] < count:
            roll = np.pad(roll, [(0, 0), (0, 0), (0, count - roll.shape[-1])])
        return roll
