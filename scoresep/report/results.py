"""Reading a results folder: ``<results>/evaluations/<row>.json`` (one per trained row, written by ``scoresep
evaluate``, format 1) and, optionally, ``<results>/reproduce.json`` (preset, machine, training time per row),
validated into ``Results``; ``ReportError``, the report's error for input it cannot render, is defined here.

Why all checks here, before anything is computed: every way the files can be wrong (unreadable JSON, a missing
key, rows on different splits or different test tracks, per-track values that do not average to the summary)
becomes a ``ReportError`` naming the file and the key, so the tables, intervals and renderers work on data they can
trust. Files that are neither a row of the paper's tables nor a row ``reproduce.json`` marks ``beyond_paper`` are
listed as ignored, not read.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scoresep.errors import UserError
from scoresep.evaluation.result_file import FORMAT
from scoresep.report.paper import (
    BEYOND_PAPER,
    EVALUATED_ROWS,
    INPUT_MIXTURE,
    LOSS_FLAGS,
    SCORE_MASKS,
    TRANSCRIPTION_SETS,
    RowSpec,
)

# The input mixture row is read from any row's ``input_si_sdr``; stage 2 first, as it is the method's core row.
INPUT_SOURCE_PREFERENCE = ("stage2",)
INPUT_TOLERANCE_DB = 1e-6
# Per-track means must reproduce the summary the table shows; float summation order is all that may differ.
TRACK_TOLERANCE_DB = 1e-6


class ReportError(UserError, ValueError):
    """The results folder cannot be rendered: the message names the folder or file and what is wrong."""


# Per-track results: track name -> instrument -> value, only the instruments with a defined value in that track.
TrackValues = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Evaluation:
    """What the report needs from one ``evaluations/<row>.json``: per-instrument numbers, ``None`` = undefined.

    ``separation`` / ``input_si_sdr`` are ``None`` when the file has no separation section (a transcriptor-only
    checkpoint); ``transcription`` maps ``"mix"`` / ``"iso"`` to per-instrument accuracy for the sets present.
    ``track_si_sdr`` / ``track_input_si_sdr`` are the per-track SI-SDRs behind ``separation`` / ``input_si_sdr``
    (the intervals are computed from them); empty when the file has no per-track separation results.
    ``reads_score``: the separation read the test tracks' scores (``scoresep evaluate --score-masks``).
    """

    row: str
    path: Path
    instruments: tuple[str, ...]
    split: str | None
    separation: dict[str, float | None] | None
    input_si_sdr: dict[str, float | None] | None
    transcription: dict[str, dict[str, float | None]]
    track_si_sdr: TrackValues = field(default_factory=dict)
    track_input_si_sdr: TrackValues = field(default_factory=dict)
    reads_score: bool = False


@dataclass(frozen=True)
class Results:
    """Everything read from a results folder, validated. ``beyond``: the rows beyond the paper with an
    evaluation, in name order, each with the loss marks its ``config.yaml`` gives."""

    folder: Path
    evaluations: dict[str, Evaluation]
    instruments: tuple[str, ...]
    split: str
    input_mixture: dict[str, float | None] | None
    input_source: Path | None
    ignored: tuple[str, ...]
    reproduce: dict[str, Any] | None
    beyond: tuple[RowSpec, ...] = ()


def _read_json(path: Path) -> Any:
    """Parses a JSON file, turning every way it can fail into a ReportError that names the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: unreadable JSON ({error})") from error


def _require(mapping: Any, key: str, path: Path, where: str) -> Any:
    """Returns ``mapping[key]``; a missing key (or a non-object parent) names the file and the dotted key."""
    dotted = f"{where}.{key}" if where else key
    if not isinstance(mapping, dict):
        raise ReportError(f"{path}: {repr(where) if where else 'the document'} is not a JSON object")
    if key not in mapping:
        raise ReportError(f"{path}: missing key '{dotted}'")
    return mapping[key]


def _number(value: Any, path: Path, where: str) -> float | None:
    """A metric value: a JSON number, or None for null/NaN (undefined, e.g. no notes in any track)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{path}: '{where}' must be a number or null, got {value!r}")
    return None if math.isnan(value) else float(value)


def _metric(section: Any, instruments: tuple[str, ...], metric: str, path: Path, where: str) -> dict[str, float | None]:
    """Reads ``section[instrument][metric]`` for every instrument, as ``{instrument: value}``."""
    return {
        name: _number(_require(_require(section, name, path, where), metric, path, f"{where}.{name}"), path,
                      f"{where}.{name}.{metric}")
        for name in instruments
    }


def _parse_evaluation(row: str, path: Path, document: Any) -> Evaluation:
    """Validates one evaluation file (format 1) and keeps the numbers the tables show."""
    version = _require(document, "format", path, "")
    if version != FORMAT:
        raise ReportError(f"{path}: unsupported format {version!r} (this report reads format {FORMAT})")
    names = _require(document, "instruments", path, "")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ReportError(f"{path}: 'instruments' must be a non-empty list of names, got {names!r}")
    instruments = tuple(names)
    summary = _require(document, "summary", path, "")
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: 'summary' is not a JSON object")
    separation = input_si_sdr = None
    if "separation" in summary:
        separation = _metric(summary["separation"], instruments, "si_sdr", path, "summary.separation")
        input_si_sdr = _metric(summary["separation"], instruments, "input_si_sdr", path, "summary.separation")
    transcription = {}
    if "transcription" in summary:
        section = summary["transcription"]
        if not isinstance(section, dict):
            raise ReportError(f"{path}: 'summary.transcription' is not a JSON object")
        for key, _ in TRANSCRIPTION_SETS:
            if key in section:
                where = f"summary.transcription.{key}"
                transcription[key] = _metric(section[key], instruments, "accuracy", path, where)
    split = document.get("split")
    track_si_sdr, track_input_si_sdr = _parse_tracks(document, instruments, path)
    if separation is not None and input_si_sdr is not None:
        _check_tracks(separation, track_si_sdr, path, "si_sdr")
        _check_tracks(input_si_sdr, track_input_si_sdr, path, "input_si_sdr")
    # Files from before the field: only the score-mask reference read the score.
    reads_score = document.get("reads_score", row == SCORE_MASKS or document.get("stage") == "score_masks")
    if not isinstance(reads_score, bool):
        raise ReportError(f"{path}: 'reads_score' must be true or false, got {reads_score!r}")
    return Evaluation(row, path, instruments, split if isinstance(split, str) else None, separation, input_si_sdr,
                      transcription, track_si_sdr, track_input_si_sdr, reads_score)


def _parse_tracks(document: dict, instruments: tuple[str, ...], path: Path) -> tuple[TrackValues, TrackValues]:
    """The per-track SI-SDR and input SI-SDR of every ``tracks`` entry with a separation section, by track name.

    Keyed by name because rows are compared track by track (paired). Entries without separation (transcription
    only) are skipped; a file without ``tracks`` simply has no per-track results (its intervals are "n/a"). The
    input SI-SDR is kept only where the separated SI-SDR is defined, as ``scoresep evaluate`` does for the
    summary's ``input_si_sdr``, so that the interval is about the very number the table shows.
    """
    tracks = document.get("tracks", [])
    if not isinstance(tracks, list):
        raise ReportError(f"{path}: 'tracks' must be a list, got {type(tracks).__name__}")
    si_sdr: TrackValues = {}
    inputs: TrackValues = {}
    for index, entry in enumerate(tracks):
        where = f"tracks[{index}]"
        if not isinstance(entry, dict):
            raise ReportError(f"{path}: '{where}' is not a JSON object")
        if "separation" not in entry:
            continue
        name = _require(entry, "track", path, where)
        if not isinstance(name, str):
            raise ReportError(f"{path}: '{where}.track' must be a track name, got {name!r}")
        if name in si_sdr:
            raise ReportError(f"{path}: track {name!r} appears twice in 'tracks'")
        separated = _metric(entry["separation"], instruments, "si_sdr", path, f"{where}.separation")
        mixture = _metric(entry["separation"], instruments, "input_si_sdr", path, f"{where}.separation")
        si_sdr[name] = {key: value for key, value in separated.items() if value is not None}
        inputs[name] = {key: value for key in si_sdr[name] if (value := mixture[key]) is not None}
    return si_sdr, inputs


def _check_tracks(summary: dict[str, float | None], tracks: TrackValues, path: Path, metric: str) -> None:
    """The per-track results must average to the summary: otherwise an interval would describe other numbers.

    An instrument without per-track values is not checked (nothing to check; its interval is "n/a").
    """
    for name, expected in summary.items():
        values = [track[name] for track in tracks.values() if name in track]
        if not values:
            continue
        mean = statistics.fmean(values)
        if expected is None or abs(mean - expected) > TRACK_TOLERANCE_DB:
            raise ReportError(f"{path}: summary.separation.{name}.{metric} is {expected} but its {len(values)} "
                              f"per-track values average {mean}: the tracks and the summary disagree")


def _load_evaluations(folder: Path, beyond: tuple[str, ...] = ()) -> tuple[dict[str, Evaluation], tuple[str, ...]]:
    """Loads the evaluation of every row of the paper's tables and of the ``beyond`` rows; returns them keyed by
    row (the paper's first, in table order), and the names of the files that are neither."""
    evaluations_dir = folder / "evaluations"
    files = sorted(evaluations_dir.glob("*.json"))
    if not files:
        raise ReportError(f"{evaluations_dir}: no evaluation files (*.json); run `scoresep evaluate` first")
    rows = EVALUATED_ROWS + tuple(name for name in beyond if name not in EVALUATED_ROWS)
    known = {path.stem: path for path in files if path.stem in rows}
    ignored = tuple(path.name for path in files if path.stem not in rows)
    if not known:
        raise ReportError(f"{evaluations_dir}: no evaluation of a row of the paper's tables (found "
                          f"{', '.join(ignored)}; expected <row>.json with row in {', '.join(EVALUATED_ROWS)})")
    evaluations = {row: _parse_evaluation(row, path, _read_json(path)) for row, path in known.items()}
    return {row: evaluations[row] for row in rows if row in evaluations}, ignored


def _beyond_paper_rows(folder: Path, record: dict[str, Any] | None) -> tuple[str, ...]:
    """The rows ``reproduce.json`` marks ``beyond_paper`` and that have an evaluation file, in name order (the
    record lists rows in the order they finished, which changes from run to run). A row of the paper's tables
    stays one whatever the record says."""
    rows = record.get("rows") if record is not None else None
    if not isinstance(rows, dict):
        return ()
    names = []
    for name, info in rows.items():
        flag = info.get("beyond_paper", False) if isinstance(info, dict) else False
        if not isinstance(flag, bool):
            raise ReportError(f"{folder / 'reproduce.json'}: 'rows.{name}.beyond_paper' must be true or false, got "
                              f"{flag!r}")
        if flag and name not in EVALUATED_ROWS and name != INPUT_MIXTURE and \
                (folder / "evaluations" / f"{name}.json").is_file():
            names.append(name)
    return tuple(sorted(names))


def config_loss_flags(path: Path) -> tuple[str, ...]:
    """The Table-1 loss marks a row's ``config.yaml`` gives (a positive ``clip_mix_weight`` is L_c-mix, a
    positive ``harmonic_mix_weight`` L_h-mix, ``aml`` / ``atl`` true with a positive weight AML / ATL); none
    when the file is missing or unreadable: the marks are a description, not a number the table depends on."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ()
    model = config.get("model") if isinstance(config, dict) else None
    init = model.get("init_args") if isinstance(model, dict) else None
    if not isinstance(init, dict):
        return ()

    def positive(key: str) -> bool:
        value = init.get(key, 1.0 if key in ("aml_weight", "atl_weight") else 0.0)
        return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0

    marks = {"L_c-mix": positive("clip_mix_weight"), "L_h-mix": positive("harmonic_mix_weight"),
             "AML": init.get("aml") is True and positive("aml_weight"),
             "ATL": init.get("atl") is True and positive("atl_weight")}
    return tuple(flag for flag in LOSS_FLAGS if marks[flag])


def _common_split(evaluations: dict[str, Evaluation]) -> str:
    """The split all rows were evaluated on; rows from different splits are not comparable, so that is an error."""
    first: Evaluation | None = None
    for evaluation in evaluations.values():
        if evaluation.split is None:
            continue
        if first is not None and evaluation.split != first.split:
            raise ReportError(f"{first.path} is on split {first.split!r} but {evaluation.path} on "
                              f"{evaluation.split!r}: the rows are not comparable")
        first = first or evaluation
    return first.split if first is not None else "test"


def _input_mixture(evaluations: dict[str, Evaluation]) -> tuple[dict[str, float | None] | None, Path | None]:
    """The input-mixture row: ``input_si_sdr`` of the preferred row, checked against every other row.

    All rows must be evaluated on the same tracks, so their ``input_si_sdr`` must agree; when it does not, a
    table would compare rows measured on different data, and we stop with both file names.
    """
    sources = [evaluation for evaluation in evaluations.values() if evaluation.input_si_sdr is not None]
    if not sources:
        return None, None
    order = {row: rank for rank, row in enumerate(INPUT_SOURCE_PREFERENCE)}
    sources.sort(key=lambda evaluation: order.get(evaluation.row, len(order)))
    values: dict[str, float | None] = {}
    owners: dict[str, Path] = {}
    for evaluation in sources:
        for name, value in evaluation.input_si_sdr.items():
            if name not in owners:
                values[name], owners[name] = value, evaluation.path
            elif not _same(values[name], value):
                raise ReportError(f"input_si_sdr of {name} differs between {owners[name]} ({values[name]}) and "
                                  f"{evaluation.path} ({value}): the rows were evaluated on different data")
    return values, sources[0].path


def _same(first: float | None, second: float | None) -> bool:
    """Two input SI-SDRs agree: both undefined, or within INPUT_TOLERANCE_DB."""
    if first is None or second is None:
        return first is None and second is None
    return abs(first - second) <= INPUT_TOLERANCE_DB


def _load_reproduce(folder: Path) -> dict[str, Any] | None:
    """The optional run record; only its known keys are used later, unknown ones are ignored."""
    path = folder / "reproduce.json"
    if not path.exists():
        return None
    document = _read_json(path)
    if not isinstance(document, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return document


def load_results(results_dir: str | os.PathLike) -> Results:
    """Reads and validates a results folder (see the module docstring); raises ReportError naming the culprit."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ReportError(f"{folder}: results folder not found")
    record = _load_reproduce(folder)
    beyond = _beyond_paper_rows(folder, record)
    evaluations, ignored = _load_evaluations(folder, beyond)
    instruments = tuple(dict.fromkeys(name for evaluation in evaluations.values() for name in evaluation.instruments))
    input_mixture, input_source = _input_mixture(evaluations)
    specs = tuple(RowSpec(name, f"{name} {BEYOND_PAPER}", config_loss_flags(folder / "rows" / name / "config.yaml"))
                  for name in beyond)
    return Results(folder, evaluations, instruments, _common_split(evaluations), input_mixture, input_source,
                   ignored, record, specs)
