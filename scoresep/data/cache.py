"""``scoresep prepare``: decode and resample every track once into a memory-mappable cache.

Layout of one cache (a folder under ``cache_dir`` named after the dataset and a hash of the settings)::

    CACHE/index.json                      settings + one entry per usable track (lengths, activity)
    CACHE/tracks/TrackNNNNN/mixture.npy   (time,) int16
    CACHE/tracks/TrackNNNNN/sources.npy   (instrument, time) int16, only when the track has stems
    CACHE/tracks/TrackNNNNN/rolls.npy     (instrument, ceil(pitch / 8), frame) uint8, bits packed on pitch
    CACHE/tracks/TrackNNNNN/entry.json    this track's index entry, with the fingerprint of its inputs

Audio of one track shares one scale (``waveform = int16 * scale``) so that the sources still add up to the
mixture. The cache key covers the dataset path, instruments, sample rate, hop, pitch range and
``CACHE_VERSION``; a track's fingerprint covers its input files' paths, sizes and modification times, so
re-running skips unchanged tracks and rebuilds changed ones (and every track after a change of
``BUILD_RULES``). Every file is written to a temporary name and renamed, with the permissions the umask gives a
new file; ``entry.json`` is written last, so an interrupted track is simply redone.

A track is skipped, with a problem naming the file, when its audio cannot be decoded or is truncated, a MIDI
file does not parse, or a stem of a configured instrument sounds while its MIDI holds no notes (the score
would be incomplete: the stem's sound stays in the mixture while its labels say "absent"). A stem that is
silent too (peak below ``SILENT_PEAK_DBFS``) is fine: the instrument is absent from the track.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scoresep.constants import CACHE_VERSION, n_frames
from scoresep.data.audio import AudioError, load_audio
from scoresep.data.midi import MidiError, load_midi, midi_notes, piano_roll
from scoresep.data.slakh import DatasetError, IndexProblem, TrackEntry, scan
from scoresep.errors import SettingsError
from scoresep.fileio import atomic_write_bytes, atomic_write_text
from scoresep.instruments import check_instruments
from scoresep.processes import worker_pool

log = logging.getLogger(__name__)
INDEX_NAME = "index.json"
# Part of every track's fingerprint: bumped when the rules of what a track's build accepts change, so that
# tracks cached under older rules are built again (and refused if they now must be). 2: truncated WAV/AIFF/AU
# audio and stems that sound while their MIDI holds no notes are refused.
BUILD_RULES = 2
# A stem whose peak is below this is silent (-60 dBFS = 0.001 of full scale: FluidSynth's dither and the
# noise floor of a 16-bit render stay far below it, a played note far above).
SILENT_PEAK_DBFS = -60.0


@dataclass(frozen=True)
class CacheSettings:
    """Everything that changes the cached content; two caches with equal settings are interchangeable."""

    root: str
    instruments: tuple[str, ...]
    sample_rate: int
    hop_length: int
    min_midi: int
    max_midi: int
    version: int = CACHE_VERSION

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def folder_name(self) -> str:
        return f"{Path(self.root).name}-{self.sample_rate}hz-hop{self.hop_length}-{self.key()}"

    @property
    def n_pitches(self) -> int:
        return self.max_midi - self.min_midi + 1


def cache_path(cache_dir: str | os.PathLike, settings: CacheSettings) -> Path:
    """Folder of the cache for ``settings`` inside ``cache_dir``."""
    return Path(cache_dir) / settings.folder_name()


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, lambda stream: np.save(stream, array))


def _save_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def _fingerprint(entry: TrackEntry, settings: CacheSettings) -> str:
    files = [entry.mixture] + [p for stems in entry.sources.values() for s in stems for p in (s.audio, s.midi) if p]
    parts = [f"rules {BUILD_RULES}", json.dumps(asdict(settings), sort_keys=True), json.dumps(
        {name: [s.stem_id for s in stems] for name, stems in entry.sources.items()}, sort_keys=True)]
    for path in files:
        stat = path.stat()
        parts.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def pack_roll(roll: np.ndarray) -> np.ndarray:
    """Pack a bool roll ``(instrument, pitch, frame)`` to uint8 ``(instrument, ceil(pitch / 8), frame)``."""
    return np.packbits(roll, axis=1)


def unpack_roll(packed: np.ndarray, n_pitches: int) -> np.ndarray:
    """Inverse of :func:`pack_roll`: bool ``(instrument, pitch, frame)``."""
    return np.unpackbits(packed, axis=1, count=n_pitches).astype(bool)


def _fit_length(waveform: np.ndarray, n_samples: int) -> np.ndarray:
    if waveform.size >= n_samples:
        return waveform[:n_samples]
    return np.pad(waveform, (0, n_samples - waveform.size))


def peak_dbfs(waveform: np.ndarray) -> float:
    """Peak level of a float waveform in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


class IncompleteScore(DatasetError):
    """A stem sounds but its MIDI file holds no notes; ``path`` is the MIDI file, ``reason`` says why."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason

    def __reduce__(self):  # rebuilt from both fields when it crosses a process boundary
        return type(self), (self.path, self.reason)


def build_track(entry: TrackEntry, settings: CacheSettings, out_dir: Path) -> dict:
    """Decode, resample and write one track; returns its index entry.

    Raises AudioError/MidiError for a file that cannot be read, IncompleteScore for a stem that is not silent
    (peak at or above ``SILENT_PEAK_DBFS``) while its MIDI holds no notes.
    """
    mixture = load_audio(entry.mixture, settings.sample_rate)
    n_samples = mixture.size
    if n_samples == 0:
        raise AudioError(f"{entry.mixture}: mixture has no samples")
    frames = n_frames(n_samples, settings.hop_length)
    frame_rate = settings.sample_rate / settings.hop_length
    rolls = np.zeros((len(settings.instruments), settings.n_pitches, frames), dtype=bool)
    sources = np.zeros((len(settings.instruments), n_samples), dtype=np.float32) if entry.has_sources else None
    for row, name in enumerate(settings.instruments):
        for stem in entry.sources.get(name, []):
            notes = midi_notes(load_midi(stem.midi))
            rolls[row] |= piano_roll(notes, frames, frame_rate, settings.min_midi, settings.max_midi)
            needed = stem.audio is not None and (sources is not None or notes.size == 0)
            audio = load_audio(stem.audio, settings.sample_rate) if needed else None
            if audio is not None and notes.size == 0 and peak_dbfs(audio) >= SILENT_PEAK_DBFS:
                raise IncompleteScore(stem.midi, f"MIDI holds no notes but its stem {stem.audio} is not silent "
                                      f"(peak {peak_dbfs(audio):.1f} dBFS): the score would be incomplete")
            if sources is not None:
                sources[row] += _fit_length(audio, n_samples)
    if not rolls.any():
        raise IncompleteScore(entry.directory, f"no note of {', '.join(settings.instruments)} in the pitch range MIDI "
                              f"{settings.min_midi}..{settings.max_midi}: the track has no active instrument")
    peak = float(np.abs(mixture).max())
    if sources is not None:
        peak = max(peak, float(np.abs(sources).max()))
    scale = peak / 32767 if peak > 0 else 1.0 / 32767
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_npy(out_dir / "mixture.npy", np.round(mixture / scale).astype(np.int16))
    if sources is not None:
        _save_npy(out_dir / "sources.npy", np.round(sources / scale).astype(np.int16))
    _save_npy(out_dir / "rolls.npy", pack_roll(rolls))
    active_frames = rolls.any(axis=1).sum(axis=1)
    return {
        "track": entry.track,
        "split": entry.split,
        "source_dir": str(entry.directory),
        "n_samples": int(n_samples),
        "n_frames": int(frames),
        "scale": scale,
        "has_sources": bool(entry.has_sources),
        "active": {name: bool(count > 0) for name, count in zip(settings.instruments, active_frames, strict=True)},
        "active_frames": {name: int(c) for name, c in zip(settings.instruments, active_frames, strict=True)},
        "stems": {name: [s.stem_id for s in stems] for name, stems in entry.sources.items()},
    }


def _work(job: tuple[TrackEntry, CacheSettings, Path, str]) -> tuple[dict | None, IndexProblem | None]:
    entry, settings, out_dir, fingerprint = job
    try:
        record = build_track(entry, settings, out_dir)
    except IncompleteScore as error:
        return None, IndexProblem(error.path, error.reason, f"track {entry.track} skipped")
    except (AudioError, MidiError) as error:
        path, _, reason = str(error).partition(": ")
        return None, IndexProblem(Path(path), reason, f"track {entry.track} skipped")
    record["fingerprint"] = fingerprint
    _save_json(out_dir / "entry.json", record)
    return record, None


def _load_entry(out_dir: Path, fingerprint: str) -> dict | None:
    """A track's cached entry when it is complete and was built from the same inputs."""
    try:
        record = json.loads((out_dir / "entry.json").read_text())
    except (OSError, ValueError):
        return None
    needed = ["mixture.npy", "rolls.npy"] + (["sources.npy"] if record.get("has_sources") else [])
    if record.get("fingerprint") != fingerprint or not all((out_dir / name).is_file() for name in needed):
        return None
    return record


def prepare(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    instruments: tuple[str, ...] | list[str],
    sample_rate: int,
    hop_length: int,
    min_midi: int,
    max_midi: int,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
) -> Path:
    """Build (or bring up to date) the cache of ``root``; returns the cache folder.

    Tracks that cannot be used are skipped with a warning naming the file; ``strict`` raises DatasetError at
    the first problem instead (its message ends "stopped (--strict)"), before the index is written.
    """
    root = Path(root).resolve()
    settings = CacheSettings(str(root), check_instruments(instruments), sample_rate, hop_length, min_midi, max_midi)
    if not 0 <= min_midi <= max_midi <= 127:
        raise SettingsError(f"pitch range: need 0 <= min_midi <= max_midi <= 127, got {min_midi}..{max_midi}")
    out = cache_path(cache_dir, settings)
    entries, problems = scan(root, settings.instruments, strict=strict)
    records: dict[str, dict] = {}
    jobs = []
    for entry in entries:
        fingerprint = _fingerprint(entry, settings)
        track_dir = out / "tracks" / entry.track
        record = _load_entry(track_dir, fingerprint)
        if record is not None:
            records[entry.track] = record
        else:
            jobs.append((entry, settings, track_dir, fingerprint))
    started = time.perf_counter()
    if progress:
        print(f"[prepare] {root} -> {out}: {len(records)} tracks cached, {len(jobs)} to build",
              file=sys.stderr, flush=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers > 1:
        with worker_pool(workers) as pool:
            results = _collect(_with_progress(pool.imap_unordered(_work, jobs), len(jobs), progress, started), strict)
    else:
        results = _collect(_with_progress(map(_work, jobs), len(jobs), progress, started), strict)
    new_problems = [problem for _, problem in results if problem is not None]
    for problem in new_problems:
        log.warning("%s", problem)
    records.update({record["track"]: record for record, _ in results if record is not None})
    if not records:
        raise DatasetError(f"{root}: no usable track (problems: {[str(p) for p in problems + new_problems]})")
    index = {
        "settings": asdict(settings),
        "problems": [str(p) for p in problems + new_problems],
        "tracks": [records[name] for name in sorted(records)],
    }
    _save_json(out / INDEX_NAME, index)
    if progress:
        print(f"[prepare] done: {len(records)} tracks, {len(problems) + len(new_problems)} problems, "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return out


def _collect(results, strict: bool) -> list[tuple[dict | None, IndexProblem | None]]:
    """All results of the track builds; with ``strict`` the first problem raises DatasetError at once (the
    pool is closed on the way out), saying that the run stopped rather than that the track was skipped."""
    collected = []
    for record, problem in results:
        if strict and problem is not None:
            raise DatasetError(problem.stopped())
        collected.append((record, problem))
    return collected


def _with_progress(results, total: int, enabled: bool, started: float):
    for done, result in enumerate(results, start=1):
        if enabled and (done == total or done % max(1, total // 20) == 0):
            print(f"[prepare {done:>5}/{total}] {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        yield result


def load_index(cache: str | os.PathLike, expected: CacheSettings | None = None) -> dict:
    """Read a cache's ``index.json``; refuses a cache built with other settings (names both values)."""
    path = Path(cache) / INDEX_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: cache index not found (run `scoresep prepare`)")
    index = json.loads(path.read_text())
    if expected is not None:
        found = index.get("settings", {})
        for key, value in asdict(expected).items():
            have = found.get(key)
            have = tuple(have) if isinstance(have, list) else have
            if have != value:
                raise DatasetError(f"{path}: cache was built with {key}={have!r} but the configuration asks for "
                                   f"{key}={value!r}; it will not be mixed (delete it or prepare a new cache)")
    return index
