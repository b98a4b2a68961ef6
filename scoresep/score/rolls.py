"""A MIDI score on the STFT's frames: one piano roll per instrument of ours, each MIDI instrument counted for
ours by its GM program (drums are left out; they have no harmonics)."""

from __future__ import annotations

import numpy as np
import pretty_midi

from scoresep.data.midi import piano_roll
from scoresep.instruments import instrument_of


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
