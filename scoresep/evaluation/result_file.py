"""The result file of ``scoresep evaluate``, declared once: its format number, which the report checks before it
reads one (``report/results.py``), and writing it whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scoresep.fileio import atomic_write_text

# Bumped when a result's fields change meaning; the report refuses a format it does not read.
FORMAT = 1


def write_json(path: str | os.PathLike, result: dict) -> Path:
    """Write a result atomically (temp file + rename): a crash never leaves a half-written JSON."""
    text = json.dumps(result, indent=1, allow_nan=False)
    atomic_write_text(path, text)
    return Path(path)
