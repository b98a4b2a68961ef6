"""The dataset driver: ``synthesise`` resolves the soundfonts, assigns splits, turns each track into a ``_Job``
(compose or load its song, render and write it) and runs the jobs in a spawn worker pool or in this process,
printing progress.

``_run_job`` is what the worker pool pickles, by its module path (``scoresep.data.synth.driver._run_job``), so it
stays a module-level function here. Each job draws only from (seed, track index), so the dataset does not depend
on the number of workers or the order the jobs finish in.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scoresep.data.splits import assign_splits
from scoresep.data.synth.compose import compose_song
from scoresep.data.synth.layout import write_track
from scoresep.data.synth.song import song_from_midi
from scoresep.data.synth.soundfonts import _as_specs, resolve_soundfonts
from scoresep.errors import SettingsError
from scoresep.fileio import OutputExistsError, output_lock
from scoresep.processes import worker_pool

log = logging.getLogger(__name__)


@dataclass
class _Job:
    index: int
    track_dir: Path
    seed: int
    seconds: float | None
    sample_rate: int
    soundfont: Path
    midi_path: Path | None
    held_out: bool = False


def _run_job(job: _Job) -> dict:
    if job.midi_path is None:
        song = compose_song(job.seed, job.index, job.seconds)
    else:
        song = song_from_midi(job.midi_path, job.seconds, job.seed, job.index)
    return write_track(job.track_dir, song, job.sample_rate, job.soundfont, job.held_out)


def synthesise(
    out: str | os.PathLike,
    tracks: int = 48,
    seconds: float | None = 30.0,
    seed: int = 0,
    sample_rate: int = 16_000,
    soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    midi_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    *,
    soundfonts: Sequence[str | os.PathLike] | None = None,
    test_soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> list[dict]:
    """Write a mini-Slakh under ``out``; returns one summary per track.

    With ``midi_dir`` the ``*.mid``/``*.midi`` files found there (recursively, sorted) are rendered instead
    of composed music; ``tracks`` then caps their number and ``seconds`` (None: whole files) their length.

    Timbre variety: ``soundfont`` (one spec or several, as ``--soundfont`` gives them) and ``soundfonts`` are
    pooled (specs: see ``resolve_soundfonts``; none: TimGM6mb) and each track draws one from (seed, track index),
    so the same arguments give the same dataset. ``test_soundfont``: the test split is rendered only with it (or
    them) and train/validation never are, to measure how far learnt timbre carries over. Every soundfont is
    checked before the first track is rendered.

    ``out`` must not exist yet or be empty: a render into an earlier dataset would replace some of its tracks and
    leave the others, a mix of two datasets (OutputExistsError naming what is there). A second render into the
    same folder at the same time is refused (``fileio.output_lock``).
    """
    out = Path(out)
    _refuse_dataset_there(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        _refuse_dataset_there(out)  # again: another render may have started and ended since
        return _synthesise(out, tracks, seconds, seed, sample_rate, soundfont, midi_dir, workers, progress,
                           soundfonts, test_soundfont)


def _refuse_dataset_there(out: Path) -> None:
    if os.path.lexists(out) and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out is an existing file, not a folder")
    if out.is_dir() and (held := sorted(child.name for child in out.iterdir())):
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise OutputExistsError(f"{out}: is not empty (it holds {shown}); synth writes a new dataset and never mixes "
                                "it into another: give another --out, or remove this folder first")


def _synthesise(out: Path, tracks: int, seconds: float | None, seed: int, sample_rate: int, soundfont, midi_dir,
                workers: int | None, progress: bool, soundfonts, test_soundfont) -> list[dict]:
    """``synthesise`` once it holds ``out``."""
    plan = resolve_soundfonts([*_as_specs(soundfont), *_as_specs(soundfonts)], test_soundfont)
    if midi_dir is not None:
        midi_files = sorted(p for p in Path(midi_dir).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        if not midi_files:
            raise FileNotFoundError(f"{midi_dir}: no .mid/.midi files found")
        midi_files = midi_files[:tracks] if tracks else midi_files
        n_tracks = len(midi_files)
    else:
        if seconds is None or seconds <= 0:
            raise SettingsError("seconds must be positive for composed tracks")
        midi_files, n_tracks = [], tracks
    splits = assign_splits(n_tracks, seed)
    if plan.test and "test" not in splits:
        log.warning("%d tracks give no test split: the held-out test soundfont is not used", n_tracks)
    jobs = [
        _Job(i, out / splits[i] / f"Track{i + 1:05d}", seed, seconds, sample_rate,
             plan.pick(seed, i, splits[i]), midi_files[i] if midi_files else None,
             held_out=bool(plan.test) and splits[i] == "test")
        for i in range(n_tracks)
    ]
    workers = workers or min(os.cpu_count() or 1, n_tracks)
    started = time.perf_counter()
    summaries = []
    if workers > 1:
        with worker_pool(workers) as pool:
            results = pool.imap_unordered(_run_job, jobs)
            for done, summary in enumerate(results, start=1):
                summaries.append(summary)
                _progress(progress, done, n_tracks, summary, started)
    else:
        for done, job in enumerate(jobs, start=1):
            summaries.append(_run_job(job))
            _progress(progress, done, n_tracks, summaries[-1], started)
    return sorted(summaries, key=lambda s: s["track"])


def _progress(enabled: bool, done: int, total: int, summary: dict, started: float) -> None:
    if enabled:
        elapsed = time.perf_counter() - started
        print(f"[synth {done:>4}/{total}] {summary['track']}: {summary['stems']} stems, "
              f"{summary['seconds']:.1f} s, {summary['soundfont']}  ({elapsed:.1f} s elapsed)",
              file=sys.stderr, flush=True)
