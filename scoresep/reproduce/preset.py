"""Reading and checking a preset (``experiments/reproduce/<name>.yaml`` or any YAML path): ``load_preset`` returns
a ``Preset`` of ``Row``s in which every key is known, every experiment YAML exists, every input checkpoint names a
row of the preset and the rows need each other in no cycle (``order_rows``); ``ReproduceError``, the error of
every ``scoresep reproduce`` module, is defined here.

Why all checks here, before anything runs: a preset's mistake (a misspelt key, a row that takes its checkpoint
from a row that is not there) found hours into a run would waste the rows trained before it, so it is refused at
once with the file and the row named. A preset's ``precision: auto`` is resolved for this machine as it is read
(``hardware.resolve_precision``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scoresep.configs import PROJECT_ROOT
from scoresep.errors import UserError
from scoresep.report import EVALUATED_ROWS as PAPER_ROWS
from scoresep.reproduce.hardware import resolve_precision

PRESET_KEYS = {"description", "data", "overrides", "synth", "parallel", "precision", "evaluate", "rows"}
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")  # the ones every stage supports (docs/clusters.md)
ROW_KEYS = {"config", "overrides", "checkpoints", "evaluate", "reference", "beyond_paper"}
REFERENCES = ("score_masks",)  # rows with nothing to train (see Row.reference)


class ReproduceError(UserError, ValueError):
    """A preset or a results folder cannot be used; the message names the file and the problem."""


@dataclass
class Row:
    """One table row: an experiment YAML, overrides merged into it, and input checkpoints from other rows."""

    name: str
    config: Path | None  # None for a reference row
    overrides: dict = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)  # model init arg -> row whose best.ckpt it takes
    evaluate: bool = True
    reference: str | None = None  # "score_masks": nothing to train, only `scoresep evaluate --score-masks`
    beyond_paper: bool = False  # not a row of the paper's tables: the report lists it after them, without paper numbers


@dataclass
class Preset:
    path: Path
    data: dict
    overrides: dict
    synth: dict | None
    parallel: int
    evaluate: dict
    rows: dict[str, Row]
    precision: str | None = None  # resolved (never "auto"); None: each experiment YAML's own
    seed: int = 0  # every row's training seed (see the package docstring); not the dataset's synth seed


def find_file(name: str | os.PathLike, what: str) -> Path:
    """A path as given (relative to the working folder) or else relative to the project's folder."""
    for candidate in (Path(name), PROJECT_ROOT / name):
        if candidate.is_file():
            return candidate.resolve()
    raise ReproduceError(f"{name}: {what} not found (looked in {Path.cwd()} and {PROJECT_ROOT})")


def load_preset(name_or_path: str) -> Preset:
    """Read and check a preset: ``mini``/``paper`` (``experiments/reproduce/<name>.yaml``) or a YAML path."""
    is_name = not name_or_path.endswith((".yaml", ".yml"))
    path = find_file(f"experiments/reproduce/{name_or_path}.yaml" if is_name else name_or_path, "preset")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ReproduceError(f"{path}: not valid YAML ({error})") from error
    if unknown := set(raw) - PRESET_KEYS:
        raise ReproduceError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(PRESET_KEYS)}")
    rows: dict[str, Row] = {}
    for name, spec in (raw.get("rows") or {}).items():
        if unknown := set(spec or {}) - ROW_KEYS:
            raise ReproduceError(f"{path}: row {name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ROW_KEYS)}")
        spec = spec or {}
        reference = spec.get("reference")
        if reference is not None:
            if reference not in REFERENCES:
                raise ReproduceError(f"{path}: row {name}: reference {reference!r} is not one of {list(REFERENCES)}")
            if extra := set(spec) - {"reference"}:
                raise ReproduceError(f"{path}: row {name} is a reference (nothing to train); it takes no "
                                     f"{sorted(extra)}")
            rows[name] = Row(name, None, reference=reference)
            continue
        if "config" not in spec:
            raise ReproduceError(f"{path}: row {name} names no experiment 'config'")
        beyond_paper = spec.get("beyond_paper", False)
        if not isinstance(beyond_paper, bool):
            raise ReproduceError(f"{path}: row {name}: beyond_paper must be true or false, got {beyond_paper!r}")
        if beyond_paper and name in PAPER_ROWS:
            raise ReproduceError(f"{path}: row {name} is a row of the paper's tables; it cannot be beyond_paper "
                                 "(give the row another name)")
        rows[name] = Row(name, find_file(spec["config"], f"experiment YAML of row {name}"),
                         spec.get("overrides") or {}, spec.get("checkpoints") or {}, spec.get("evaluate", True),
                         beyond_paper=beyond_paper)
    if not rows:
        raise ReproduceError(f"{path}: no rows")
    for row in rows.values():
        for argument, needed in row.checkpoints.items():
            if needed not in rows:
                raise ReproduceError(f"{path}: row {row.name} takes {argument} from row {needed!r}, which the "
                                     f"preset does not have")
    order_rows(rows, path)
    parallel = int(raw.get("parallel", 1))
    if parallel < 1:
        raise ReproduceError(f"{path}: parallel must be >= 1, got {parallel}")
    precision = raw.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        raise ReproduceError(f"{path}: precision {precision!r} is not one of {list(PRECISIONS)}")
    return Preset(path, raw.get("data") or {}, raw.get("overrides") or {}, raw.get("synth"), parallel,
                  raw.get("evaluate") or {}, rows, None if precision is None else resolve_precision(str(precision)))


def order_rows(rows: dict[str, Row], path: Path | str = "preset") -> list[str]:
    """Rows in an order where every row comes after the rows it needs (ReproduceError on a cycle)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ReproduceError(f"{path}: rows need each other in a cycle (at {name})")
        visiting.add(name)
        for needed in rows[name].checkpoints.values():
            visit(needed)
        visiting.discard(name)
        ordered.append(name)

    for name in rows:
        visit(name)
    return ordered
