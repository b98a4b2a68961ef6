"""report.md as text: the run header from ``reproduce.json``, the two captioned tables in the paper's layout (each
column of ours beside its "(paper)" column, Table 1's cells ``mean ± h``), the section under Table 1 that says which
differences between the main rows are inside the noise, the legend and the chart's line.

Formatting only: the numbers come from ``tables``. ``markdown_tables`` gives just the captioned tables, e.g. to
paste into a README; ``seeds`` reuses the difference formatting (``_signed``, ``_score_readers``, ``NO_INTERVAL``).
"""

from __future__ import annotations

import math
import os
from typing import Any

from scoresep.report.intervals import Difference
from scoresep.report.paper import BEYOND_PAPER, EVALUATED_ROWS, READS_SCORE, ROW_LABELS
from scoresep.report.results import Results, load_results
from scoresep.report.tables import (
    GAP_INSTRUMENT,
    Table,
    TableRow,
    _best_stage3,
    _reads_score,
    _table1,
    _table2,
    table1_differences,
)

MISSING = "—"  # undefined number (null) or a section the evaluation does not contain
NOT_RUN = "not run"  # no evaluation file for the row
NO_INTERVAL = "n/a"  # fewer than 2 tracks: no interval
DIFFERENCES_TITLE = "Which differences are inside the noise"
TABLE1_TITLE = "Table 1: separation, SI-SDR (dB), {split} split, whole tracks"
TABLE2_TITLE = "Table 2: transcription, note accuracy, {split} split"
CHART_LINE = "![SI-SDR per row and instrument](si_sdr.png)"


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
