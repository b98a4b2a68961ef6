"""Score-informed masks: what a recording's score alone says about where each instrument's energy is.

A note of pitch ``p`` sounds near its harmonics ``k * f0(p)``; the harmonic mask ``H_i`` of instrument ``i`` (the
one ``L_h-mix`` uses in training, ``losses.mixture.harmonic_mask``) marks those bins in the frames where its notes
sound. As a separator it needs no training: instrument ``i`` keeps ``H_i / max(1, sum_j H_j)`` of every bin, so
a bin that ``n`` sounding instruments cover is split equally between them, and a bin no score note explains goes
to the residual. With a learned mask ``M_i`` it restricts it instead: ``M_i * H_i``.

The score comes as piano rolls on the STFT's frames: ``score_rolls`` makes them from a MIDI file, grouping its
MIDI instruments into ours by GM program (drums are left out; they have no harmonics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi
import torch

from scoresep.constants import HARMONIC_TOLERANCE, N_HARMONICS
from scoresep.data.midi import piano_roll
from scoresep.instruments import instrument_of
from scoresep.losses import harmonic_mask
from scoresep.losses._shapes import check_shape


@dataclass(frozen=True)
class HarmonicSettings:
    """Harmonic masks of a score: harmonics per note and their half-width in semitones (stage 2's defaults)."""

    n_harmonics: int = N_HARMONICS
    tolerance: float = HARMONIC_TOLERANCE


STAGE2_HARMONICS = HarmonicSettings()  # the default of every separator: the masks L_h-mix trains with


def score_masks(rolls: torch.Tensor, templates: torch.Tensor, learned: torch.Tensor | None = None) -> torch.Tensor:
    """Masks ``(instrument, freq, frame)`` from a score's rolls ``(instrument, pitch, frame)``.

    Without ``learned``: the harmonic masks, each bin shared equally by the instruments that cover it (they sum to
    1 where any covers it, else 0). With ``learned`` ``(instrument, freq, frame)``: ``learned * H``.
    """
    check_shape("score_masks rolls", rolls, "instrument, pitch, frame", pitch=templates.shape[0])
    harmonic = harmonic_mask(rolls[None], templates)[0]
    if learned is not None:
        check_shape("score_masks learned", learned, "instrument, freq, frame", instrument=harmonic.shape[0],
                    freq=harmonic.shape[1], frame=harmonic.shape[2])
        return learned * harmonic
    return harmonic / harmonic.sum(dim=0, keepdim=True).clamp_min(1.0)


def score_rolls(midi: pretty_midi.PrettyMIDI, instruments: tuple[str, ...], n_frames: int, frame_rate: float,
                min_midi: int, max_midi: int) -> tuple[np.ndarray, dict[str, int]]:
    """``(rolls, notes per instrument)``: bool rolls ``(instrument, pitch, frame)`` of a score on the STFT's frames
    (frame ``n`` at ``n / frame_rate`` s), each MIDI instrument counted for ours by its GM program."""
    rolls = np.zeros((len(instruments), max_midi - min_midi + 1, n_frames), dtype=bool)
    counts = dict.fromkeys(instruments, 0)
    for part in midi.instruments:
        name = instrument_of(None, part.program, part.is_drum)
        if name not in counts or not part.notes:
            continue
        notes = np.asarray([(note.start, note.end, note.pitch) for note in part.notes], dtype=np.float64)
        rolls[instruments.index(name)] |= piano_roll(notes, n_frames, frame_rate, min_midi, max_midi)
        counts[name] += len(part.notes)
    return rolls, counts
