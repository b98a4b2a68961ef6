"""Index of a Slakh-layout folder: which stems make up each configured instrument of each track.

Reads Slakh2100 (orig, split2, redux: ``{train,validation,test}/TrackNNNNN``, 44.1 kHz FLAC), BabySlakh
(flat ``TrackNNNNN`` folders, 16 kHz WAV) and the project's own mini-Slakh unchanged. Rules:

- stems are grouped into instruments by ``inst_class`` (spelling variants accepted), ``program_num`` as
  fallback; drums are never a target instrument;
- the files decide, not the flags (BabySlakh marks every stem ``audio_rendered: false``): in a track with
  rendered stems a stem counts when its audio exists; a target stem with audio needs its MIDI (else the
  track is skipped: its score would be incomplete); a stem flagged as rendered whose audio is missing is
  reported and left out;
- a track with no stem audio at all (mixture + MIDI) is score-only: ``has_sources`` is False and every stem
  with a MIDI file counts;
- several stems of one instrument are summed into one source and their notes merged;
- stems on the shipped known-issues list are skipped with their reason.

Problems are collected as ``IndexProblem`` (file + reason + what was done) and logged; ``strict=True`` raises
DatasetError at the first one instead, whose message says the run stopped (nothing was skipped).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from scoresep.data.splits import SPLITS, assign_splits
from scoresep.errors import UserError
from scoresep.instruments import check_instruments, instrument_of

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".flac", ".wav")
_TRACK_NAME = re.compile(r"^Track\d+$")
SKIPPED = "track skipped"
STOPPED = "stopped (--strict)"  # what a strict run says instead of what it would have done


class DatasetError(UserError, RuntimeError):
    """The dataset cannot be used as configured; the message names the file or folder."""


@dataclass(frozen=True)
class IndexProblem:
    """Something wrong with one file of the dataset, and what was done about it.

    ``str()`` is the log line of a run that goes on (``PATH: REASON; track skipped``); ``stopped()`` is the
    error of a strict run, which did not skip anything but stopped there.
    """

    path: Path
    reason: str
    action: str = SKIPPED

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}; {self.action}"

    def stopped(self) -> str:
        """The message of a strict run that stops at this problem (``PATH: REASON; stopped (--strict)``)."""
        return f"{self.path}: {self.reason}; {STOPPED}"


@dataclass(frozen=True)
class Stem:
    """One Slakh stem that counts for a configured instrument."""

    stem_id: str
    audio: Path | None
    midi: Path
    program: int
    is_drum: bool


@dataclass
class TrackEntry:
    """One track: its mixture and, per configured instrument, the stems that make up that source."""

    track: str
    split: str
    directory: Path
    mixture: Path
    sources: dict[str, list[Stem]] = field(default_factory=dict)
    has_sources: bool = False

    @property
    def instruments(self) -> list[str]:
        """Configured instruments with at least one stem in this track."""
        return [name for name, stems in self.sources.items() if stems]


@cache
def known_issues() -> dict[tuple[str, str], str]:
    """The shipped list of known-bad Slakh stems: ``{(track, stem): reason}``."""
    text = resources.files("scoresep.data").joinpath("slakh_known_issues.yaml").read_text()
    return {(row["track"], row["stem"]): row["reason"] for row in yaml.safe_load(text)}


def _find_file(directory: Path, stem_id: str, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        candidate = directory / f"{stem_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _subdir(track_dir: Path, metadata: dict, key: str, default: str) -> Path:
    """``audio_dir``/``midi_dir`` when it is a relative folder inside the track (one Slakh track has an
    absolute path of the generation machine there), else the Slakh default."""
    value = metadata.get(key)
    if isinstance(value, str) and value and not os.path.isabs(value) and (track_dir / value).is_dir():
        return track_dir / value
    return track_dir / default


def yaml_problem(error: Exception) -> str:
    """One line for a YAML error (PyYAML's message spans several lines with a drawing of the place)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(error).split())


def read_metadata(track_dir: Path) -> dict:
    """Parse ``metadata.yaml`` of a track; raises DatasetError naming the file when missing or invalid."""
    path = track_dir / "metadata.yaml"
    if not path.is_file():
        raise DatasetError(f"{path}: metadata.yaml is missing (every Slakh track folder has one)")
    try:
        metadata = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot parse metadata.yaml ({yaml_problem(error)})") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("stems"), dict):
        raise DatasetError(f"{path}: metadata.yaml has no 'stems' mapping")
    return metadata


def index_track(
    track_dir: Path, split: str, instruments: tuple[str, ...], problems: list[IndexProblem]
) -> TrackEntry | None:
    """Index one track folder; returns None (and appends to ``problems``) when it cannot be used."""
    try:
        metadata = read_metadata(track_dir)
    except DatasetError as error:
        problems.append(IndexProblem(track_dir / "metadata.yaml", str(error).split(": ", 1)[1]))
        return None
    mixture = _find_file(track_dir, "mix", AUDIO_SUFFIXES)
    if mixture is None:
        problems.append(IndexProblem(track_dir / "mix.flac", "mixture audio (mix.flac or mix.wav) is missing"))
        return None
    audio_dir = _subdir(track_dir, metadata, "audio_dir", "stems")
    midi_dir = _subdir(track_dir, metadata, "midi_dir", "MIDI")
    stems_meta = metadata["stems"]
    audio_files = {sid: _find_file(audio_dir, sid, AUDIO_SUFFIXES) for sid in stems_meta}
    score_only = not any(audio_files.values())
    entry = TrackEntry(track_dir.name, split, track_dir, mixture, {name: [] for name in instruments})
    complete_sources = True
    for stem_id, stem_meta in sorted(stems_meta.items()):
        stem_meta = stem_meta or {}
        is_drum = bool(stem_meta.get("is_drum", False))
        program = stem_meta.get("program_num")
        name = instrument_of(stem_meta.get("inst_class"), program, is_drum)
        audio, midi = audio_files[stem_id], _find_file(midi_dir, stem_id, (".mid", ".midi"))
        # The list names stems of the real Slakh2100; a track that scoresep rendered (synth) or packed (pack) only
        # shares its folder name.
        rendered_here = any(str(metadata.get(key, "")).startswith("scoresep ") for key in ("synthesizer", "created_by"))
        reason = None if rendered_here else known_issues().get((track_dir.name, stem_id))
        if reason is not None:
            if name in instruments:
                problems.append(IndexProblem(audio_dir / stem_id, f"known-bad Slakh stem ({name}): {reason} "
                                             "(its labels would be wrong)"))
                return None
            log.info("%s: skipping known-bad Slakh stem %s (%s)", track_dir, stem_id, reason)
            continue
        if name not in instruments:
            continue  # drums and other instruments stay in the mixture as background
        if not score_only and audio is None:
            if stem_meta.get("audio_rendered", False) and midi is not None:
                problems.append(IndexProblem(audio_dir / f"{stem_id}.flac", f"stem {stem_id} ({name}) is listed "
                                             "as rendered in metadata.yaml but missing on disk", "left out"))
            continue
        if midi is None:
            if score_only:
                continue
            problems.append(IndexProblem(midi_dir / f"{stem_id}.mid", f"stem {stem_id} ({name}) has audio but "
                                         "its MIDI file is missing: the score would be incomplete"))
            return None
        entry.sources[name].append(Stem(stem_id, audio, midi, int(program or 0), is_drum))
        complete_sources &= audio is not None
    entry.has_sources = not score_only and complete_sources
    return entry


def track_folders(root: Path) -> list[tuple[str, Path]]:
    """``(split, folder)`` of every track: split folders when present, else a flat layout (BabySlakh)."""
    split_dirs = [(split, root / split) for split in SPLITS if (root / split).is_dir()]
    if split_dirs:
        return [(split, d) for split, folder in split_dirs for d in sorted(folder.iterdir())
                if d.is_dir() and _TRACK_NAME.match(d.name)]
    flat = sorted(d for d in root.iterdir() if d.is_dir() and _TRACK_NAME.match(d.name))
    # No split folders: a seeded 70/15/15 assignment, stable for a given set of track names.
    splits = assign_splits(len(flat), seed=0)
    return list(zip(splits, flat, strict=True))


def missing_split(root: str | os.PathLike, split: str, problems: list[str] | tuple[str, ...] = ()) -> str:
    """Why the dataset at ``root`` has no usable ``split`` track, naming the folder: no ``split/`` folder beside
    the others, a ``split/`` folder without track folders, or track folders that were all skipped (the first of
    ``problems``, the index's ``PATH: REASON`` lines, whose paths are resolved, says why). Every message says
    there are "no '<split>' tracks with usable audio"."""
    root = Path(root)
    folder = root / split
    if not any((root / name).is_dir() for name in SPLITS):
        tracks = [d for d in root.iterdir() if d.is_dir() and _TRACK_NAME.match(d.name)] if root.is_dir() else []
        skipped = [problem for problem in problems if problem.startswith(f"{root.resolve()}{os.sep}")]
        reason = (f"its {len(tracks)} TrackNNNNN folders have no train/validation/test folders, and such a flat "
                  f"layout gets {split} tracks only from 3 tracks on" if len(tracks) < 3 else
                  f"the {split} tracks of its {len(tracks)} TrackNNNNN folders (split by seed) were skipped"
                  + (f" (the first: {skipped[0]})" if skipped else ""))
        return f"{root}: no '{split}' tracks with usable audio: {reason}; add a {split}/ folder of TrackNNNNN folders"
    if not folder.is_dir():
        present = ", ".join(f"{name}/" for name in SPLITS if (root / name).is_dir())
        return (f"{folder}: no such folder ({root} has {present}), so no '{split}' tracks with usable audio; add a "
                f"{split}/ folder of TrackNNNNN folders (a few tracks moved from train/ will do)")
    tracks = [d for d in folder.iterdir() if d.is_dir() and _TRACK_NAME.match(d.name)]
    if not tracks:
        return (f"{folder}: the folder holds no TrackNNNNN track folders, so no '{split}' tracks with usable audio; "
                "put at least one track in it")
    skipped = [problem for problem in problems if problem.startswith(f"{folder.resolve()}{os.sep}")]
    first = f" (the first: {skipped[0]})" if skipped else ""
    return (f"{folder}: no '{split}' tracks with usable audio: all {len(tracks)} of its track folders were "
            f"skipped{first}; fix them (`scoresep prepare --strict` stops at the first problem) or add tracks")


def scan(
    root: str | os.PathLike, instruments: tuple[str, ...] | list[str], strict: bool = False
) -> tuple[list[TrackEntry], list[IndexProblem]]:
    """Index every track under ``root`` for the configured instruments.

    Returns ``(tracks, problems)``. Tracks with none of the instruments are kept (they are valid
    mixtures) but a dataset where no track has any of them raises DatasetError. With ``strict`` the first
    problem raises DatasetError (its message ends "stopped (--strict)") instead of being logged.
    """
    root = Path(root)
    instruments = check_instruments(instruments)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (make one with `scoresep synth --out {root}`)")
    folders = track_folders(root)
    if not folders:
        raise DatasetError(f"{root}: no TrackNNNNN folders found (expected {{train,validation,test}}/TrackNNNNN)")
    tracks, problems = [], []
    for split, folder in folders:
        before = len(problems)
        entry = index_track(folder, split, instruments, problems)
        if strict and len(problems) > before:
            raise DatasetError(problems[before].stopped())
        if entry is not None:
            tracks.append(entry)
    for problem in problems:
        log.warning("%s", problem)
    if not any(entry.instruments for entry in tracks):
        raise DatasetError(f"{root}: no track contains any of the requested instruments {list(instruments)}")
    return tracks, problems
