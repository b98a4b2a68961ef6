"""Composed experiment configs: the blocks every experiment shares live once under ``experiments/base/``.

``experiments/base/data.yaml`` holds the ``data:`` block (dataset, cache, feature settings, crops) that every
experiment trains on. ``scoresep fit|validate|test|predict`` read it first (jsonargparse's
``default_config_files``), then the experiment's ``--config``, which keeps only what differs, then the command
line; the ``config.yaml`` a run saves holds the merged whole. ``load_experiment`` composes a file the same way
for code that reads experiment YAMLs itself (``scoresep reproduce``).
"""

from __future__ import annotations

import copy
import glob
import os
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BASE_CONFIGS = (PROJECT_ROOT / "experiments" / "base" / "data.yaml",)


def base_config_files() -> list[str]:
    """The shared config files that exist here (a checkout has them; a wheel without experiments/ has none, and
    the DataModule's defaults, which a test keeps equal to them, apply)."""
    return [glob.escape(str(path)) for path in BASE_CONFIGS if path.is_file()]  # jsonargparse globs them


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in (nested dicts merged key by key, anything else replaced).

    A dict naming another ``class_path`` than the one it overrides replaces it whole, as LightningCLI does: the
    old class's ``init_args`` mean nothing to the new class."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        switches_class = (isinstance(value, dict) and isinstance(merged.get(key), dict) and "class_path" in value
                          and value["class_path"] != merged[key].get("class_path"))
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not switches_class:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_experiment(path: str | os.PathLike) -> dict:
    """An experiment YAML composed as the CLI composes it: the base files, then the experiment's own keys."""
    config: dict = {}
    for base in BASE_CONFIGS:
        if base.is_file():
            config = deep_merge(config, yaml.safe_load(base.read_text()) or {})
    return deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
