"""``scoresep evaluate``: score one checkpoint on whole tracks of a split (not crops), chunked like inference, or
(``--score-masks``) the training-free score-informed separation that reads each track's score.

Separation: SI-SDR of each separated instrument against its true stem over the whole track, the input mixture's
SI-SDR and the improvement (SI-SDRi); stems that are silent for a whole track are left out (undefined).
Transcription (stage-1 and stage-3 checkpoints): frame-level counts on the mixture (``mix``) and on each
isolated stem (``iso``), summed over tracks before dividing, plus the wrong-channel rate on isolated stems.
The result is one JSON (format 1), written atomically; ``reads_score`` says whether the separation read the
test tracks' scores (``--score-masks``, ``--score``, or a separator that reads the score: true; a checkpoint
that hears only the audio: false), so that a table never
ranks the two kinds side by side unmarked; ``summary`` holds the table numbers and ``skipped``
names every track of the split that was not scored, with the reason (the dataset index left it out, or it has
no stems to sum), so that a table's track count can be checked from the file alone.
"""

from __future__ import annotations

import math
import os
import platform
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from scoresep.checkpoints import StageCheckpoint, checkpoint_thresholds
from scoresep.constants import LEARNED_WEIGHT
from scoresep.data.cache import load_index, prepare
from scoresep.data.dataset import CachedTrack
from scoresep.data.slakh import DatasetError, track_folders
from scoresep.errors import SettingsError
from scoresep.evaluation.accumulators import SeparationEvaluation, TranscriptionEvaluation
from scoresep.evaluation.result_file import FORMAT
from scoresep.features import FeatureSettings
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource
from scoresep.inference.transcription import Transcriber
from scoresep.score import (
    STAGE2_HARMONICS,
    HarmonicSettings,
    ScorePerturbation,
    activity_target,
    perturb_rolls,
)


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
    """Per-instrument ``{si_sdr, input_si_sdr, si_sdri}`` of one whole track (None where the stem is silent),
    scored by the stages' own accumulator (``SeparationEvaluation.scores``, in fp64).

    Shape: separated, sources ``(instrument, time)``; mixture ``(time,)``.
    """
    separated_sdr, input_sdr = SeparationEvaluation.scores(torch.from_numpy(separated).double()[None],
                                                           torch.from_numpy(sources).double()[None],
                                                           torch.from_numpy(mixture).double()[None])
    scores = {}
    for index, name in enumerate(instruments):
        value, baseline = float(separated_sdr[0, index]), float(input_sdr[0, index])
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


def _frame_accumulator(features: FeatureSettings) -> TranscriptionEvaluation:
    """The stages' transcription accumulator, for frame counts only (whole tracks are scored frame-wise)."""
    return TranscriptionEvaluation(features, notes=False, thresholds=0.5, onset_tolerance=0.0)


def transcription_counts(transcriber: Transcriber, mixture: np.ndarray, sources: np.ndarray | None,
                         rolls: np.ndarray) -> dict[str, dict]:
    """``{"mix": {instrument: [tp, fp, fn]}, "iso": {...}, "wrong_channel": {instrument: [wrong, notes]}}`` of
    one track (``iso`` and ``wrong_channel`` only with stems), counted by the stages' accumulator.
    rolls: bool ``(instrument, pitch, frame)``."""
    names, rate = transcriber.instruments, transcriber.sample_rate
    target = _target(rolls, transcriber.network.n_pitches)
    counts = _frame_accumulator(transcriber.features)
    prediction = torch.from_numpy(transcriber.transcribe_source(ArraySource(mixture, rate)))
    counts.add("mix", prediction[None], target[None])
    result = {"mix": _counts_dict(counts.counts["mix"], names)}
    if sources is not None:
        own = []
        for index in range(len(names)):
            heard = torch.from_numpy(transcriber.transcribe_source(ArraySource(sources[index], rate)))
            own.append(heard[index])
            counts.add_wrong_channel(index, heard[None], target[index][None])
        counts.add("iso", torch.stack(own)[None], target[None])
        result["iso"] = _counts_dict(counts.counts["iso"], names)
        result["wrong_channel"] = _counts_dict(counts.wrong, names)
    return result


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def summarise(tracks: list[dict], instruments: tuple[str, ...]) -> dict:
    """Table numbers, from the stages' accumulators fed with the tracks' results: separation averaged over tracks
    per instrument (and over instruments: ``average``); transcription scores from counts summed over tracks."""
    summary: dict = {}
    keys = ("si_sdr", "input_si_sdr", "si_sdri")
    separated = [t["separation"] for t in tracks if "separation" in t]
    if separated:
        separation = SeparationEvaluation(instruments)
        for scores in separated:
            values = [[math.nan if scores[name][key] is None else scores[name][key] for name in instruments]
                      for key in ("si_sdr", "input_si_sdr")]
            separation.add(torch.tensor(values[0], dtype=torch.float64)[None],
                           torch.tensor(values[1], dtype=torch.float64)[None])
        results = separation.results("s", _identity)
        summary["separation"] = {name: {**{key: _number(results.get(f"s/{key}/{name}")) for key in keys},
                                        "tracks": int(separation.sums[index, 2])}
                                 for index, name in enumerate(instruments)}
        summary["separation"]["average"] = {key: _number(results.get(f"s/{key}")) for key in keys}
    counted = [t["transcription"] for t in tracks if "transcription" in t]
    if counted:
        frames = _frame_accumulator(FeatureSettings.defaults(instruments))
        for counts in counted:
            for kind in ("mix", "iso"):
                if kind in counts:
                    frames.counts[kind] += torch.tensor([counts[kind][name] for name in instruments])
            if "wrong_channel" in counts:
                frames.wrong += torch.tensor([counts["wrong_channel"][name] for name in instruments])
        results = frames.results("t", _identity)
        transcription: dict = {}
        for kind in ("mix", "iso"):
            if not any(kind in counts for counts in counted):
                continue
            transcription[kind] = {name: {metric: _number(results.get(f"t/{kind}/{metric}/{name}"))
                                          for metric in ("precision", "recall", "f1", "accuracy")}
                                   for name in instruments}
            transcription[kind]["average"] = {"accuracy": _number(results.get(f"t/{kind}/accuracy"))}
        if any("wrong_channel" in counts for counts in counted):
            transcription["wrong_channel"] = {name: results.get(f"t/iso/wrong_channel/{name}")
                                              for name in instruments}
        summary["transcription"] = transcription
    return summary


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                        cache_dir: str | os.PathLike = "data/cache", mixture: str = "instruments",
                        chunk_seconds: float = 30.0, threshold: float | None = None, device: str | None = None,
                        workers: int | None = None, progress: bool = True, score: bool = False,
                        perturbation: ScorePerturbation | None = None,
                        learned_weight: float | None = None) -> dict:
    """Evaluate one stage checkpoint on the whole tracks of ``split``; returns the JSON-ready result.

    ``score``: separate each track with its score (the cached rolls), as ``separate --score`` does. A separator
    that reads the score (``ScoreInformedSeparator``) always does; the result's ``reads_score`` says which.
    ``perturbation``: the errors of a real score, applied to each test score the separator reads (seeded per
    track, so every checkpoint and the score masks read the same perturbed scores); recorded in the result.
    ``learned_weight``: with ``score`` and a separator that hears only the audio, the weight of its split of the
    bins several instruments cover (``score.combined_masks``; None: ``LEARNED_WEIGHT``); recorded in the result.

    ``threshold`` None reads notes at the checkpoint's calibrated per-instrument thresholds (recorded in the
    result as ``threshold``, one per instrument)."""
    if mixture not in ("instruments", "full"):
        raise SettingsError(f"mixture must be 'instruments' or 'full', got {mixture!r}")
    source = StageCheckpoint.read(checkpoint)
    separator = transcriber = None
    if source.holds("separator"):
        network, info = source.separator()
        separator = Separator(network, info["features"], chunk_seconds, device,
                              HarmonicSettings(**info.get("harmonics", {})),
                              learned_weight=LEARNED_WEIGHT if learned_weight is None else learned_weight)
    if source.holds("transcriptor"):  # a trained one (stages 1 and 3), not stage 2's frozen critic
        network, info = source.transcriptor()
        transcriber = Transcriber(network, info["features"], checkpoint_thresholds(info, threshold), chunk_seconds,
                                  device=device)
    features = (separator or transcriber).features
    reads_score = separator is not None and (score or separator.network.reads_score)
    if score and separator is None:
        raise SettingsError(f"{checkpoint}: --score separates with the score, but this {source.stage} checkpoint "
                            "holds no separator")
    combines = score and separator is not None and not separator.network.reads_score
    if learned_weight is not None and not combines:
        raise SettingsError(f"{checkpoint}: learned_weight weighs an audio-only separator's masks against the "
                            "score's; it needs --score and a checkpoint whose separator hears only the audio")
    if perturbation is not None and not reads_score:
        raise SettingsError("a score perturbation applies to the score a separation reads: give --score, or a "
                            "checkpoint whose separator reads the score")
    tracks, skipped, seconds = _evaluate_split(data, split, cache_dir, mixture, features, separator, transcriber,
                                               workers, progress, reads_score, perturbation)
    if not any("separation" in track or "transcription" in track for track in tracks):
        raise DatasetError(f"{data}: nothing to score on the '{split}' split: no track has stems to score the "
                           f"separation against, and a {source.stage} checkpoint transcribes nothing (score-only "
                           "data can be separated with `scoresep separate`, not scored)")
    return {
        "format": FORMAT, "checkpoint": str(checkpoint), "stage": source.stage, "reads_score": reads_score,
        **({"learned_weight": separator.learned_weight} if combines else {}),
        **_perturbation_entry(perturbation),
        "split": split, "data": str(data),
        "mixture": mixture, "instruments": list(features.instruments), "features": features.to_dict(),
        "threshold": transcriber.thresholds.tolist() if transcriber is not None else threshold,
        "seconds": seconds, "machine": platform.platform(),
        "skipped": sorted(skipped, key=lambda entry: entry["track"]), "tracks": tracks,
        "summary": summarise(tracks, features.instruments),
    }


def evaluate_score_masks(data: str | os.PathLike, split: str = "test", cache_dir: str | os.PathLike = "data/cache",
                         mixture: str = "instruments", chunk_seconds: float = 30.0,
                         features: FeatureSettings | None = None, harmonics: HarmonicSettings = STAGE2_HARMONICS,
                         device: str | None = None, workers: int | None = None, progress: bool = True,
                         perturbation: ScorePerturbation | None = None) -> dict:
    """Evaluate training-free score-informed separation (``score_masks.py``: each instrument keeps its notes'
    harmonic bins, shared bins split equally) on the whole tracks of ``split``: a reference that reads the test
    score, which no trained row does. ``features`` default: the project's (``constants.py``)."""
    if mixture not in ("instruments", "full"):
        raise SettingsError(f"mixture must be 'instruments' or 'full', got {mixture!r}")
    features = features or FeatureSettings.defaults()
    separator = Separator.from_score(features, chunk_seconds, device, harmonics)
    tracks, skipped, seconds = _evaluate_split(data, split, cache_dir, mixture, features, separator, None, workers,
                                               progress, True, perturbation)
    if not any("separation" in track for track in tracks):
        raise DatasetError(f"{data}: no '{split}' track has stems to score the score masks against (score-only "
                           "data can be separated with `scoresep separate --score`, not scored)")
    return {
        "format": FORMAT, "checkpoint": None, "stage": "score_masks", "reads_score": True,
        **_perturbation_entry(perturbation), "split": split,
        "data": str(data),
        "mixture": mixture, "instruments": list(features.instruments), "features": features.to_dict(),
        "harmonics": asdict(harmonics), "threshold": None, "seconds": seconds, "machine": platform.platform(),
        "skipped": sorted(skipped, key=lambda entry: entry["track"]), "tracks": tracks,
        "summary": summarise(tracks, features.instruments),
    }


def _perturbation_entry(perturbation: ScorePerturbation | None) -> dict:
    """``{"score_perturbation": {...}}`` for a perturbed evaluation, else nothing (the file keeps its keys)."""
    return {"score_perturbation": asdict(perturbation)} if perturbation is not None else {}


def _evaluate_split(data, split: str, cache_dir, mixture: str, features: FeatureSettings,
                    separator: Separator | None, transcriber: Transcriber | None, workers: int | None,
                    progress: bool, with_score: bool, perturbation: ScorePerturbation | None = None
                    ) -> tuple[list[dict], list[dict], float]:
    """``(per-track results, skipped tracks with the reason, seconds)`` of ``split``. ``with_score``: the
    separator separates each track with its score (the cached rolls)."""
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
            score = rolls if with_score else None
            if score is not None and perturbation is not None:
                score = perturb_rolls(rolls, perturbation, features.frame_rate,
                                      np.random.default_rng(zlib.crc32(record["track"].encode())))
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
