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

One module per job, each importing only modules listed before it: ``paper`` (the paper's rows, marks and
numbers), ``results`` (reading and validating a results folder; ``ReportError``), ``intervals`` (Student-t
intervals and paired differences over tracks, and why intervals at all), ``tables`` (the two tables as data, gap
closed, Table 1's paired differences), ``markdown`` (report.md's text), ``render`` (the CSVs, the chart,
``render_report``), ``seeds`` (seeds.md, ``record_seed``). This file only re-exports what other code imports.
"""

from scoresep.report.intervals import Difference, average_difference, mean_interval, paired_difference
from scoresep.report.markdown import markdown_tables
from scoresep.report.paper import EVALUATED_ROWS
from scoresep.report.render import render_report
from scoresep.report.results import Evaluation, ReportError, Results, config_loss_flags, load_results
from scoresep.report.seeds import Claim, claims_across_seeds, load_seeds, record_seed, render_seeds, seeds_markdown
from scoresep.report.tables import gap_closed, table1_differences

__all__ = ["EVALUATED_ROWS", "Claim", "Difference", "Evaluation", "ReportError", "Results", "average_difference",
           "claims_across_seeds", "config_loss_flags", "gap_closed", "load_results", "load_seeds", "markdown_tables",
           "mean_interval", "paired_difference", "record_seed", "render_report", "render_seeds", "seeds_markdown",
           "table1_differences"]
