"""Claims across seeds: ``render_seeds`` reads several results folders, one per training seed (``scoresep reproduce
--seed N``), and writes ``seeds.md`` into the first: for each paired difference under Table 1, each seed's
difference with its interval and in how many seeds it holds (interval above 0), since one seed's ranking can be
luck of that seed. ``record_seed`` reads and checks the seed of a run record, for this page and for ``scoresep
reproduce``.

Apart from the single-folder report because it compares folders: it checks that they are distinct runs on the
same test tracks, then reuses ``table1_differences`` per folder and the Markdown's difference formatting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoresep.fileio import atomic_write_bytes
from scoresep.report.intervals import Difference
from scoresep.report.markdown import NO_INTERVAL, _score_readers, _signed
from scoresep.report.paper import BEST_STAGE3, DIFFERENCE_CHAIN, STAGE3_ROWS
from scoresep.report.results import ReportError, Results, _same, load_results
from scoresep.report.tables import table1_differences

SEEDS_FILE = "seeds.md"
SEEDS_TITLE = "Claims across seeds"


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
