"""``scoresep pack``: a Slakh-layout, score-only dataset from a user's (recording, MIDI score) pairs.

Pairs are matched by file stem: ``song.flac`` (or .wav, .mp3, .ogg, .aiff) with ``song.mid`` (or ``.midi``) in
the MIDI folder. Each pair becomes ``DATASET/<split>/TrackNNNNN/``::

    mix.flac         the recording (FLAC files are copied as they are; other formats are re-encoded losslessly)
    all_src.mid      the whole score (aligned to the recording with --align)
    MIDI/SNN.mid     one file per MIDI instrument (drums too), as Slakh stores them
    metadata.yaml    per stem ``inst_class``, ``program_num``, ``is_drum`` (``audio_rendered: false``: no stems),
                     the source files, and the alignment's quality figure; written last

``scoresep prepare`` indexes such tracks as score-only (``has_sources: false``). ``DATASET/pack.json`` lists what
was packed, what was skipped and why. Every file is written to a temporary name and renamed; a new track is
packed under ``DATASET/.incoming/`` and moved into its split folder when the run ends, so the split fractions
apply to the tracks that were packed. A track whose ``metadata.yaml`` records the same inputs and settings is not
packed again, so an interrupted or repeated run goes on where it stopped, keeping track names and splits.

A pair is skipped, with one line naming the file and the reason, when: the MIDI cannot be read or holds no note,
it holds none of the configured instruments, the recording cannot be decoded or is shorter than one analysis
window, recording and score lengths differ by more than ``length_tolerance`` (without ``align``), or the
alignment fails or scores below ``min_quality``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import yaml

from scoresep import __version__
from scoresep.constants import ALIGN_MIN_QUALITY, DEFAULT_INSTRUMENTS, N_FFT, PACK_LENGTH_TOLERANCE, SAMPLE_RATE
from scoresep.data.align import AlignmentError, align_score, warp_score
from scoresep.data.audio import AudioError, audio_info, read_audio
from scoresep.data.midi import MidiError, load_midi
from scoresep.data.slakh import DatasetError, read_metadata
from scoresep.data.splits import SPLITS
from scoresep.fileio import atomic_write_bytes, atomic_write_text
from scoresep.instruments import GM_FAMILIES, check_instruments, instrument_of

AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg", ".oga", ".aif", ".aiff")
MIDI_SUFFIXES = (".mid", ".midi")
INDEX_NAME = "pack.json"
INCOMING = ".incoming"  # new tracks are packed here, then moved into their split folder
INDEX_FORMAT = 1
CREATED_BY = f"scoresep pack {__version__}"
# The shortest recording worth packing: one STFT window of the default features (64 ms at 16 kHz).
MIN_SECONDS = N_FFT / SAMPLE_RATE


@dataclass(frozen=True)
class PackSettings:
    """What decides a packed track's content (part of each track's fingerprint)."""

    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    align: bool = False
    length_tolerance: float = PACK_LENGTH_TOLERANCE
    min_quality: float = ALIGN_MIN_QUALITY


@dataclass(frozen=True)
class Skipped:
    """A file that was not packed: ``path: reason``."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class PackResult:
    """What a pack run did: the packed tracks (index records), the skipped files, and the time it took."""

    out: Path
    packed: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> train/validation/test fractions (ValueError naming the problem otherwise)."""
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--split {text}: expected three numbers like 0.8,0.1,0.1") from None
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not 0.999 <= sum(fractions) <= 1.001:
        raise ValueError(f"--split {text}: need three fractions >= 0 (train, validation, test) that sum to 1")
    return fractions  # type: ignore[return-value]


def split_labels(count: int, fractions: tuple[float, float, float], seed: int) -> list[str]:
    """Seeded split label for each of ``count`` new tracks: validation and test get ``round(fraction * count)``,
    at least one each when their fraction is > 0 and there are at least 3 tracks; train the rest."""
    sizes = [int(round(f * count)) for f in fractions[1:]]
    if count >= 3:
        sizes = [max(1, size) if fraction > 0 else size for size, fraction in zip(sizes, fractions[1:], strict=True)]
    sizes = [min(size, count) for size in sizes]
    sizes[1] = min(sizes[1], count - sizes[0])
    labels = ["validation"] * sizes[0] + ["test"] * sizes[1]
    labels += ["train"] * (count - len(labels))
    order = np.random.default_rng([seed, 2_000_003]).permutation(count)
    return [labels[int(position)] for position in order]


def find_pairs(inputs: list[str | os.PathLike], midi_dir: str | os.PathLike) -> tuple[list[tuple[Path, Path]],
                                                                                       list[Skipped]]:
    """``(pairs (audio, MIDI) by stem, files without a partner)``. ``inputs``: audio files or folders of them."""
    midi_dir = Path(midi_dir)
    if not midi_dir.is_dir():
        raise FileNotFoundError(f"{midi_dir}: --midi is not a folder")
    audio: dict[str, Path] = {}
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no audio file ({', '.join(AUDIO_SUFFIXES)})")
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
        for file in found:
            if file.stem in audio and audio[file.stem] != file:
                raise ValueError(f"{audio[file.stem]} and {file} have the same name; each recording needs its own "
                                 "(the MIDI file is matched by name)")
            audio[file.stem] = file
    scores: dict[str, Path] = {}
    for file in sorted(midi_dir.iterdir()):
        if file.is_file() and file.suffix.lower() in MIDI_SUFFIXES:
            if file.stem in scores:
                raise ValueError(f"{scores[file.stem]} and {file}: two MIDI files for one name")
            scores[file.stem] = file
    pairs = [(audio[stem], scores[stem]) for stem in sorted(audio) if stem in scores]
    unmatched = [Skipped(audio[stem], f"no MIDI file {stem}.mid (or .midi) in {midi_dir}")
                 for stem in sorted(audio) if stem not in scores]
    if len(inputs) == 1 and Path(inputs[0]).is_dir():  # MIDI without a recording: only where all audio was given
        unmatched += [Skipped(scores[stem], f"no recording named {stem} in {inputs[0]}")
                      for stem in sorted(scores) if stem not in audio]
    return pairs, unmatched


def fingerprint(audio: Path, midi: Path, settings: PackSettings) -> str:
    """Inputs (path, size, modification time) and settings of a packed track."""
    parts = [json.dumps(asdict(settings), sort_keys=True)]
    for path in (audio, midi):
        stat = path.stat()
        parts.append(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def inst_class_of(instrument: pretty_midi.Instrument) -> str:
    """Slakh's ``inst_class`` of a MIDI instrument: ``Drums`` or its GM family name."""
    return "Drums" if instrument.is_drum else GM_FAMILIES[instrument.program // 8]


def _midi_bytes(midi: pretty_midi.PrettyMIDI, source: Path) -> bytes:
    """The bytes of a MIDI file; MidiError naming ``source`` (the score it came from) when mido refuses it."""
    buffer = io.BytesIO()
    try:
        midi.write(buffer)
    except (ValueError, TypeError, OverflowError) as error:
        raise MidiError(f"{source}: cannot write this score as MIDI ({error})") from error
    return buffer.getvalue()


def _stem_midi(midi: pretty_midi.PrettyMIDI, instrument: pretty_midi.Instrument, source: Path) -> bytes:
    """A MIDI file with the tempo map, signatures and lyrics of ``midi`` and the one ``instrument``."""
    single = copy.copy(midi)  # shallow: writing only reads the shared tempo map and signatures
    single.instruments = [instrument]
    return _midi_bytes(single, source)


def _write_mix(audio: Path, target: Path) -> None:
    """The recording as ``target`` (FLAC): a FLAC file is copied byte for byte, others re-encoded (16- or 24-bit
    PCM as the source has it; 24-bit for float or compressed sources)."""
    if audio.suffix.lower() == ".flac":
        with open(audio, "rb") as source:
            atomic_write_bytes(target, lambda stream: shutil.copyfileobj(source, stream))
        return
    import soundfile

    subtype = soundfile.info(str(audio)).subtype
    subtype = subtype if subtype in ("PCM_16", "PCM_24") else "PCM_24"
    try:
        data, rate = soundfile.read(str(audio), dtype="float32", always_2d=True)
        atomic_write_bytes(target, lambda stream: soundfile.write(stream, data, rate, subtype=subtype, format="FLAC"))
    except Exception as error:
        raise AudioError(f"{audio}: cannot re-encode as FLAC ({error})") from error


def pack_pair(audio: Path, midi_path: Path, track_dir: Path, settings: PackSettings, digest: str) -> dict:
    """Pack one pair into ``track_dir``; returns its index record. Raises MidiError/AudioError/AlignmentError (the
    message naming the file), or DatasetError for a pair that does not fit the dataset."""
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
    alignment = None
    if settings.align:
        waveform, rate = read_audio(audio)
        try:
            alignment = align_score(waveform, rate, midi)
        except AlignmentError as error:
            raise AlignmentError(f"{midi_path}: alignment to {audio.name} failed: {error}") from None
        if alignment.quality < settings.min_quality:
            raise AlignmentError(f"{midi_path}: alignment to {audio.name} is poor (quality {alignment.quality:.2f} "
                                 f"< --min-quality {settings.min_quality:.2f}); is it the score of this recording?")
        midi = warp_score(midi, alignment)
        played = [inst for inst in midi.instruments if inst.notes]
    elif abs(score_seconds - seconds) > settings.length_tolerance:
        raise DatasetError(f"{midi_path}: recording and score lengths differ by {abs(score_seconds - seconds):.1f} s "
                           f"(recording {seconds:.1f} s, score {score_seconds:.1f} s; --length-tolerance "
                           f"{settings.length_tolerance:g} s): give --align to align the score")
    if track_dir.exists():  # an earlier, unfinished or outdated packing of this track: start it afresh
        shutil.rmtree(track_dir)
    (track_dir / "MIDI").mkdir(parents=True, exist_ok=True)
    _write_mix(audio, track_dir / "mix.flac")
    whole = _midi_bytes(midi, midi_path)
    atomic_write_bytes(track_dir / "all_src.mid", lambda stream: stream.write(whole))
    stems = {}
    for number, instrument in enumerate(played):
        stem_id = f"S{number:02d}"
        data = _stem_midi(midi, instrument, midi_path)
        atomic_write_bytes(track_dir / "MIDI" / f"{stem_id}.mid", lambda stream, data=data: stream.write(data))
        stems[stem_id] = {
            "audio_rendered": False, "inst_class": inst_class_of(instrument), "is_drum": bool(instrument.is_drum),
            "midi_program_name": "Drums" if instrument.is_drum else pretty_midi.program_to_instrument_name(
                instrument.program),
            "midi_saved": True, "program_num": int(instrument.program), "notes": len(instrument.notes),
        }
    record = {"track": track_dir.name, "audio": str(audio.resolve()),
              "midi": str(midi_path.resolve()), "seconds": round(seconds, 3), "score_seconds": round(score_seconds, 3),
              "aligned": alignment is not None,
              "alignment_quality": None if alignment is None else round(float(alignment.quality), 4),
              "instruments": sorted({name for name in names if name in settings.instruments}),
              "fingerprint": digest}
    metadata = {"created_by": CREATED_BY, "audio_dir": "stems", "midi_dir": "MIDI", "source": record,
                "stems": stems}
    atomic_write_text(track_dir / "metadata.yaml", yaml.safe_dump(metadata, sort_keys=False))  # last: complete
    return record


def packed_tracks(out: Path) -> dict[str, dict]:
    """Records of the tracks a previous run packed into ``out``, by the recording's resolved path."""
    records = {}
    for split in SPLITS:
        folder = out / split
        if not folder.is_dir():
            continue
        for track_dir in sorted(folder.iterdir()):
            try:
                metadata = read_metadata(track_dir)
            except DatasetError:
                continue  # unfinished (no metadata.yaml yet): packed again
            source = metadata.get("source")
            if str(metadata.get("created_by", "")).startswith("scoresep pack") and isinstance(source, dict):
                records[source["audio"]] = {**source, "track": track_dir.name, "split": split}
    return records


def pack(inputs: list[str | os.PathLike], midi_dir: str | os.PathLike, out: str | os.PathLike,
         instruments: tuple[str, ...] | list[str] = DEFAULT_INSTRUMENTS,
         split: tuple[float, float, float] = (0.8, 0.1, 0.1), align: bool = False,
         length_tolerance: float = PACK_LENGTH_TOLERANCE, min_quality: float = ALIGN_MIN_QUALITY,
         seed: int = 0, progress: bool = True) -> PackResult:
    """Pack every (recording, score) pair of ``inputs`` / ``midi_dir`` into the dataset folder ``out``.

    Problems with single pairs are collected in ``result.skipped`` (the others are still packed); problems with
    the arguments raise (FileNotFoundError, ValueError). Writes ``out/pack.json`` at the end.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    if length_tolerance < 0 or not 0 <= min_quality <= 1:
        raise ValueError(f"need --length-tolerance >= 0 and --min-quality in [0, 1], got {length_tolerance}, "
                         f"{min_quality}")
    settings = PackSettings(check_instruments(instruments), align, float(length_tolerance), float(min_quality))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out is an existing file, not a folder")
    pairs, skipped = find_pairs(inputs, midi_dir)
    result = PackResult(out, skipped=list(skipped))
    previous = packed_tracks(out)
    used = {record["track"] for record in previous.values()}
    numbers = [int(name[5:]) for name in used]
    next_number = max(numbers, default=0) + 1
    todo = []
    for audio, midi in pairs:
        record = previous.get(str(audio.resolve()))
        digest = fingerprint(audio, midi, settings)
        if record is not None and record.get("fingerprint") == digest:
            result.packed.append(record)
            result.reused += 1
            continue
        todo.append((audio, midi, digest, record))
    # New tracks are packed under out/.incoming and moved into their split folders at the end, so that the split
    # fractions apply to the tracks that were packed, not to the pairs that were tried.
    incoming = out / INCOMING
    new_tracks: list[dict] = []
    bar = tqdm(todo, desc="pack", unit="track", disable=not progress, file=sys.stderr)
    for audio, midi, digest, record in bar:
        if record is not None:  # inputs or settings changed: same name and split, packed again
            track_dir = out / record["split"] / record["track"]
        else:
            track_dir = incoming / f"Track{next_number:05d}"
        try:
            packed = pack_pair(audio, midi, track_dir, settings, digest)
        except (MidiError, AudioError, AlignmentError, DatasetError, OSError) as error:
            path, _, reason = str(error).partition(": ")
            result.skipped.append(Skipped(Path(path), reason or str(error)))
            if track_dir.exists() and (record is not None or not (track_dir / "metadata.yaml").exists()):
                shutil.rmtree(track_dir)  # outdated or half-written: the dataset keeps only finished tracks
            continue
        result.audio_seconds += packed["seconds"]
        if record is None:
            next_number += 1
            new_tracks.append(packed)
        else:
            result.packed.append({**packed, "split": record["split"]})
    bar.close()
    for packed, label in zip(new_tracks, split_labels(len(new_tracks), split, seed), strict=True):
        (out / label).mkdir(parents=True, exist_ok=True)
        os.replace(incoming / packed["track"], out / label / packed["track"])
        result.packed.append({**packed, "split": label})
    if incoming.is_dir() and not any(incoming.iterdir()):
        incoming.rmdir()
    result.seconds = time.perf_counter() - started
    write_index(result, settings, split, seed)
    return result


def write_index(result: PackResult, settings: PackSettings, split: tuple[float, float, float], seed: int) -> Path:
    """``out/pack.json``: settings, packed tracks (with alignment quality) and skipped files with the reason."""
    index = {"format": INDEX_FORMAT, "created_by": CREATED_BY,
             "settings": {**asdict(settings), "instruments": list(settings.instruments), "split": list(split),
                          "seed": seed},
             "packed": sorted(result.packed, key=lambda record: record["track"]),
             "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
             "seconds": round(result.seconds, 2), "packed_audio_seconds": round(result.audio_seconds, 2)}
    path = result.out / INDEX_NAME
    atomic_write_text(path, json.dumps(index, indent=1))
    return path
