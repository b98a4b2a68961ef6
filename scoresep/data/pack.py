"""``scoresep pack``: a Slakh-layout, score-only dataset from a user's (recording, MIDI score) pairs.

Pairs are matched by file stem: ``song.flac`` (or .wav, .mp3, .ogg, .aiff) with ``song.mid`` (or ``.midi``) in
the MIDI folder. Each pair becomes ``DATASET/<split>/TrackNNNNN/``::

    mix.flac         the recording: a FLAC file copied as it is, 16/24-bit PCM re-encoded to FLAC at that depth;
                     any other source (float WAV, MP3, OGG) as ``mix.wav``, 32-bit float, so nothing is lost
    all_src.mid      the whole score (aligned to the recording with --align)
    MIDI/SNN.mid     one file per MIDI instrument (drums too), as Slakh stores them
    metadata.yaml    per stem ``inst_class``, ``program_num``, ``is_drum`` (``audio_rendered: false``: no stems),
                     the source files with their content digests, and the alignment's quality; written last

``scoresep prepare`` indexes such tracks as score-only (``has_sources: false``). ``DATASET/pack.json`` lists every
track of the dataset (with its alignment quality) and what this run skipped and why.

A track is its recording's content (SHA-1), so moved or copied recordings are recognised. Re-running reuses a
track whose score is unchanged, packs it again under its name and split when its score changed, and removes it
when it no longer passes this run's thresholds. Every track is built in ``DATASET/.incoming/`` and moved into its
split folder only when complete, so an interrupted run never leaves a half-written track among the others; the
finished new tracks it left there are taken over by the next run. New tracks get their split when the run ends,
so the fractions apply to the tracks that were packed, not to the pairs that were tried. Names are never reused:
every ``TrackNNNNN`` folder already in the dataset, whoever made it, is left alone.

A pair is skipped, with one line naming the file and the reason, when: the MIDI cannot be read or holds no note,
it holds none of the configured instruments, the recording cannot be decoded or is shorter than one analysis
window, recording and score lengths differ by more than ``length_tolerance`` (without ``align``), or the
alignment fails or scores below ``min_quality``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scoresep.constants import (
    ALIGN_MIN_QUALITY,
    DEFAULT_INSTRUMENTS,
    PACK_LENGTH_TOLERANCE,
)
from scoresep.data.align import AlignmentError
from scoresep.data.audio import AudioError, audio_files
from scoresep.data.midi import MidiError
from scoresep.data.pack_track import CREATED_BY, PackSettings, fingerprint, pack_pair
from scoresep.data.score_check import check_thresholds
from scoresep.data.slakh import DatasetError, read_metadata
from scoresep.data.splits import SPLITS
from scoresep.errors import SettingsError
from scoresep.fileio import atomic_write_text, output_lock
from scoresep.instruments import check_instruments

MIDI_SUFFIXES = (".mid", ".midi")
INDEX_NAME = "pack.json"
INCOMING = ".incoming"  # new tracks are packed here, then moved into their split folder
INDEX_FORMAT = 1




@dataclass(frozen=True)
class Skipped:
    """A file that was not packed (or a track that was removed): ``path: reason``."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class PackResult:
    """What a pack run did: the dataset's tracks after it (index records), the files it skipped, how many tracks
    it reused unchanged, and the time it took for how much newly packed audio."""

    out: Path
    packed: list[dict] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def splits(self) -> dict[str, int]:
        """Tracks per split in the dataset."""
        return {split: sum(record["split"] == split for record in self.packed) for split in SPLITS}


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> train/validation/test fractions (ValueError naming the problem otherwise)."""
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise SettingsError(f"--split {text}: expected three numbers like 0.8,0.1,0.1") from None
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not 0.999 <= sum(fractions) <= 1.001:
        raise SettingsError(f"--split {text}: need three fractions >= 0 (train, validation, test) that sum to 1")
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
    for file in audio_files(inputs):
        if file.stem in audio and audio[file.stem] != file:
            raise SettingsError(f"{audio[file.stem]} and {file} have the same name; each recording needs its own "
                                "(the MIDI file is matched by name)")
        audio[file.stem] = file
    scores: dict[str, Path] = {}
    for file in sorted(midi_dir.iterdir()):
        if file.is_file() and file.suffix.lower() in MIDI_SUFFIXES:
            if file.stem in scores:
                raise SettingsError(f"{scores[file.stem]} and {file}: two MIDI files for one name")
            scores[file.stem] = file
    pairs = [(audio[stem], scores[stem]) for stem in sorted(audio) if stem in scores]
    unmatched = [Skipped(audio[stem], f"no MIDI file {stem}.mid (or .midi) in {midi_dir}")
                 for stem in sorted(audio) if stem not in scores]
    if len(inputs) == 1 and Path(inputs[0]).is_dir():  # MIDI without a recording: only where all audio was given
        unmatched += [Skipped(scores[stem], f"no recording named {stem} in {inputs[0]}")
                      for stem in sorted(scores) if stem not in audio]
    return pairs, unmatched


def content_digest(path: Path) -> str:
    """SHA-1 of a file's bytes: a recording or score is recognised by its content, wherever it lies."""
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()












TRACK_NAME = re.compile(r"^Track(\d+)$")


def _finished(track_dir: Path) -> dict | None:
    """The index record of a track that ``pack`` finished (its ``metadata.yaml`` says so), else None."""
    try:
        metadata = read_metadata(track_dir)
    except DatasetError:
        return None
    source = metadata.get("source")
    if not str(metadata.get("created_by", "")).startswith("scoresep pack") or not isinstance(source, dict) \
            or "audio_sha1" not in source:
        return None
    return {**source, "track": track_dir.name}


def packed_tracks(out: Path) -> dict[str, dict]:
    """Records of the tracks ``pack`` finished in the split folders of ``out``, by the recording's content digest
    (``audio_sha1``), each with its ``split``."""
    records = {}
    for split in SPLITS:
        folder = out / split
        for track_dir in sorted(folder.iterdir()) if folder.is_dir() else ():
            record = _finished(track_dir)
            if record is not None:
                records[record["audio_sha1"]] = {**record, "split": split}
    return records


def _reserved_numbers(out: Path) -> set[int]:
    """Numbers of every ``TrackNNNNN`` folder in ``out``'s split folders and staging folder, whoever made it."""
    numbers = set()
    for folder in [out / split for split in SPLITS] + [out / INCOMING]:
        for child in folder.iterdir() if folder.is_dir() else ():
            match = TRACK_NAME.match(child.name)
            if match:
                numbers.add(int(match.group(1)))
    return numbers


def _still_acceptable(record: dict, settings: PackSettings) -> str | None:
    """Why a reused track no longer passes this run's thresholds (None when it does)."""
    if not set(record.get("score_instruments", [])) & set(settings.instruments):
        return f"holds none of the configured instruments {list(settings.instruments)}; track {record['track']} removed"
    if settings.align and (record.get("alignment_quality") or 0.0) < settings.min_quality:
        return (f"alignment is poor (quality {record['alignment_quality']:.2f} < --min-quality "
                f"{settings.min_quality:.2f}); track {record['track']} removed")
    if not settings.align and abs(record["score_seconds"] - record["seconds"]) > settings.length_tolerance:
        return (f"recording and score lengths differ by {abs(record['score_seconds'] - record['seconds']):.1f} s "
                f"(--length-tolerance {settings.length_tolerance:g} s); track {record['track']} removed")
    return None


def _skip(result: PackResult, error: Exception) -> None:
    """Record a failed pair: the error's ``PATH: reason`` (an OSError's file name when it has one)."""
    if isinstance(error, OSError) and not isinstance(error, (MidiError, AudioError)) and error.filename:
        result.skipped.append(Skipped(Path(error.filename), error.strerror or str(error)))
        return
    path, _, reason = str(error).partition(": ")
    result.skipped.append(Skipped(Path(path), reason or str(error)))


def pack(inputs: list[str | os.PathLike], midi_dir: str | os.PathLike, out: str | os.PathLike,
         instruments: tuple[str, ...] | list[str] = DEFAULT_INSTRUMENTS,
         split: tuple[float, float, float] = (0.8, 0.1, 0.1), align: bool = False,
         length_tolerance: float = PACK_LENGTH_TOLERANCE, min_quality: float = ALIGN_MIN_QUALITY,
         seed: int = 0, progress: bool = True) -> PackResult:
    """Pack every (recording, score) pair of ``inputs`` / ``midi_dir`` into the dataset folder ``out``.

    A track is its recording's content: a recording packed before (wherever it lies now) is reused when its
    score's content and ``align`` are unchanged and it still passes the thresholds, packed again under its name
    and split when its score changed, and removed when it no longer passes. Every track is built in
    ``out/.incoming/`` and moved into its split folder only when complete (a changed one replaces the old one
    there); finished new tracks an interrupted run left in ``.incoming`` are taken over, anything else there is
    removed. Problems with single pairs are collected in ``result.skipped`` (the others are still packed);
    problems with the arguments raise (FileNotFoundError, ValueError). Writes ``out/pack.json`` at the end.
    """

    started = time.perf_counter()
    check_thresholds(length_tolerance, min_quality)
    settings = PackSettings(check_instruments(instruments), align, float(length_tolerance), float(min_quality))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out is an existing file, not a folder")
    pairs, skipped = find_pairs(inputs, midi_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):  # a second pack into the same dataset at the same time stops at once and says so
        return _pack_locked(pairs, skipped, out, settings, split, seed, progress, started)


def _pack_locked(pairs: list[tuple[Path, Path]], skipped: list[Skipped], out: Path, settings: PackSettings,
                 split: tuple[float, float, float], seed: int, progress: bool, started: float) -> PackResult:
    """``pack`` once it holds the dataset folder."""
    from tqdm import tqdm

    result = PackResult(out, skipped=list(skipped))
    previous = packed_tracks(out)
    incoming = out / INCOMING
    staged = {}  # finished new tracks of an interrupted run, by fingerprint
    for child in sorted(incoming.iterdir()) if incoming.is_dir() else ():
        record = _finished(child) if TRACK_NAME.match(child.name) else None
        if record is not None and record["audio_sha1"] not in previous:
            staged[record["fingerprint"]] = record
        else:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    next_number = max(_reserved_numbers(out), default=0) + 1
    seen: dict[str, Path] = {}
    todo, new_tracks = [], []
    for audio, midi in pairs:
        try:
            digests = (content_digest(audio), content_digest(midi))
        except OSError as error:
            _skip(result, error)
            continue
        if digests[0] in seen:
            result.skipped.append(Skipped(audio, f"the same recording as {seen[digests[0]]}; packed once"))
            continue
        seen[digests[0]] = audio
        digest = fingerprint(*digests, settings)
        record = previous.get(digests[0])
        if record is not None and record["fingerprint"] == digest:
            problem = _still_acceptable(record, settings)
            if problem is None:
                result.packed.append({**record, "audio": str(audio.resolve()), "midi": str(midi.resolve())})
                result.reused += 1
            else:
                result.skipped.append(Skipped(midi, problem))
                shutil.rmtree(out / record["split"] / record["track"])
            continue
        if record is None and digest in staged:
            new_tracks.append(staged.pop(digest))  # finished by an interrupted run: only its split is missing
            result.reused += 1
            continue
        todo.append((audio, midi, digests, record))
    for leftover in staged.values():
        shutil.rmtree(incoming / leftover["track"])
    bar = tqdm(todo, desc="pack", unit="track", disable=not progress, file=sys.stderr)
    for audio, midi, digests, record in bar:
        name = record["track"] if record is not None else f"Track{next_number:05d}"
        build = incoming / name
        try:
            packed = pack_pair(audio, midi, build, settings, digests)
        except (MidiError, AudioError, AlignmentError, DatasetError, OSError) as error:
            _skip(result, error)
            if build.exists():
                shutil.rmtree(build)  # half-written: the dataset keeps only finished tracks
            if record is not None:  # its score changed and the new one fails: the old track is outdated
                shutil.rmtree(out / record["split"] / record["track"])
                result.skipped[-1] = Skipped(result.skipped[-1].path,
                                             f"{result.skipped[-1].reason}; track {name} removed")
            continue
        result.audio_seconds += packed["seconds"]
        if record is None:
            next_number += 1
            new_tracks.append(packed)
        else:  # swap the new build in for the old track: two renames, the old one deleted last
            target, old = out / record["split"] / name, incoming / f"{name}.old"
            os.replace(target, old)
            os.replace(build, target)
            shutil.rmtree(old)
            result.packed.append({**packed, "split": record["split"]})
    bar.close()
    for packed, label in zip(new_tracks, split_labels(len(new_tracks), split, seed), strict=True):
        target = out / label / packed["track"]
        if target.exists():  # names are reserved above; only another process writing here could cause this
            result.skipped.append(Skipped(target, f"already exists; the new track stays in {incoming}"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming / packed["track"], target)
        result.packed.append({**packed, "split": label})
    if incoming.is_dir() and not any(incoming.iterdir()):
        incoming.rmdir()
    result.seconds = time.perf_counter() - started
    write_index(result, settings, split, seed, packed_tracks(out))
    return result


def write_index(result: PackResult, settings: PackSettings, split: tuple[float, float, float], seed: int,
                dataset: dict[str, dict]) -> Path:
    """``out/pack.json``: settings, every track ``pack`` finished in the dataset (with its alignment quality, and
    whether this run's inputs held its recording) and the files this run skipped, with the reason."""
    this_run = {record["audio_sha1"] for record in result.packed}
    tracks = [{**record, "in_this_run": digest in this_run} for digest, record in dataset.items()]
    index = {"format": INDEX_FORMAT, "created_by": CREATED_BY,
             "settings": {**asdict(settings), "instruments": list(settings.instruments), "split": list(split),
                          "seed": seed},
             "tracks": sorted(tracks, key=lambda record: record["track"]),
             "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
             "seconds": round(result.seconds, 2), "packed_audio_seconds": round(result.audio_seconds, 2)}
    path = result.out / INDEX_NAME
    atomic_write_text(path, json.dumps(index, indent=1))
    return path
