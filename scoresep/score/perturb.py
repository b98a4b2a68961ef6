"""A score as a real user's score is: notes a little early or late, a few missing or extra, the tempo a little off.

``perturb_rolls`` applies such errors to piano rolls ``(instrument, pitch, frame)``, note by note (a note is a run
of active frames of one pitch). Training a score-informed separator on perturbed scores makes it robust to them
(``RemixLoss``'s ``perturbation``), and evaluating with perturbed test scores measures how robust it is
(``benchmarks/score_perturbation.py``). Written here because it works on our rolls' frames; the MIDI-level
augmenters of the field work on note lists of another representation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoresep.errors import SettingsError


@dataclass(frozen=True)
class ScorePerturbation:
    """What a perturbation does, in seconds and shares of notes (all 0: the score as it is).

    Args:
        offset_s: the whole score shifted by this much (later when positive), as a misaligned score is.
        jitter_s: each note shifted by its own uniform draw in ``[-jitter_s, jitter_s]``.
        drop: share of notes removed.
        add: extra notes, as a share of the notes (at most 1): copies of random notes of the same instrument
            moved to another pitch (within an octave) and time.
        stretch: the score's time axis scaled by a uniform draw in ``[1 - stretch, 1 + stretch]`` (tempo off).
    """

    offset_s: float = 0.0
    jitter_s: float = 0.0
    drop: float = 0.0
    add: float = 0.0
    stretch: float = 0.0

    def __post_init__(self) -> None:
        if not all(np.isfinite([self.offset_s, self.jitter_s, self.drop, self.add, self.stretch])):
            raise SettingsError(f"score perturbation: every value must be finite, got {self}")
        if self.jitter_s < 0 or not 0 <= self.drop <= 1 or not 0 <= self.add <= 1 or not 0 <= self.stretch < 1:
            raise SettingsError("score perturbation: need jitter_s >= 0, 0 <= drop <= 1, 0 <= add <= 1 and "
                                f"0 <= stretch < 1, got {self}")

    @property
    def is_identity(self) -> bool:
        return not (self.offset_s or self.jitter_s or self.drop or self.add or self.stretch)


def notes_of(roll: np.ndarray) -> list[tuple[int, int, int]]:
    """``(pitch, first frame, end frame)`` of every run of active frames of a roll ``(pitch, frame)``."""
    padded = np.pad(roll.astype(np.int8), [(0, 0), (1, 1)])
    edges = np.diff(padded, axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    return [(int(pitch), int(start), int(end)) for pitch, start, end in zip(starts[0], starts[1], ends[1], strict=True)]


def perturb_rolls(rolls: np.ndarray, perturbation: ScorePerturbation, frame_rate: float,
                  rng: np.random.Generator) -> np.ndarray:
    """The rolls ``(instrument, pitch, frame)`` (bool or 0/1) with ``perturbation`` applied; same shape and dtype.
    Notes pushed past either end are cut there."""
    if rolls.ndim != 3:
        raise SettingsError(f"perturb_rolls: rolls must be (instrument, pitch, frame), got shape {rolls.shape}")
    if perturbation.is_identity:
        return rolls.copy()
    n_pitches, n_frames = rolls.shape[1], rolls.shape[2]
    scale = 1.0 + rng.uniform(-perturbation.stretch, perturbation.stretch) if perturbation.stretch else 1.0
    jitter = perturbation.jitter_s * frame_rate
    result = np.zeros_like(rolls)
    for instrument, roll in enumerate(rolls):
        notes = notes_of(roll)
        kept = [note for note in notes if rng.random() >= perturbation.drop]
        extra = int(rng.binomial(len(notes), perturbation.add)) if notes and perturbation.add else 0
        for _ in range(extra):
            pitch, start, end = notes[rng.integers(len(notes))]
            pitch = int(np.clip(pitch + rng.integers(-12, 13), 0, n_pitches - 1))
            where = int(rng.integers(0, n_frames))
            kept.append((pitch, where, where + end - start))
        for pitch, start, end in kept:
            shift = perturbation.offset_s * frame_rate + (rng.uniform(-jitter, jitter) if jitter else 0.0)
            first = int(round(start * scale + shift))
            last = max(first + 1, int(round(end * scale + shift)))
            first, last = max(first, 0), min(last, n_frames)
            if first < last:
                result[instrument, pitch, first:last] = 1
    return result
