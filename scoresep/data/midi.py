"""MIDI parsing and frame-level piano rolls aligned to the STFT frames.

Roll frame ``n`` covers the STFT frame centred at time ``n / frame_rate`` (``frame_rate = sample_rate /
hop_length``). A note sounding on ``[onset, offset)`` marks frames ``round(onset * frame_rate)`` up to (not
including) ``round(offset * frame_rate)``, and at least one frame, so notes shorter than a frame are kept.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pretty_midi

from scoresep.constants import MAX_MIDI, MIN_MIDI
from scoresep.errors import UserError
from scoresep.fileio import atomic_write_bytes


class MidiError(UserError, RuntimeError):
    """A MIDI file cannot be parsed; the message names the file."""


def load_midi(path: str | os.PathLike) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file; raises MidiError naming the file when it is missing or malformed."""
    if not os.path.isfile(path):
        raise MidiError(f"{path}: MIDI file not found")
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about type-0 files and tempo events off track 0; both are harmless here.
            warnings.filterwarnings("ignore", message="Tempo, Key or Time signature change events found")
            return pretty_midi.PrettyMIDI(str(path))
    except Exception as error:  # mido raises OSError/EOFError/KeyError/ValueError on bad files
        raise MidiError(f"{path}: cannot parse MIDI ({type(error).__name__}: {error})") from error


def write_midi(path: str | os.PathLike, midi: pretty_midi.PrettyMIDI, source: str | os.PathLike | None = None
               ) -> Path:
    """Write a MIDI file atomically (temp file + rename); MidiError naming ``source`` (the score it came from,
    default ``path``) when mido cannot store it (e.g. a tempo or a time out of MIDI's range)."""
    buffer = io.BytesIO()
    try:
        midi.write(buffer)
    except (ValueError, TypeError, OverflowError) as error:
        raise MidiError(f"{source or path}: cannot write this score as MIDI ({error})") from error
    atomic_write_bytes(Path(path), lambda stream: stream.write(buffer.getvalue()))
    return Path(path)


def midi_notes(midi: pretty_midi.PrettyMIDI, include_drums: bool = False) -> np.ndarray:
    """All notes of a parsed MIDI as a float64 array ``(notes, 3)`` of ``(onset_s, offset_s, pitch)``."""
    rows = [
        (note.start, note.end, note.pitch)
        for instrument in midi.instruments
        if include_drums or not instrument.is_drum
        for note in instrument.notes
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def piano_roll(
    notes: np.ndarray,
    n_frames: int,
    frame_rate: float,
    min_midi: int = MIN_MIDI,
    max_midi: int = MAX_MIDI,
    offset_seconds: float = 0.0,
) -> np.ndarray:
    """Frame-level piano roll ``(pitch, frame)`` of bool from notes ``(notes, 3)``.

    ``offset_seconds`` shifts time zero (the roll starts at that time). Pitches outside
    ``[min_midi, max_midi]`` are dropped; frames past ``n_frames`` are cut.
    """
    roll = np.zeros((max_midi - min_midi + 1, n_frames), dtype=bool)
    for onset, offset, pitch in notes:
        pitch = int(pitch)
        if not min_midi <= pitch <= max_midi:
            continue
        first = int(round((onset - offset_seconds) * frame_rate))
        last = max(first + 1, int(round((offset - offset_seconds) * frame_rate)))
        first, last = max(first, 0), min(last, n_frames)
        if first < last:
            roll[pitch - min_midi, first:last] = True
    return roll
