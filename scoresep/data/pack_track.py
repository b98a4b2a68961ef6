"""One (recording, MIDI score) pair packed into one Slakh-layout track folder: the recording without loss, the
score checked against it (``score_check``; aligned with ``align``) as ``all_src.mid`` and one ``MIDI/SNN.mid`` per
MIDI instrument, and ``metadata.yaml`` last. ``pack.py`` decides which pairs to pack and where."""

from __future__ import annotations

import copy
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pretty_midi
import yaml

from scoresep import __version__
from scoresep.constants import (
    ALIGN_MIN_QUALITY,
    DEFAULT_INSTRUMENTS,
    MAX_MIDI,
    MIN_MIDI,
    N_FFT,
    PACK_LENGTH_TOLERANCE,
    SAMPLE_RATE,
)
from scoresep.data.audio import AudioError, audio_info, read_audio
from scoresep.data.midi import MidiError, load_midi, write_midi
from scoresep.data.score_check import fit_score
from scoresep.data.slakh import DatasetError
from scoresep.fileio import atomic_write_bytes, atomic_write_text
from scoresep.instruments import GM_FAMILIES, instrument_of

CREATED_BY = f"scoresep pack {__version__}"
# The shortest recording worth packing: one STFT window of the default features (64 ms at 16 kHz).
MIN_SECONDS = N_FFT / SAMPLE_RATE


@dataclass(frozen=True)
class PackSettings:
    """What a pack run accepts. Only ``align`` changes a packed track's files (it is part of the fingerprint);
    the others are thresholds, checked again against a reused track's recorded figures."""

    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    align: bool = False
    length_tolerance: float = PACK_LENGTH_TOLERANCE
    min_quality: float = ALIGN_MIN_QUALITY


def fingerprint(audio_digest: str, midi_digest: str, settings: PackSettings) -> str:
    """What decides a packed track's files: the recording's and the score's content, and ``align``."""
    text = f"{audio_digest}|{midi_digest}|align={settings.align}"
    return hashlib.sha1(text.encode()).hexdigest()


def inst_class_of(instrument: pretty_midi.Instrument) -> str:
    """Slakh's ``inst_class`` of a MIDI instrument: ``Drums`` or its GM family name."""
    return "Drums" if instrument.is_drum else GM_FAMILIES[instrument.program // 8]


def _stem_midi(midi: pretty_midi.PrettyMIDI, instrument: pretty_midi.Instrument) -> pretty_midi.PrettyMIDI:
    """A MIDI file with the tempo map, signatures and lyrics of ``midi`` and the one ``instrument``."""
    single = copy.copy(midi)  # shallow: writing only reads the shared tempo map and signatures
    single.instruments = [instrument]
    return single


def _write_mix(audio: Path, track_dir: Path) -> str:
    """The recording inside ``track_dir``, without loss; returns the file's name. A FLAC file is copied byte for
    byte (``mix.flac``), 16- and 24-bit PCM is re-encoded to FLAC at that depth, anything else (float WAV, MP3,
    OGG: their decoded samples) is written as 32-bit float ``mix.wav``."""
    import soundfile

    if audio.suffix.lower() == ".flac":
        with open(audio, "rb") as source:
            atomic_write_bytes(track_dir / "mix.flac", lambda stream: shutil.copyfileobj(source, stream))
        return "mix.flac"
    subtype = soundfile.info(str(audio)).subtype
    name, kind, subtype = (("mix.flac", "FLAC", subtype) if subtype in ("PCM_16", "PCM_24")
                           else ("mix.wav", "WAV", "FLOAT"))
    try:
        data, rate = soundfile.read(str(audio), dtype="float32", always_2d=True)
        atomic_write_bytes(track_dir / name, lambda stream: soundfile.write(stream, data, rate, subtype=subtype,
                                                                              format=kind))
    except Exception as error:
        raise AudioError(f"{audio}: cannot write it into the dataset ({error})") from error
    return name


def pack_pair(audio: Path, midi_path: Path, track_dir: Path, settings: PackSettings, digests: tuple[str, str]
              ) -> dict:
    """Pack one pair into ``track_dir`` (made afresh); returns its index record. Raises MidiError, AudioError or
    AlignmentError (the message naming the file), or DatasetError for a pair that does not fit the dataset.
    ``digests``: the recording's and the score's ``content_digest``."""
    midi = load_midi(midi_path)
    played = [inst for inst in midi.instruments if inst.notes]
    if not any(not inst.is_drum for inst in played):
        raise MidiError(f"{midi_path}: the MIDI file holds no (pitched) notes")
    names = [instrument_of(None, inst.program, inst.is_drum) for inst in played]
    if not set(names) & set(settings.instruments):
        found = ", ".join(sorted({str(name) for name in names}))
        raise DatasetError(f"{midi_path}: holds none of the configured instruments {list(settings.instruments)} "
                           f"(found: {found})")
    rate, frames, _ = audio_info(audio)
    seconds = frames / rate
    if seconds < MIN_SECONDS:
        raise AudioError(f"{audio}: the recording is {seconds:.3f} s long, shorter than one analysis window "
                         f"({MIN_SECONDS:.3f} s)")
    score_seconds = float(midi.get_end_time())
    waveform, rate = read_audio(audio)
    midi, fit = fit_score(midi, str(midi_path), waveform, rate, audio.name, settings.instruments, MIN_MIDI, MAX_MIDI,
                          align=settings.align, length_tolerance=settings.length_tolerance,
                          min_quality=settings.min_quality)
    if settings.align:
        played = [inst for inst in midi.instruments if inst.notes]
    if track_dir.exists():  # an earlier, unfinished or outdated packing of this track: start it afresh
        shutil.rmtree(track_dir)
    (track_dir / "MIDI").mkdir(parents=True, exist_ok=True)
    _write_mix(audio, track_dir)
    write_midi(track_dir / "all_src.mid", midi, source=midi_path)
    stems = {}
    for number, instrument in enumerate(played):
        stem_id = f"S{number:02d}"
        write_midi(track_dir / "MIDI" / f"{stem_id}.mid", _stem_midi(midi, instrument), source=midi_path)
        stems[stem_id] = {
            "audio_rendered": False, "inst_class": inst_class_of(instrument), "is_drum": bool(instrument.is_drum),
            "midi_program_name": "Drums" if instrument.is_drum else pretty_midi.program_to_instrument_name(
                instrument.program),
            "midi_saved": True, "program_num": int(instrument.program), "notes": len(instrument.notes),
        }
    record = {"track": track_dir.name, "audio": str(audio.resolve()),
              "midi": str(midi_path.resolve()), "seconds": round(seconds, 3), "score_seconds": round(score_seconds, 3),
              "aligned": fit.aligned,
              "alignment_quality": round(float(fit.agreement), 4) if fit.aligned else None,
              "score_agreement": round(float(fit.agreement), 4),  # chroma agreement (after aligning with --align)
              "notes_in_range": [fit.notes_in_range, fit.notes],
              "instruments": sorted({name for name in names if name in settings.instruments}),
              "score_instruments": sorted({str(name) for name in names}),
              "audio_sha1": digests[0], "midi_sha1": digests[1],
              "fingerprint": fingerprint(*digests, settings)}
    metadata = {"created_by": CREATED_BY, "audio_dir": "stems", "midi_dir": "MIDI", "source": record,
                "stems": stems}
    atomic_write_text(track_dir / "metadata.yaml", yaml.safe_dump(metadata, sort_keys=False))  # last: complete
    return record
