"""The score's solo passages, and artificial mixtures of them: targets for separation that need no stem.

A solo passage is a stretch of frames where the score has exactly one of our instruments sounding and no other
had a note in the ``margin_s`` before (release tails). There the training mixture of ``mixture: instruments``
(the data module refuses ``full``, which also holds parts the score does not list) *is* that instrument's part
(measured on mini-Slakh: 36-58 dB SNR against the true stem), so the score alone finds clean audio of each
instrument. An artificial mixture takes, for each instrument with probability ``keep``, one random piece
(0.5 s up to the crop) of a random solo passage, placed at a random offset in the crop, with its roll. The
pieces are its known parts: a separator that reads the score learns from them how instruments that overlap
share a bin (``losses.terms.SoloLoss``).

Written here because it is a property of our cache's rolls and mixtures; no library finds such passages.
"""

from __future__ import annotations

import numpy as np

from scoresep.data.cached_track import CachedTrack
from scoresep.errors import SettingsError


class SoloPassages:
    """The solo passages of some tracks (a split's training tracks), and artificial mixtures of them.

    Args:
        tracks: the cached tracks to search.
        frame_rate: STFT frames per second.
        hop_length: samples per frame.
        mixture: ``instruments`` (the mixture is the sum of the instruments' stems) or ``full`` (the track's own
            mixture): the audio a passage is cut from, the mixture the stages train on.
        margin_s: seconds after another instrument's last note before a passage may start.
        shortest_s: shortest passage kept.
        keep: probability that an instrument has a piece in an artificial mixture.
    """

    def __init__(self, tracks: list[CachedTrack], frame_rate: float, hop_length: int, mixture: str,
                 margin_s: float = 0.5, shortest_s: float = 0.5, keep: float = 0.8):
        self.tracks, self.hop_length, self.mixture, self.keep = tracks, hop_length, mixture, keep
        self.frame_rate = frame_rate
        self.n_instruments = len(tracks[0].record["active"]) if tracks else 0
        self.passages: list[list[tuple[int, int, int]]] = [[] for _ in range(self.n_instruments)]
        margin, shortest = int(margin_s * frame_rate), max(1, int(shortest_s * frame_rate))
        for index, track in enumerate(tracks):
            active = track.rolls(0, track.n_frames).any(1)  # (instrument, frame)
            recent = active.copy()  # sounding now or within the margin before
            for shift in range(1, margin + 1):
                recent[:, shift:] |= active[:, :-shift]
            for instrument in range(self.n_instruments):
                others = np.arange(self.n_instruments) != instrument
                solo = active[instrument] & ~recent[others].any(0)
                edges = np.diff(np.concatenate([[0], solo.astype(np.int8), [0]]))
                for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                    if end - start >= shortest:
                        self.passages[instrument].append((index, int(start), int(end)))
        if not any(self.passages):
            raise SettingsError("solo passages: no training track has a passage where the score has one instrument "
                                f"alone for {shortest_s} s or longer; solo-passage mixtures need some")

    def minutes(self) -> list[float]:
        """Minutes of solo passages per instrument."""
        return [sum(end - start for _, start, end in passages) / self.frame_rate / 60 for passages in self.passages]

    def _audio(self, track: CachedTrack, start: int, length: int) -> np.ndarray:
        if self.mixture == "instruments":
            return track.sources(start, length).sum(axis=0)
        return track.mixture(start, length)

    def draw(self, rng: np.random.Generator, segment_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """One artificial mixture's parts ``(instrument, segment_frames * hop)`` float32 and rolls ``(instrument,
        pitch, segment_frames + 1)`` bool; the mixture is the parts' sum."""
        hop, n_frames = self.hop_length, segment_frames + 1
        n_pitches = self.tracks[0].n_pitches
        parts = np.zeros((self.n_instruments, segment_frames * hop), np.float32)
        rolls = np.zeros((self.n_instruments, n_pitches, n_frames), bool)
        for instrument, passages in enumerate(self.passages):
            if not passages or rng.random() > self.keep:
                continue
            index, start, end = passages[int(rng.integers(len(passages)))]
            length = min(end - start, int(rng.uniform(0.5, segment_frames / self.frame_rate) * self.frame_rate),
                         n_frames - 1)
            length = max(1, length)
            first = start + int(rng.integers(0, end - start - length + 1))
            offset = int(rng.integers(0, n_frames - length))
            track = self.tracks[index]
            parts[instrument, offset * hop:(offset + length) * hop] = self._audio(track, first * hop, length * hop)
            rolls[instrument, :, offset:offset + length] = track.rolls(first, length)[instrument]
        return parts, rolls
