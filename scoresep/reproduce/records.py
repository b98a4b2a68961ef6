"""``<out>/reproduce.json``, the record of a run: ``_write_summary`` writes it (preset, machine, seed, precision,
each row's status and minutes), ``recorded_seed`` reads back which training seed a results folder holds, and
``seed_folder`` says where another seed's results go by convention.

Why a record at all: the report reads the rows' minutes and the machine from it, and a results folder holds one
seed, so a run with another seed must be refused there before it mixes two trainings into one table. The summary
is rewritten (atomically, ``_write_json``) on every turn of the scheduler, so an interrupted run still leaves the
status of every row it finished.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from scoresep.fileio import atomic_write_text
from scoresep.report import ReportError, record_seed
from scoresep.reproduce.hardware import machine_description
from scoresep.reproduce.preset import Preset, ReproduceError


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    atomic_write_text(path, text)


def recorded_seed(summary_path: Path) -> int | None:
    """The seed a results folder was trained with, from its ``reproduce.json``: None when there is none yet, 0
    for a run from before ``--seed`` existed (the experiment YAMLs' own seed)."""
    if not summary_path.is_file():
        return None
    try:
        record = json.loads(summary_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReproduceError(f"{summary_path}: unreadable JSON ({error})") from error
    if not isinstance(record, dict):
        raise ReproduceError(f"{summary_path}: expected a JSON object")
    try:
        return record_seed(record, summary_path)
    except ReportError as error:
        raise ReproduceError(str(error)) from error


def seed_folder(out: Path, seed: int) -> Path:
    """Where another seed's results go by convention: ``results/seed1`` beside seed 0's ``results``, or
    ``results/seed2`` beside ``results/seed1``."""
    return out.parent / f"seed{seed}" if re.fullmatch(r"seed\d+", out.name) else out / f"seed{seed}"


def _write_summary(path: Path, preset: Preset, started_at: str, started: float, status: dict, previous: dict,
                   finished: bool = False) -> dict:
    summary = {
        "preset": preset.path.stem, "preset_file": str(preset.path), "data": str(preset.data.get("root")),
        "machine": machine_description(), "started": started_at, "parallel": preset.parallel,
        "precision": preset.precision, "seed": preset.seed,
        "wall_seconds": time.perf_counter() - started, "rows": {
            name: {**info, "beyond_paper": preset.rows[name].beyond_paper} if name in preset.rows else info
            for name, info in {**previous, **status}.items()},
    }
    if finished:
        summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_json(path, summary)
    return summary
