"""One track on disk in the Slakh2100 layout: stems, mixture, per-stem and whole-song MIDI, and metadata.yaml
(Slakh's keys, integrated loudness of each stem and of the mixture, and which soundfont rendered the track).

Every file is written atomically (temp file + rename) with the permissions the umask gives a new file;
metadata.yaml is written last, so a track without it is incomplete.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pretty_midi
import yaml

from scoresep import __version__
from scoresep.data.audio import write_audio
from scoresep.data.loudness import integrated_loudness
from scoresep.data.midi import write_midi
from scoresep.data.synth.render import _PEAK, quantise_song, render_stem
from scoresep.data.synth.song import Song
from scoresep.fileio import atomic_write_text


def _write_yaml(path: Path, data: dict) -> None:
    """Write ``data`` as YAML atomically, readable as the umask allows (``fileio``)."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def _write_midi(path: Path, instruments: list[pretty_midi.Instrument], tempo: float) -> None:
    """Write a MIDI file of ``instruments`` atomically, readable as the umask allows (``midi.write_midi``)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    midi.instruments.extend(instruments)
    write_midi(path, midi)


def write_track(track_dir: Path, song: Song, sample_rate: int, soundfont: Path, held_out: bool = False) -> dict:
    """Render ``song`` into ``track_dir`` in the Slakh layout with ``soundfont``; returns a one-line summary dict.

    metadata.yaml records the soundfont (``soundfont``: file name, ``soundfont_path``, and ``soundfont_held_out``:
    whether it is a held-out test soundfont) besides Slakh's own ``plugin_name`` per stem and ``synthesizer``.
    """
    (track_dir / "stems").mkdir(parents=True, exist_ok=True)
    (track_dir / "MIDI").mkdir(exist_ok=True)
    n_samples = int(round(song.seconds * sample_rate))
    rendered = [render_stem(part, sample_rate, n_samples, soundfont) for part in song.parts]
    stems, mix = quantise_song(rendered, [part.gain_db for part in song.parts])
    stem_meta = {}
    for number, (part, audio) in enumerate(zip(song.parts, stems, strict=True)):
        stem_id = f"S{number:02d}"
        write_audio(track_dir / "stems" / f"{stem_id}.flac", audio, sample_rate)
        _write_midi(track_dir / "MIDI" / f"{stem_id}.mid", [part.instrument], song.tempo)
        program = part.instrument.program
        stem_meta[stem_id] = {
            "audio_rendered": True,
            "inst_class": part.inst_class,
            "integrated_loudness": round(integrated_loudness(audio / 32768.0, sample_rate), 3),
            "is_drum": bool(part.instrument.is_drum),
            "midi_program_name": ("Drums" if part.instrument.is_drum
                                  else pretty_midi.program_to_instrument_name(program)),
            "midi_saved": True,
            "plugin_name": soundfont.name,
            "program_num": int(program),
        }
    write_audio(track_dir / "mix.flac", mix, sample_rate)
    _write_midi(track_dir / "all_src.mid", [part.instrument for part in song.parts], song.tempo)
    metadata = {
        "UUID": uuid.uuid5(uuid.NAMESPACE_URL, str(track_dir.name) + repr(song.info) + str(song.source)).hex,
        "audio_dir": "stems",
        "midi_dir": "MIDI",
        "lmd_midi_dir": song.source,
        "normalization_factor": round(integrated_loudness(mix / 32768.0, sample_rate), 3),
        "overall_gain": 1.0,
        "target_peak": round(20 * math.log10(_PEAK), 3),
        "sample_rate": sample_rate,
        "synthesizer": f"scoresep {__version__} (FluidSynth, {soundfont.name})",
        "soundfont": soundfont.name,
        "soundfont_path": str(soundfont),
        "soundfont_held_out": held_out,
        "stems": stem_meta,
    }
    _write_yaml(track_dir / "metadata.yaml", metadata)  # written last: a track without it is incomplete
    return {"track": track_dir.name, "stems": len(song.parts), "seconds": song.seconds, "soundfont": soundfont.name}
