"""``scoresep evaluate``: score one checkpoint on whole tracks of a split (not crops), chunked like inference, or
(``--score-masks``) the training-free score-informed separation that reads each track's score.

Separation: SI-SDR of each separated instrument against its true stem over the whole track, the input mixture's
SI-SDR and the improvement (SI-SDRi); stems that are silent for a whole track are left out (undefined).
Transcription (stage-1 and stage-3 checkpoints): frame-level counts on the mixture (``mix``) and on each
isolated stem (``iso``), summed over tracks before dividing, plus the wrong-channel rate on isolated stems.
The result is one JSON (format 1), written atomically; ``summary`` holds the table numbers and ``skipped``
names every track of the split that was not scored, with the reason (the dataset index left it out, or it has
no stems to sum), so that a table's track count can be checked from the file alone.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from scoresep.checkpoints import checkpoint_thresholds, load_separator, load_transcriptor, read_checkpoint
from scoresep.data.cache import load_index, prepare
from scoresep.data.dataset import CachedTrack
from scoresep.data.slakh import DatasetError, track_folders
from scoresep.features import FeatureSettings
from scoresep.fileio import atomic_write_text
from scoresep.inference.score_masks import STAGE2_HARMONICS, HarmonicSettings
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource
from scoresep.inference.transcription import Transcriber
from scoresep.losses import activity_target
from scoresep.metrics import frame_counts, scores_from_counts, si_sdr, wrong_channel_rate

FORMAT = 1


def _number(value: float) -> float | None:
    """JSON has no NaN: undefined values are null."""
    return None if value is None or not math.isfinite(value) else float(value)


def dropped_tracks(root: Path, split: str, indexed: set[str], problems: list[str]) -> list[dict]:
    """``{"track", "reason"}`` of every track folder of ``split`` under ``root`` that is not among the
    ``indexed`` names: the dataset index left it out (unreadable metadata, undecodable audio, missing MIDI).

    The reason is the index's own problem message(s) about files inside that track's folder (``path: reason``,
    the path under the resolved ``root`` as ``prepare`` records it), so the result file says why, not only the
    log."""
    dropped = []
    for track_split, directory in track_folders(root):
        if track_split != split or directory.name in indexed:
            continue
        prefix = f"{directory}{os.sep}"
        reasons = [problem for problem in problems if problem.startswith(prefix)]
        dropped.append({"track": directory.name, "reason": "; ".join(reasons) if reasons else
                        f"{directory}: not in the dataset index (no problem was recorded for it)"})
    return dropped


def _split_tracks(root: str | os.PathLike, cache_dir: str | os.PathLike, features, split: str,
                  workers: int | None) -> tuple[Path, list[dict], list[dict]]:
    """``(cache folder, index records of split, tracks of split the index left out with the reason)``."""
    folder = prepare(root, cache_dir, features.instruments, features.sample_rate, features.hop_length,
                     features.min_midi, features.max_midi, workers=workers, progress=False)
    index = load_index(folder)
    records = [r for r in index["tracks"] if r["split"] == split]
    dropped = dropped_tracks(Path(root).resolve(), split, {r["track"] for r in records}, index.get("problems", []))
    if not records:
        first = f"; {len(dropped)} left out, the first: {dropped[0]['reason']}" if dropped else ""
        raise DatasetError(f"{root}: no '{split}' tracks with usable audio (cache {folder}){first}")
    return folder, records, dropped


def separation_scores(separated: np.ndarray, sources: np.ndarray, mixture: np.ndarray,
                      instruments: tuple[str, ...]) -> dict[str, dict]:
    """Per-instrument ``{si_sdr, input_si_sdr, si_sdri}`` of one whole track (None where the stem is silent).

    Shape: separated, sources ``(instrument, time)``; mixture ``(time,)``.
    """
    estimate, reference = torch.from_numpy(separated).double(), torch.from_numpy(sources).double()
    separated_sdr = si_sdr(estimate, reference)
    input_sdr = si_sdr(torch.from_numpy(mixture).double().expand_as(reference), reference)
    scores = {}
    for index, name in enumerate(instruments):
        value, baseline = float(separated_sdr[index]), float(input_sdr[index])
        scores[name] = {"si_sdr": _number(value), "input_si_sdr": _number(baseline),
                        "si_sdri": _number(value - baseline)}
    return scores


def _counts_dict(counts: torch.Tensor, instruments: tuple[str, ...]) -> dict[str, list[int]]:
    return {name: [int(v) for v in counts[index]] for index, name in enumerate(instruments)}


def _target(rolls: np.ndarray, n_pitches: int) -> torch.Tensor:
    """The transcriptor's target: the rolls, or instrument activity per frame for a 1-row classifier (the
    target the stages train and validate it with, ``losses.activity_target``)."""
    target = torch.from_numpy(rolls)
    return activity_target(target[None])[0] if n_pitches == 1 else target


def transcription_counts(transcriber: Transcriber, mixture: np.ndarray, sources: np.ndarray | None,
                         rolls: np.ndarray) -> dict[str, dict]:
    """``{"mix": {instrument: [tp, fp, fn]}, "iso": {...}, "wrong_channel": {instrument: [wrong, notes]}}`` of
    one track (``iso`` and ``wrong_channel`` only with stems). rolls: bool ``(instrument, pitch, frame)``."""
    names, rate = transcriber.instruments, transcriber.sample_rate
    target = _target(rolls, transcriber.network.n_pitches)
    prediction = torch.from_numpy(transcriber.transcribe_source(ArraySource(mixture, rate)))
    result = {"mix": _counts_dict(frame_counts(prediction, target), names)}
    if sources is not None:
        own, wrong = [], []
        for index in range(len(names)):
            heard = torch.from_numpy(transcriber.transcribe_source(ArraySource(sources[index], rate)))
            own.append(heard[index])
            wrong.append(wrong_channel_rate(heard[None], target[index][None], index))
        result["iso"] = _counts_dict(frame_counts(torch.stack(own), target), names)
        result["wrong_channel"] = _counts_dict(torch.stack(wrong), names)
    return result


def summarise(tracks: list[dict], instruments: tuple[str, ...]) -> dict:
    """Table numbers: separation averaged over tracks per instrument (and over instruments: ``average``);
    transcription scores from counts summed over tracks."""
    summary: dict = {}
    if any("separation" in t for t in tracks):
        separation: dict = {}
        for name in instruments:
            rows = [t["separation"][name] for t in tracks
                    if "separation" in t and t["separation"][name]["si_sdr"] is not None]
            separation[name] = {key: _number(float(np.mean([r[key] for r in rows]))) if rows else None
                                for key in ("si_sdr", "input_si_sdr", "si_sdri")}
            separation[name]["tracks"] = len(rows)
        separation["average"] = {
            key: _number(float(np.mean(values))) if (values := [separation[n][key] for n in instruments
                                                                if separation[n][key] is not None]) else None
            for key in ("si_sdr", "input_si_sdr", "si_sdri")}
        summary["separation"] = separation
    if any("transcription" in t for t in tracks):
        transcription: dict = {}
        for kind in ("mix", "iso"):
            rows = [t["transcription"][kind] for t in tracks if kind in t.get("transcription", {})]
            if not rows:
                continue
            counts = torch.tensor([[sum(r[name][k] for r in rows) for k in range(3)] for name in instruments])
            scores = scores_from_counts(counts)
            transcription[kind] = {name: {metric: _number(float(scores[metric][index])) for metric in scores}
                                   for index, name in enumerate(instruments)}
            accuracies = [v["accuracy"] for v in transcription[kind].values() if v["accuracy"] is not None]
            transcription[kind]["average"] = {"accuracy": _number(float(np.mean(accuracies))) if accuracies
                                              else None}
        wrong = [t["transcription"]["wrong_channel"] for t in tracks if "wrong_channel" in t.get("transcription", {})]
        if wrong:
            transcription["wrong_channel"] = {}
            for name in instruments:
                heard, notes = sum(w[name][0] for w in wrong), sum(w[name][1] for w in wrong)
                transcription["wrong_channel"][name] = heard / notes if notes else None
        summary["transcription"] = transcription
    return summary


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                        cache_dir: str | os.PathLike = "data/cache", mixture: str = "instruments",
                        chunk_seconds: float = 30.0, threshold: float | None = None, device: str | None = None,
                        workers: int | None = None, progress: bool = True) -> dict:
    """Evaluate one stage checkpoint on the whole tracks of ``split``; returns the JSON-ready result.

    ``threshold`` None reads notes at the checkpoint's calibrated per-instrument thresholds (recorded in the
    result as ``threshold``, one per instrument)."""
    if mixture not in ("instruments", "full"):
        raise ValueError(f"mixture must be 'instruments' or 'full', got {mixture!r}")
    meta = read_checkpoint(checkpoint)["scoresep"]
    models = meta.get("models", {})
    separator = transcriber = None
    if "separator" in models:
        network, info = load_separator(checkpoint)
        separator = Separator(network, info["features"], chunk_seconds, device)
    if meta["stage"] in ("transcriptor", "adversarial"):
        network, info = load_transcriptor(checkpoint)
        transcriber = Transcriber(network, info["features"], checkpoint_thresholds(info, threshold), chunk_seconds,
                                  device=device)
    features = (separator or transcriber).features
    tracks, skipped, seconds = _evaluate_split(data, split, cache_dir, mixture, features, separator, transcriber,
                                               workers, progress)
    return {
        "format": FORMAT, "checkpoint": str(checkpoint), "stage": meta["stage"], "split": split, "data": str(data),
        "mixture": mixture, "instruments": list(features.instruments), "features": features.to_dict(),
        "threshold": transcriber.thresholds.tolist() if transcriber is not None else threshold,
        "seconds": seconds, "machine": platform.platform(),
        "skipped": sorted(skipped, key=lambda entry: entry["track"]), "tracks": tracks,
        "summary": summarise(tracks, features.instruments),
    }


def evaluate_score_masks(data: str | os.PathLike, split: str = "test", cache_dir: str | os.PathLike = "data/cache",
                         mixture: str = "instruments", chunk_seconds: float = 30.0,
                         features: FeatureSettings | None = None, harmonics: HarmonicSettings = STAGE2_HARMONICS,
                         device: str | None = None, workers: int | None = None, progress: bool = True) -> dict:
    """Evaluate training-free score-informed separation (``score_masks.py``: each instrument keeps its notes'
    harmonic bins, shared bins split equally) on the whole tracks of ``split``: a reference that reads the test
    score, which no trained row does. ``features`` default: the project's (``constants.py``)."""
    if mixture not in ("instruments", "full"):
        raise ValueError(f"mixture must be 'instruments' or 'full', got {mixture!r}")
    features = features or FeatureSettings.defaults()
    separator = Separator(None, features, chunk_seconds, device, harmonics)
    tracks, skipped, seconds = _evaluate_split(data, split, cache_dir, mixture, features, separator, None, workers,
                                               progress)
    if not any("separation" in track for track in tracks):
        raise DatasetError(f"{data}: no '{split}' track has stems to score the score masks against (score-only "
                           "data can be separated with `scoresep separate --score`, not scored)")
    return {
        "format": FORMAT, "checkpoint": None, "stage": "score_masks", "split": split, "data": str(data),
        "mixture": mixture, "instruments": list(features.instruments), "features": features.to_dict(),
        "harmonics": asdict(harmonics), "threshold": None, "seconds": seconds, "machine": platform.platform(),
        "skipped": sorted(skipped, key=lambda entry: entry["track"]), "tracks": tracks,
        "summary": summarise(tracks, features.instruments),
    }


def _evaluate_split(data, split: str, cache_dir, mixture: str, features: FeatureSettings,
                    separator: Separator | None, transcriber: Transcriber | None, workers: int | None,
                    progress: bool) -> tuple[list[dict], list[dict], float]:
    """``(per-track results, skipped tracks with the reason, seconds)`` of ``split``. A separator without a network
    separates each track with its score (the cached rolls)."""
    folder, records, skipped = _split_tracks(data, cache_dir, features, split, workers)
    instruments = features.instruments
    started, tracks = time.perf_counter(), []
    for number, record in enumerate(records, start=1):
        track = CachedTrack(folder / "tracks" / record["track"], record, features.n_pitches)
        sources = track.sources(0, track.n_samples) if track.has_sources else None
        if mixture == "instruments" and sources is None:
            skipped.append({"track": record["track"], "reason": "no stems to sum (mixture: instruments)"})
            continue
        mix = sources.sum(axis=0) if mixture == "instruments" else track.mixture(0, track.n_samples)
        rolls = track.rolls(0, 1 + len(mix) // features.hop_length)
        entry: dict = {"track": record["track"], "seconds": track.n_samples / features.sample_rate}
        if separator is not None and sources is not None:
            score = rolls if separator.network is None else None
            separated = separator.separate_source(ArraySource(mix, features.sample_rate), score=score)
            entry["separation"] = separation_scores(separated[: len(instruments)], sources, mix, instruments)
        if transcriber is not None:
            entry["transcription"] = transcription_counts(transcriber, mix, sources, rolls)
        tracks.append(entry)
        if progress:
            print(f"[evaluate {number}/{len(records)}] {record['track']} {time.perf_counter() - started:.1f} s",
                  flush=True)
    if not tracks:
        raise DatasetError(f"{data}: no '{split}' track could be evaluated ({skipped[0]['reason']})")
    return tracks, skipped, time.perf_counter() - started


def write_json(path: str | os.PathLike, result: dict) -> Path:
    """Write a result atomically (temp file + rename): a crash never leaves a half-written JSON."""
    text = json.dumps(result, indent=1, allow_nan=False)
    atomic_write_text(path, text)
    return Path(path)
