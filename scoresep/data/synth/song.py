"""What the renderer takes: a Song of StemParts, and ``song_from_midi``, which reads one from a user's MIDI file.

The two sources of songs meet here: ``compose`` builds a Song from seeded draws, ``song_from_midi`` from a MIDI
file (as Slakh itself was rendered from Lakh MIDI); ``layout.write_track`` renders either. Kept apart from the
composer so that rendering a user's MIDI folder needs none of the composition code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

from scoresep.data.midi import load_midi
from scoresep.errors import SettingsError
from scoresep.instruments import GM_FAMILIES


@dataclass
class StemPart:
    """One stem to render: a single pretty_midi instrument plus its Slakh metadata."""

    instrument: pretty_midi.Instrument
    inst_class: str
    gain_db: float = 0.0


@dataclass
class Song:
    """A composed or loaded song: its stems, tempo and length in seconds."""

    parts: list[StemPart]
    tempo: float
    seconds: float
    source: str | None = None
    info: dict = field(default_factory=dict)



def song_from_midi(path: Path, max_seconds: float | None, seed: int, index: int) -> Song:
    """A user's MIDI file as a song: one stem per non-empty MIDI instrument, cut to ``max_seconds``."""
    midi = load_midi(path)
    rng = np.random.default_rng([seed, index])
    seconds = midi.get_end_time()
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    parts = []
    for instrument in midi.instruments:
        notes = [n for n in instrument.notes if n.start < seconds]
        if not notes:
            continue
        copy = pretty_midi.Instrument(program=instrument.program, is_drum=instrument.is_drum, name=instrument.name)
        copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, seconds)) for n in notes]
        copy.control_changes = [c for c in instrument.control_changes if c.time < seconds]
        copy.pitch_bends = [b for b in instrument.pitch_bends if b.time < seconds]
        inst_class = "Drums" if instrument.is_drum else GM_FAMILIES[instrument.program // 8]
        if inst_class == "Ensemble":
            inst_class = "Strings (continued)"
        parts.append(StemPart(copy, inst_class, float(rng.uniform(-3.0, 0.0))))
    if not parts:
        raise SettingsError(f"{path}: MIDI file has no notes")
    return Song(parts, midi.estimate_tempo() if len(midi.get_onsets()) > 1 else 120.0, seconds, source=str(path))
