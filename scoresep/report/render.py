"""``render_report``: writes a results folder's report.md, table1_separation.csv / table2_transcription.csv (empty
cell = undefined or not run; Table 1 adds ``<column>_ci95``, the half-width of our number's interval) and
si_sdr.png (grouped bars of SI-SDR per Table-1 row and instrument, the paper's values as ticks); the CSV text and
the chart are rendered here, report.md's text by ``markdown``.

Everything is computed before the first file is written and every file is written atomically, so invalid input
or an interrupted render never leaves a truncated or half-updated report. matplotlib is imported inside
``_chart_png``, not at module load, so importing the report (``scoresep reproduce``, the CLI) does not load it.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from scoresep.fileio import atomic_write_bytes
from scoresep.report.markdown import _report_markdown
from scoresep.report.paper import LOSS_FLAGS
from scoresep.report.results import Results, load_results
from scoresep.report.tables import Table, TableRow, _table1, _table2


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
