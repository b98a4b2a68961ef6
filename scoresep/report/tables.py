"""The two tables as data, before any rendering: ``Table`` / ``TableRow`` with our numbers beside the paper's, Table
1's interval half-widths and "gap closed" columns (ours and the paper's), and the paired differences between Table
1's main rows in the order the paper expects them (``table1_differences``).

Why as data: report.md, the two CSVs, the chart and seeds.md show the same numbers; computing them once here, with
the renderers only formatting them, keeps the outputs from disagreeing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from scoresep.report.intervals import Difference, _average_interval, _instrument_interval, average_difference
from scoresep.report.paper import (
    BEST_STAGE3,
    DIFFERENCE_CHAIN,
    INPUT_MIXTURE,
    LOSS_FLAGS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    READS_SCORE,
    STAGE3_ROWS,
    TABLE1_ROWS,
    TABLE2_ROWS,
    TRANSCRIPTION_SETS,
    RowSpec,
)
from scoresep.report.results import Results, TrackValues

AVERAGE = "avg"
SUPERVISED = "supervised"  # the upper bound of "gap closed"
GAP_INSTRUMENT = "guitar"  # the instrument with its own "gap closed" column: the paper's hardest
GAP_COLUMNS = ("gap closed", f"{GAP_INSTRUMENT} gap closed")


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
