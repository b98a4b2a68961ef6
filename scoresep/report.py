"""The paper's two tables, rebuilt from a ``scoresep reproduce`` results folder, with the paper's numbers beside ours.

Input: ``<results>/evaluations/<row>.json`` (one per trained row, written by ``scoresep evaluate``, format 1) and,
optionally, ``<results>/reproduce.json`` (preset, machine, training time per row). Output, all in ``<results>``:

- ``report.md``: header, Table 1 (separation, SI-SDR dB) and Table 2 (transcription, note accuracy) in the
  paper's layout, each instrument as an "ours" column next to a "(paper)" column, and the chart. Our Table-1
  cells are ``mean ± h``, h the half-width of a 95 % Student-t interval over the test tracks (from the per-track
  results of the evaluation files), and under Table 1 a section says which differences between the main rows
  are inside that noise (paired over the tracks both rows were evaluated on);
- ``table1_separation.csv`` / ``table2_transcription.csv``: the same numbers for machines (empty cell = undefined
  or not run; Table 1 adds ``<column>_ci95``, the half-width, empty where there is no interval);
- ``si_sdr.png``: grouped bars of SI-SDR per Table-1 row and instrument, with the paper's values as ticks.

Table 1 also says how much of the distance from the input mixture to the supervised row each row covers ("gap
closed", on the avg and on guitar, ours beside the paper's): our absolute numbers are far from the paper's, on
other data with smaller networks, but the share of the supervised row's improvement is comparable. Rows a preset
marks ``beyond_paper`` (recorded per row in ``reproduce.json``) follow the paper's rows, without paper numbers. A
row whose evaluation read the test score (``reads_score``, the score-mask reference) is marked as such, so that it
is never ranked unmarked beside rows that hear only the audio.

``render_seeds`` reads several results folders, one per training seed (``scoresep reproduce --seed N``), and
writes ``seeds.md`` into the first: for each paired difference under Table 1, each seed's difference with its
interval and in how many seeds it holds (interval above 0), since one seed's ranking can be luck of that seed.

Why a separate step: reproducing takes hours, rendering takes a second; the tables can be re-rendered after any
single row is re-evaluated, and a row that has not run yet is shown as "not run" rather than stopping the report.
Every file is written atomically, so an interrupted render never leaves a truncated table behind.

Why intervals: the test split is a few tracks (7 on mini-Slakh) whose SI-SDRs spread by several dB, so a
difference of a few tenths between two rows, or between ours and the paper's, is often no difference at all.
Table 2 has no intervals: its accuracies come from frame counts summed over tracks (a ratio of sums, not a mean
over tracks), and the evaluation files hold per-track counts, not per-track accuracies.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scoresep.fileio import atomic_write_bytes

EVALUATION_FORMAT = 1
LOSS_FLAGS = ("L_c-mix", "L_h-mix", "AML", "ATL")
AVERAGE = "avg"
MISSING = "—"  # undefined number (null) or a section the evaluation does not contain
NOT_RUN = "not run"  # no evaluation file for the row
INPUT_MIXTURE = "input_mixture"
# The input mixture row is read from any row's ``input_si_sdr``; stage 2 first, as it is the method's core row.
INPUT_SOURCE_PREFERENCE = ("stage2",)
INPUT_TOLERANCE_DB = 1e-6
TRANSCRIPTION_SETS = (("mix", "mixture"), ("iso", "isolated tracks"))
CONFIDENCE = 0.95
NO_INTERVAL = "n/a"  # fewer than 2 tracks: no interval
# Per-track means must reproduce the summary the table shows; float summation order is all that may differ.
TRACK_TOLERANCE_DB = 1e-6
STAGE3_ROWS = ("stage3_noadv", "stage3", "stage3_atl")
BEST_STAGE3 = "best stage 3"  # placeholder in DIFFERENCE_CHAIN for the step-3 row with the highest average
# The main rows in the order the paper expects their averages to be (highest first): each adjacent pair is tested.
DIFFERENCE_CHAIN = ("supervised", BEST_STAGE3, "stage2", "baseline", INPUT_MIXTURE)
DIFFERENCES_TITLE = "Which differences are inside the noise"
READS_SCORE = "(reads the test score)"  # appended to the label of a row whose evaluation read the test score
BEYOND_PAPER = "(beyond the paper)"  # appended to the preset's name of a row that is not in the paper's tables
SUPERVISED = "supervised"  # the upper bound of "gap closed"
GAP_INSTRUMENT = "guitar"  # the instrument with its own "gap closed" column: the paper's hardest
GAP_COLUMNS = ("gap closed", f"{GAP_INSTRUMENT} gap closed")
SEEDS_FILE = "seeds.md"
SEEDS_TITLE = "Claims across seeds"


@dataclass(frozen=True)
class RowSpec:
    """One line of a paper table: our row id (the evaluation file's stem), the paper's label and loss marks."""

    row: str
    label: str
    flags: tuple[str, ...] = ()
    reads_score: bool = False  # the label already says that the row reads the test score


SCORE_MASKS = "score_masks"  # a reference row: no training, reads the test score (not a row of the paper)
TABLE1_ROWS = (
    RowSpec("supervised", "supervised (stems)"),
    RowSpec("stage2_cmix", "step 2", ("L_c-mix",)),
    RowSpec("stage2_hmix", "step 2", ("L_h-mix",)),
    RowSpec("stage2", "step 2", ("L_c-mix", "L_h-mix")),
    RowSpec("stage3_noadv", "step 3 fine-tune", ("L_c-mix", "L_h-mix")),
    RowSpec("stage3", "step 3 fine-tune", ("L_c-mix", "L_h-mix", "AML")),
    RowSpec("stage3_atl", "step 3 fine-tune", ("L_c-mix", "L_h-mix", "ATL")),
    RowSpec(INPUT_MIXTURE, "input mixture"),
    RowSpec("baseline", "baseline [16] classifier critic"),
    RowSpec(SCORE_MASKS, "score harmonic masks (no training; uses the test score)", reads_score=True),
)
TABLE2_ROWS = (
    RowSpec("stage1", "step 1"),
    RowSpec("stage3_noadv", "step 3"),
    RowSpec("stage3", "step 3", ("AML",)),
    RowSpec("stage3_atl", "step 3", ("ATL",)),
)

# Hung, Wichern & Le Roux, ICASSP 2021, Table 1: SI-SDR (dB) on Slakh2100 test, keyed by our row id.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "supervised": {"bass": 11.1, "guitar": 5.7, "piano": 7.7, "avg": 8.2},
    "stage2_cmix": {"bass": 7.5, "guitar": 1.2, "piano": 4.2, "avg": 4.3},
    "stage2_hmix": {"bass": 7.8, "guitar": 0.4, "piano": 4.1, "avg": 4.1},
    "stage2": {"bass": 8.4, "guitar": 1.6, "piano": 5.0, "avg": 5.0},
    "stage3_noadv": {"bass": 9.0, "guitar": 2.7, "piano": 5.3, "avg": 5.6},
    "stage3": {"bass": 9.1, "guitar": 2.8, "piano": 5.4, "avg": 5.8},
    "stage3_atl": {"bass": 9.0, "guitar": 2.5, "piano": 5.7, "avg": 5.7},
    "input_mixture": {"bass": 1.2, "guitar": -5.8, "piano": -2.3, "avg": -2.3},
    "baseline": {"bass": 7.3, "guitar": 0.5, "piano": 3.5, "avg": 3.8},
}
# Same paper, Table 2: note accuracy, evaluated on the mixture ("mix") and on isolated tracks ("iso").
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "stage1": {
        "mix": {"bass": 0.85, "guitar": 0.44, "piano": 0.58},
        "iso": {"bass": 0.91, "guitar": 0.52, "piano": 0.66},
    },
    "stage3_noadv": {
        "mix": {"bass": 0.84, "guitar": 0.42, "piano": 0.54},
        "iso": {"bass": 0.90, "guitar": 0.53, "piano": 0.63},
    },
    "stage3": {
        "mix": {"bass": 0.86, "guitar": 0.51, "piano": 0.61},
        "iso": {"bass": 0.91, "guitar": 0.58, "piano": 0.68},
    },
    "stage3_atl": {
        "mix": {"bass": 0.85, "guitar": 0.50, "piano": 0.60},
        "iso": {"bass": 0.91, "guitar": 0.57, "piano": 0.66},
    },
}
ROW_LABELS = {spec.row: spec.label for spec in TABLE2_ROWS + TABLE1_ROWS}
EVALUATED_ROWS = tuple(dict.fromkeys(spec.row for spec in TABLE1_ROWS + TABLE2_ROWS if spec.row != INPUT_MIXTURE))

TABLE1_TITLE = "Table 1: separation, SI-SDR (dB), {split} split, whole tracks"
TABLE2_TITLE = "Table 2: transcription, note accuracy, {split} split"
CHART_LINE = "![SI-SDR per row and instrument](si_sdr.png)"


class ReportError(ValueError):
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


# ----------------------------------------------------------------------------------------------- reading


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
    if version != EVALUATION_FORMAT:
        raise ReportError(f"{path}: unsupported format {version!r} (this report reads format {EVALUATION_FORMAT})")
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


# ----------------------------------------------------------------------------------------------- statistics


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean of ``values`` and the half-width of its two-sided Student-t confidence interval (``None``: < 2 values).

    Half-width = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n), s the sample standard deviation. Student-t rather
    than the normal quantile because the test split is a handful of tracks, where the normal interval is too
    narrow; the values are treated as independent draws (one per track). Raises ValueError for no values or a
    non-finite one (an undefined value has to be left out by the caller, not averaged).
    """
    data = [float(value) for value in values]
    if not data:
        raise ValueError("mean_interval needs at least one value")
    if not all(math.isfinite(value) for value in data):
        raise ValueError(f"mean_interval needs finite values, got {data}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = statistics.fmean(data)
    if len(data) < 2:
        return mean, None
    from scipy.stats import t  # here, not at module load: only rendering needs it

    quantile = float(t.ppf(0.5 + confidence / 2.0, len(data) - 1))
    return mean, quantile * statistics.stdev(data) / math.sqrt(len(data))


def paired_difference(first: Sequence[float], second: Sequence[float],
                      confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean of ``first[i] - second[i]`` and the half-width of its Student-t interval (``mean_interval``).

    Paired because both rows were scored on the same tracks: a track that is hard for one row is hard for the
    other, and that shared spread cancels in the per-track difference, whereas comparing the two rows' own
    intervals would count it twice. Raises ValueError when the sequences differ in length.
    """
    if len(first) != len(second):
        raise ValueError(f"paired values need the same length, got {len(first)} and {len(second)}")
    return mean_interval([a - b for a, b in zip(first, second, strict=True)], confidence)


def _instrument_interval(tracks: TrackValues, name: str) -> float | None:
    """Half-width of one instrument's interval over the tracks where it has a value (a stem)."""
    values = [track[name] for track in tracks.values() if name in track]
    return mean_interval(values)[1] if values else None


def _average_interval(tracks: TrackValues, names: tuple[str, ...]) -> float | None:
    """Half-width of the avg column's interval: per track, the mean over that track's instruments with a value,
    then the t-interval over those per-track means.

    Per track first because the tracks, not the instrument cells, are the independent draws. The table's avg is
    the mean of the per-instrument means (the paper's); both agree when every track has every stem and differ a
    little otherwise. When an instrument has no per-track values at all, the per-track means would leave it out
    and describe another average, so there is no interval (``None``).
    """
    if any(all(name not in track for track in tracks.values()) for name in names):
        return None
    means = [statistics.fmean(track[name] for name in names if name in track)
             for track in tracks.values() if any(name in track for name in names)]
    return mean_interval(means)[1] if means else None


@dataclass(frozen=True)
class Difference:
    """A paired difference of two Table-1 rows' averages: ``mean`` (dB, first - second) over ``tracks`` common
    tracks; ``half_width`` None = fewer than 2 common tracks; ``mean`` None = none. ``instruments``: those that
    entered the comparison in at least one track (fewer than the table's when a row has no value for one)."""

    first: str
    second: str
    mean: float | None
    half_width: float | None
    tracks: int
    instruments: tuple[str, ...] = ()

    @property
    def measurable(self) -> bool | None:
        """Whether 0 lies outside the interval (a difference the tracks can tell); None without an interval."""
        if self.mean is None or self.half_width is None:
            return None
        return abs(self.mean) > self.half_width


def average_difference(first: TrackValues, second: TrackValues, names: tuple[str, ...],
                       labels: tuple[str, str] = ("first", "second")) -> Difference:
    """Paired difference of two rows' per-track averages over the tracks both rows have.

    Per common track, each row's mean over the instruments that both rows have a value for in that track (so a
    stem missing from one row does not turn into a difference), then ``paired_difference`` over those tracks.
    """
    own, other, used = [], [], set()
    for track, values in first.items():
        shared = [name for name in names if name in values and name in second.get(track, {})]
        if shared:
            own.append(statistics.fmean(values[name] for name in shared))
            other.append(statistics.fmean(second[track][name] for name in shared))
            used.update(shared)
    instruments = tuple(name for name in names if name in used)
    if not own:
        return Difference(*labels, None, None, 0, instruments)
    return Difference(*labels, *paired_difference(own, other), len(own), instruments)


# ----------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableRow:
    """One table line: row id, text cells (label, marks), our numbers and the paper's; ``source`` None = not run.

    ``half_widths``: per column, the half-width of our number's 95 % interval over tracks (None: no interval);
    empty for a table without intervals (Table 2). ``gaps`` / ``gaps_paper``: per ``Table.gaps`` column, ours and
    the paper's share of the gap closed in percent (None: a number it needs is missing).
    """

    row: str
    labels: tuple[str, ...]
    ours: tuple[float | None, ...]
    paper: tuple[float | None, ...]
    source: Path | None
    half_widths: tuple[float | None, ...] = ()
    gaps: tuple[float | None, ...] = ()
    gaps_paper: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Table:
    """A table independent of its rendering: text columns, then one "ours" and one "paper" value per column.

    ``intervals``: whether our numbers carry a half-width (rendered ``mean ± h``, CSV ``<column>_ci95``).
    ``gaps``: the names of the percentage columns after them, ours and the paper's (Table 1: "gap closed").
    """

    label_header: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]
    decimals: int
    intervals: bool = False
    gaps: tuple[str, ...] = ()


def _mean(values: list[float | None]) -> float | None:
    """Mean over instruments; undefined when any instrument is, since a partial mean is not the paper's avg."""
    if not values or any(value is None for value in values):
        return None
    return sum(values) / len(values)


def _marks(spec: RowSpec, flags: tuple[str, ...]) -> tuple[str, ...]:
    """The paper's "x" marks of a row for the given loss columns."""
    return tuple("x" if flag in spec.flags else "" for flag in flags)


def gap_closed(value: float | None, mixture: float | None, supervised: float | None) -> float | None:
    """The share of the way from the input mixture to the supervised row that ``value`` covers, in percent:
    ``100 (value - mixture) / (supervised - mixture)``; 0 % is no separation, 100 % the supervised row's. None
    when a number is missing or the supervised row is no better than the mixture (no gap to close)."""
    if value is None or mixture is None or supervised is None or supervised <= mixture:
        return None
    return 100.0 * (value - mixture) / (supervised - mixture)


def _reads_score(results: Results, row: str) -> bool:
    evaluation = results.evaluations.get(row)
    return evaluation is not None and evaluation.reads_score


def _table1(results: Results) -> Table:
    """Table 1 as data: SI-SDR (dB) per instrument and their mean, ours and the paper's, in the paper's order,
    then the rows beyond the paper; each of our numbers with the half-width of its 95 % interval over test tracks
    (see ``_average_interval`` for the avg column), and each row's gap closed (``gap_closed``) on the avg and on
    guitar, ours and the paper's."""
    names = results.instruments
    columns = names + (AVERAGE,)
    rows = []
    for spec in TABLE1_ROWS + results.beyond:
        values, source = _table1_values(results, spec.row)
        ours: tuple[float | None, ...] = (None,) * len(columns)
        half_widths: tuple[float | None, ...] = (None,) * len(columns)
        if values is not None:
            ours = tuple(values.get(name) for name in names) + (_mean([values[n] for n in names if n in values]),)
            tracks = _table1_tracks(results, spec.row)
            widths = [_instrument_interval(tracks, name) for name in names] + [_average_interval(tracks, names)]
            half_widths = tuple(None if value is None else width for value, width in zip(ours, widths, strict=True))
        paper = tuple(PAPER_TABLE1.get(spec.row, {}).get(name) for name in columns)
        label = spec.label
        if _reads_score(results, spec.row) and not spec.reads_score:
            label += f" {READS_SCORE}"
        rows.append(TableRow(spec.row, (label, *_marks(spec, LOSS_FLAGS)), ours, paper, source, half_widths))
    return Table(("training", *LOSS_FLAGS), columns, _with_gaps(tuple(rows), columns), 2, intervals=True,
                 gaps=GAP_COLUMNS)


def _with_gaps(rows: tuple[TableRow, ...], columns: tuple[str, ...]) -> tuple[TableRow, ...]:
    """Table-1 rows with their gap closed filled in: on the avg column and on GAP_INSTRUMENT's, ours from our
    input-mixture and supervised rows, the paper's from the paper's."""
    by_row = {row.row: row for row in rows}
    indices = [columns.index(name) if name in columns else None for name in (AVERAGE, GAP_INSTRUMENT)]

    def cell(numbers: tuple[float | None, ...], index: int | None) -> float | None:
        return None if index is None else numbers[index]

    def gaps(row: TableRow, kind: str) -> tuple[float | None, ...]:
        mixture, supervised = by_row.get(INPUT_MIXTURE), by_row.get(SUPERVISED)
        if mixture is None or supervised is None:
            return (None,) * len(indices)
        return tuple(gap_closed(cell(getattr(row, kind), index), cell(getattr(mixture, kind), index),
                                cell(getattr(supervised, kind), index)) for index in indices)

    return tuple(TableRow(row.row, row.labels, row.ours, row.paper, row.source, row.half_widths, gaps(row, "ours"),
                          gaps(row, "paper")) for row in rows)


def _table1_tracks(results: Results, row: str) -> TrackValues:
    """The per-track values behind a Table-1 row: the row's SI-SDR, or for the input mixture the input SI-SDR of
    the evaluation the row is read from; empty when there are none."""
    if row == INPUT_MIXTURE:
        return next((evaluation.track_input_si_sdr for evaluation in results.evaluations.values()
                     if evaluation.path == results.input_source), {})
    evaluation = results.evaluations.get(row)
    return evaluation.track_si_sdr if evaluation is not None else {}


def _table1_values(results: Results, row: str) -> tuple[dict[str, float | None] | None, Path | None]:
    """Our SI-SDR per instrument for a Table-1 row and the file it came from; (None, None) when not run."""
    if row == INPUT_MIXTURE:
        return results.input_mixture, results.input_source
    evaluation = results.evaluations.get(row)
    if evaluation is None:
        return None, None
    return evaluation.separation, evaluation.path


def _table2(results: Results) -> Table:
    """Table 2 as data: first every row on the mixture, then every row on isolated tracks (the paper's order)."""
    names = results.instruments
    rows = []
    for key, described in TRANSCRIPTION_SETS:
        for spec in TABLE2_ROWS:
            evaluation = results.evaluations.get(spec.row)
            accuracy = evaluation.transcription.get(key, {}) if evaluation else {}
            paper = PAPER_TABLE2.get(spec.row, {}).get(key, {})
            rows.append(TableRow(spec.row, (spec.label, described, *_marks(spec, ("AML", "ATL"))),
                                 tuple(accuracy.get(name) for name in names), tuple(paper.get(name) for name in names),
                                 evaluation.path if evaluation else None))
    return Table(("training", "evaluated on", "AML", "ATL"), names, tuple(rows), 3)


# ----------------------------------------------------------------------------------------------- Markdown


def _escape(text: str) -> str:
    """Keeps a "|" inside a cell from splitting it."""
    return text.replace("|", "\\|")


def _number_cell(value: float | None, decimals: int, empty: str) -> str:
    return empty if value is None else f"{value:.{decimals}f}"


def _ours_cell(row: TableRow, index: int, table: Table) -> str:
    """Our number, with `` ± h`` (or `` ± n/a``) in a table with intervals; "not run" / "—" as before."""
    if row.source is None:
        return NOT_RUN
    value = row.ours[index]
    if value is None:
        return MISSING
    text = f"{value:.{table.decimals}f}"
    if table.intervals:
        text += f" ± {_number_cell(row.half_widths[index], table.decimals, NO_INTERVAL)}"
    return text


def _percent_cell(value: float | None) -> str:
    """A gap-closed cell: whole percent, empty when a number it needs is missing."""
    return "" if value is None else f"{value:.0f} %"


def _markdown_table(table: Table) -> str:
    """A GitHub table: text columns, then for each instrument our number and, beside it, the paper's; then the
    same for each percentage column (``table.gaps``)."""
    header = [*table.label_header]
    for name in table.columns + table.gaps:
        header += [name, f"{name} (paper)"]
    align = ["---"] * len(table.label_header) + ["---:"] * (2 * len(table.columns + table.gaps))
    lines = ["| " + " | ".join(_escape(name) for name in header) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        cells = [_escape(label) for label in row.labels]
        for index, paper in enumerate(row.paper):
            cells.append(_ours_cell(row, index, table))
            cells.append(_number_cell(paper, table.decimals, ""))
        for ours, paper in zip(row.gaps, row.gaps_paper, strict=True):
            cells += [_percent_cell(ours), _percent_cell(paper)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_stage3(table: Table) -> str | None:
    """The step-3 row with the highest average among those with separation results (report order breaks ties;
    an undefined average ranks last); None when no step-3 row has any."""
    candidates = [row for row in table.rows if row.row in STAGE3_ROWS and _has_numbers(row)]
    if not candidates:
        return None
    return max(candidates, key=lambda row: -math.inf if row.ours[-1] is None else row.ours[-1]).row


def _has_numbers(row: TableRow) -> bool:
    """The row has separation results (its evaluation file exists and has a separation section)."""
    return row.source is not None and any(value is not None for value in row.ours)


def table1_differences(results: Results) -> tuple[Difference, ...]:
    """The paired avg differences of adjacent rows in ``DIFFERENCE_CHAIN`` (supervised > best step-3 row > step
    2 with both losses > baseline > input mixture), skipping the rows without separation results.

    Only these rows: they are the paper's claims (each stage beats the one below it); the one-loss step-2 rows
    and the other step-3 rows are ablations, read from the table with their intervals.
    """
    table = _table1(results)
    present = {row.row for row in table.rows if _has_numbers(row)}
    best = _best_stage3(table)
    chain = [best if row == BEST_STAGE3 else row for row in DIFFERENCE_CHAIN]
    chain = [row for row in chain if row is not None and row in present]
    return tuple(average_difference(_table1_tracks(results, first), _table1_tracks(results, second),
                                    results.instruments, (first, second))
                 for first, second in zip(chain[:-1], chain[1:], strict=True))


def _signed(value: float, decimals: int = 2) -> str:
    return f"{value:+.{decimals}f}"


def _score_readers(results: Results, difference: Difference) -> str:
    """`` (`row` reads the test score)`` when a row of the pair read the test score, else empty: such a
    comparison is not between two methods that hear the same input."""
    readers = [row for row in (difference.first, difference.second) if _reads_score(results, row)]
    return f" ({' and '.join(f'`{row}`' for row in readers)} {READS_SCORE[1:-1]})" if readers else ""


def _difference_line(difference: Difference, instruments: tuple[str, ...], note: str = "") -> str:
    """One bullet: the pair (``note`` after it; and the instruments compared, when not all of them), the mean
    difference, its interval and whether 0 is inside it."""
    pair = f"- `{difference.first}` vs `{difference.second}`{note}"
    if difference.instruments and difference.instruments != instruments:
        pair += f" ({', '.join(difference.instruments)} only)"
    pair += ": "
    if difference.mean is None:
        return pair + f"{NO_INTERVAL}: no common track with per-track results"
    text = pair + f"{_signed(difference.mean)} dB"
    if difference.half_width is None:
        tracks = f"{difference.tracks} common track{'' if difference.tracks == 1 else 's'}"
        return text + f", {NO_INTERVAL} ({tracks} with per-track results; an interval needs 2)"
    low, high = difference.mean - difference.half_width, difference.mean + difference.half_width
    text += f" [{_signed(low)}, {_signed(high)}] (95 % CI over {difference.tracks} tracks): "
    if difference.measurable:
        return text + "outside the noise (0 is not in the interval), a measurable difference"
    return text + "inside the noise (0 is in the interval), not a measurable difference"


def _differences_markdown(results: Results) -> str:
    """The section under Table 1: which adjacent main rows differ by more than the track-to-track noise."""
    best = _best_stage3(_table1(results))
    step3 = f"`{best}`, the step-3 row with the highest avg" if best else "none evaluated"
    lines = [f"**{DIFFERENCES_TITLE}**", "",
             f"The avg column of the main rows, in the order the paper expects (supervised > best step-3 row "
             f"({step3}) > step 2 with both losses > baseline > input mixture), each adjacent pair paired over "
             f"the test tracks both rows were evaluated on: per track, the difference of the two rows' means over "
             f"the instruments both have in it, then a 95 % Student-t interval over those tracks.", ""]
    differences = table1_differences(results)
    if not differences:
        lines.append("Fewer than two of these rows have separation results: nothing to compare yet.")
    lines += [_difference_line(difference, results.instruments, _score_readers(results, difference))
              for difference in differences]
    return "\n".join(lines)


def _tables_markdown(results: Results) -> str:
    """The two captioned tables, Table 1's reading note and differences section, and the legend."""
    legend = (f"Each number is ours; the `(paper)` column beside it is Hung et al. (ICASSP 2021). "
              f"{MISSING} = undefined (e.g. no notes) or not in that evaluation; {NOT_RUN} = no evaluation file. "
              f"Gap closed: (row - input mixture) / (supervised - input mixture) of the avg (or {GAP_INSTRUMENT}) "
              f"SI-SDR, 100 % = the supervised row; empty where a number is missing. Rows {BEYOND_PAPER} are "
              f"not in the paper's tables: loss marks from their own config.yaml, no paper numbers. Rows "
              f"{READS_SCORE} read the test tracks' scores, which the other rows never see.")
    intervals = (f"Table 1 cells: our mean ± the half-width of its 95 % Student-t interval over the test tracks "
                 f"(avg: over per-track means of the instruments present in each track; {NO_INTERVAL}: fewer "
                 f"than 2 tracks with per-track results). Table 2 has no intervals: its accuracies come from "
                 f"frame counts summed over tracks.")
    return "\n\n".join([
        f"**{TABLE1_TITLE.format(split=results.split)}**", _markdown_table(_table1(results)), intervals,
        _differences_markdown(results),
        f"**{TABLE2_TITLE.format(split=results.split)}**", _markdown_table(_table2(results)), legend,
    ]) + "\n"


def markdown_tables(results_dir: str | os.PathLike) -> str:
    """Just the two captioned Markdown tables (ours beside the paper's), e.g. to paste into a README."""
    return _tables_markdown(load_results(results_dir))


def _minutes(seconds: Any) -> str:
    """Seconds as minutes with one decimal, or "—" when the record has no usable number."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return MISSING
    return f"{seconds / 60:.1f}"


def _header_markdown(record: dict[str, Any]) -> str:
    """The run summary from reproduce.json: preset, data, machine, times, and training time per row."""
    facts = [("preset", record.get("preset")), ("seed", record.get("seed", 0)), ("data", record.get("data")),
             ("machine", record.get("machine")), ("precision (rows that set none)", record.get("precision")),
             ("started", record.get("started")), ("finished", record.get("finished"))]
    lines = [f"- {name}: {value}" for name, value in facts if value not in (None, "")]
    lines.append(f"- total wall time: {_minutes(record.get('wall_seconds'))} min")
    rows = record.get("rows")
    if isinstance(rows, dict) and rows:
        infos = {row: info if isinstance(info, dict) else {} for row, info in rows.items()}
        with_precision = any("precision" in info for info in infos.values())  # reproduce.json files before it: none
        lines += ["", "Training time per row:", "",
                  "| row | training | status |" + (" precision |" if with_precision else "") + " minutes |",
                  "|---|---|---|" + ("---|" if with_precision else "") + "---:|"]
        for row, info in infos.items():
            label = ROW_LABELS.get(row, BEYOND_PAPER[1:-1] if info.get("beyond_paper") is True else "")
            cells = [_escape(str(row)), label, _escape(str(info.get("status", MISSING)))]
            if with_precision:
                cells.append(_escape(str(info.get("precision", MISSING))))
            lines.append("| " + " | ".join([*cells, _minutes(info.get("seconds"))]) + " |")
    return "\n".join(lines) + "\n"


def _report_markdown(results: Results) -> str:
    """The whole report.md: title, optional run header, the tables, notes, and the chart."""
    parts = ["# Reproduction of Hung, Wichern & Le Roux (ICASSP 2021): score-supervised separation\n"]
    if results.reproduce is not None:
        parts.append(_header_markdown(results.reproduce))
    evaluated = f"{sum(row in EVALUATED_ROWS for row in results.evaluations)} of {len(EVALUATED_ROWS)} rows evaluated"
    if results.beyond:
        evaluated += f"; beyond the paper: {', '.join(f'`{spec.row}`' for spec in results.beyond)}"
    if results.input_source is not None:
        evaluated += f"; input mixture from `{results.input_source.name}`"
    if results.ignored:
        evaluated += f"; ignored (not a row of the paper): {', '.join(f'`{name}`' for name in results.ignored)}"
    parts += [evaluated + ".\n", _tables_markdown(results), CHART_LINE + "\n"]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Claim:
    """One paired difference under Table 1, across seeds: ``first`` is expected above ``second`` (our row ids, with
    ``BEST_STAGE3`` for whichever step-3 row is best in a seed); ``differences`` per seed, None where that seed
    has not both rows."""

    first: str
    second: str
    differences: tuple[Difference | None, ...]

    @property
    def holds(self) -> int:
        """In how many seeds the claim holds: the difference's 95 % interval lies above 0."""
        return sum(1 for difference in self.differences if _holds(difference))


def _holds(difference: Difference | None) -> bool:
    return (difference is not None and difference.mean is not None and difference.half_width is not None
            and difference.mean - difference.half_width > 0)


def record_seed(record: dict[str, Any], path: Path) -> int:
    """The training seed a run record (``reproduce.json`` at ``path``) holds: 0 for a run from before ``--seed``.
    Read here for the report and by ``reproduce`` before it adds rows to a folder."""
    seed = record.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ReportError(f"{path}: 'seed' must be an integer, got {seed!r}")
    return seed


def _seed(results: Results) -> int | None:
    """The training seed of a results folder; None without a reproduce.json."""
    if results.reproduce is None:
        return None
    return record_seed(results.reproduce, results.folder / "reproduce.json")


def _seed_label(results: Results) -> str:
    seed = _seed(results)
    return f"seed {seed}" if seed is not None else f"`{results.folder}`"


def load_seeds(folders: Sequence[str | os.PathLike]) -> tuple[Results, ...]:
    """Reads one results folder per seed and checks that they can be compared: distinct folders and seeds, and
    the same test tracks (their input mixtures agree, as they must when only the training seed differs)."""
    if len(folders) < 2:
        raise ReportError(f"claims across seeds need at least two results folders, got {len(folders)}")
    runs = tuple(load_results(folder) for folder in folders)
    seen: dict[Any, Results] = {}
    for run in runs:
        for key in (("folder", run.folder.resolve()), ("seed", _seed(run))):
            if key[1] is None:
                continue
            if key in seen:
                raise ReportError(f"{seen[key].folder} and {run.folder} are the same {key[0]} ({key[1]}): give one "
                                  "results folder per seed (scoresep reproduce --seed N --out results/seedN)")
            seen[key] = run
    first = runs[0]
    for run in runs[1:]:
        if first.input_mixture is None or run.input_mixture is None:
            continue
        for name, value in run.input_mixture.items():
            if name in first.input_mixture and not _same(first.input_mixture[name], value):
                raise ReportError(f"input_si_sdr of {name} differs between {first.input_source} "
                                  f"({first.input_mixture[name]}) and {run.input_source} ({value}): the seeds were "
                                  "evaluated on different test tracks")
    return runs


def claims_across_seeds(runs: Sequence[Results]) -> tuple[Claim, ...]:
    """Every paired difference ``table1_differences`` computes in any of the runs, with each run's difference
    (None where that run lacks one of the two rows), in the order of ``DIFFERENCE_CHAIN``."""
    def key(difference: Difference) -> tuple[str, str]:
        return tuple(BEST_STAGE3 if row in STAGE3_ROWS else row for row in (difference.first, difference.second))

    per_run = [{key(difference): difference for difference in table1_differences(run)} for run in runs]
    keys = sorted({pair for found in per_run for pair in found},
                  key=lambda pair: (DIFFERENCE_CHAIN.index(pair[0]), DIFFERENCE_CHAIN.index(pair[1])))
    return tuple(Claim(*pair, tuple(found.get(pair) for found in per_run)) for pair in keys)


def _claim_cell(difference: Difference | None, label: str, run: Results, first: str, second: str) -> str:
    """One seed's part of a claim line: its difference and interval, and which step-3 row it used."""
    if difference is None:
        return f"{label}: not measured (a row has no separation results)"
    if difference.mean is None:
        return f"{label}: {NO_INTERVAL} (no common track)"
    text = f"{label}: {_signed(difference.mean)} dB"
    if difference.instruments and difference.instruments != run.instruments:
        text += f" ({', '.join(difference.instruments)} only)"
    if difference.half_width is None:
        text += f", {NO_INTERVAL} (fewer than 2 tracks)"
    else:
        text += (f" [{_signed(difference.mean - difference.half_width)}, "
                 f"{_signed(difference.mean + difference.half_width)}]")
    rows = [f"`{row}`" for row, claimed in ((difference.first, first), (difference.second, second))
            if claimed == BEST_STAGE3]
    return text + (f" ({rows[0]})" if rows else "") + _score_readers(run, difference)


def _claim_name(row: str) -> str:
    return "the best step-3 row" if row == BEST_STAGE3 else f"`{row}`"


def seeds_markdown(runs: Sequence[Results]) -> str:
    """The page ``render_seeds`` writes: the folders and their seeds, then one line per claim."""
    lines = [f"# {SEEDS_TITLE}", "",
             "Each claim is a paired difference of Table 1's avg column (the rows in the order the paper expects, "
             "paired over the test tracks, as under each report's Table 1), measured in each seed's results "
             "folder; it holds in a seed when the 95 % interval of its difference lies above 0.", ""]
    lines += [f"- {_seed_label(run)}: `{run.folder}`" for run in runs]
    lines.append("")
    claims = claims_across_seeds(runs)
    if not claims:
        lines.append("No folder has two of these rows with separation results: nothing to compare yet.")
    for claim in claims:
        cells = [_claim_cell(difference, _seed_label(run), run, claim.first, claim.second)
                 for difference, run in zip(claim.differences, runs, strict=True)]
        lines.append(f"- {_claim_name(claim.first)} > {_claim_name(claim.second)}: {'; '.join(cells)}: holds in "
                     f"{claim.holds}/{len(runs)} seeds")
    return "\n".join(lines) + "\n"


def render_seeds(folders: Sequence[str | os.PathLike]) -> Path:
    """Writes ``seeds.md`` (``seeds_markdown``) into the first of ``folders``, one results folder per seed, and
    returns its path. Each folder's own report is ``render_report``'s."""
    runs = load_seeds(folders)
    path = runs[0].folder / SEEDS_FILE
    data = seeds_markdown(runs).encode("utf-8")
    atomic_write_bytes(path, lambda stream: stream.write(data))
    return path


# ----------------------------------------------------------------------------------------------- CSV, chart


def _csv_text(table: Table) -> str:
    """The table as CSV: row id, text columns, ours per column, (with intervals) the half-width of ours per column
    (``<name>_ci95``), the paper's per column (``<name>_paper``), then ours and the paper's per percentage column
    (``gap_closed``, ``gap_closed_paper``, ...; in percent), the evaluation file; an empty cell is an undefined
    number, no interval, or a row that has not run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    widths = tuple(f"{name}_ci95" for name in table.columns) if table.intervals else ()
    gaps = tuple(name.replace(" ", "_") for name in table.gaps)
    writer.writerow(["row", *table.label_header, *table.columns, *widths, *(f"{name}_paper" for name in table.columns),
                     *gaps, *(f"{name}_paper" for name in gaps), "source"])
    for row in table.rows:
        numbers = row.ours + (row.half_widths if table.intervals else ()) + row.paper + row.gaps + row.gaps_paper
        writer.writerow([row.row, *row.labels, *("" if value is None else value for value in numbers),
                         row.source.name if row.source else ""])
    return buffer.getvalue()


def _chart_png(results: Results) -> bytes:
    """Grouped bars: one group per Table-1 row with numbers, one bar per instrument + avg; paper values as ticks.

    Uses matplotlib's object API with the Agg canvas (imported here, not at module load), so it works headless
    and neither needs nor changes pyplot's global backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = _table1(results)
    groups = [row for row in table.rows if row.source is not None and any(v is not None for v in row.ours)]
    figure = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2.0), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / len(table.columns)
    offsets = [[group + (index - (len(table.columns) - 1) / 2) * width for group in range(len(groups))]
               for index in range(len(table.columns))]
    for index, name in enumerate(table.columns):
        axes.bar(offsets[index], [_nan(row.ours[index]) for row in groups], width, label=name)
    for index in range(len(table.columns)):
        axes.scatter(offsets[index], [_nan(row.paper[index]) for row in groups], marker="_", s=120, color="black",
                     zorder=3, label="paper" if index == 0 else None)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xticks(range(len(groups)), [_chart_label(row) for row in groups], rotation=30, ha="right")
    axes.set_xlabel("training (Table 1 row)")
    axes.set_ylabel("SI-SDR (dB)")
    axes.set_title(f"Separation: SI-SDR per row and instrument ({results.split} split)")
    if groups:
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        axes.text(0.5, 0.5, "no separation results yet", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _nan(value: float | None) -> float:
    """Undefined values become NaN, which matplotlib leaves out (no bar, no tick)."""
    return math.nan if value is None else value


def _chart_label(row: TableRow) -> str:
    """Short x label of a Table-1 row: the paper's label plus its loss marks."""
    flags = [flag.removeprefix("L_") for flag, mark in zip(LOSS_FLAGS, row.labels[1:], strict=True) if mark]
    label = row.labels[0].replace(" fine-tune", "").replace(" classifier critic", "")
    return f"{label} ({'+'.join(flags)})" if flags else label


def render_report(results_dir: str | os.PathLike) -> dict[str, Path]:
    """Reads results_dir/evaluations/*.json (+ optional results_dir/reproduce.json); writes results_dir/report.md,
    results_dir/table1_separation.csv, results_dir/table2_transcription.csv, results_dir/si_sdr.png; returns
    {"markdown": ..., "table1": ..., "table2": ..., "chart": ...}. Every file written atomically (temp file in the
    same folder + os.replace).

    Everything is computed before the first file is written, so invalid input leaves earlier reports untouched.
    """
    results = load_results(results_dir)
    outputs = {
        "markdown": (results.folder / "report.md", _report_markdown(results).encode("utf-8")),
        "table1": (results.folder / "table1_separation.csv", _csv_text(_table1(results)).encode("utf-8")),
        "table2": (results.folder / "table2_transcription.csv", _csv_text(_table2(results)).encode("utf-8")),
        "chart": (results.folder / "si_sdr.png", _chart_png(results)),
    }
    for path, data in outputs.values():
        atomic_write_bytes(path, lambda stream, data=data: stream.write(data))
    return {key: path for key, (path, _) in outputs.items()}
