"""Piano rolls to a multi-instrument MIDI file: one track per instrument with its General-MIDI program."""

from __future__ import annotations

import numpy as np
import pretty_midi

from scoresep.errors import SettingsError
from scoresep.instruments import INSTRUMENTS
from scoresep.metrics import roll_note_frames


def rolls_to_midi(rolls: np.ndarray, instruments: tuple[str, ...], frame_rate: float, min_midi: int,
                  velocity: int = 100) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI with one instrument track per roll channel.

    Args:
        rolls: bool ``(instrument, pitch, frame)``; row ``p`` is MIDI pitch ``min_midi + p``.
        instruments: names of the channels (keys of ``scoresep.instruments.INSTRUMENTS``): the track's name and
            its GM program (the family's default, e.g. bass -> 33 Electric Bass (finger)).
        frame_rate: frames per second of the rolls; a run of frames ``[a, b)`` becomes a note ``[a, b) / rate``.
    """
    rolls = np.asarray(rolls, dtype=bool)
    if rolls.ndim != 3 or rolls.shape[0] != len(instruments):
        raise SettingsError(f"rolls must be (instrument={len(instruments)}, pitch, frame), got {rolls.shape}")
    midi = pretty_midi.PrettyMIDI(resolution=960)  # 0.52 ms ticks at 120 bpm: far finer than a frame
    for name, roll in zip(instruments, rolls, strict=True):
        track = pretty_midi.Instrument(program=INSTRUMENTS[name].default_program, name=name)
        for pitch_row, first, end in roll_note_frames(roll):
            track.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(min_midi + pitch_row),
                                                start=float(first / frame_rate), end=float(end / frame_rate)))
        midi.instruments.append(track)
    return midi
