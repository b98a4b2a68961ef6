"""Helpers shared by the stages: feature checks against the data module, result tables."""

from __future__ import annotations

import math

import pytorch_lightning as pl

from scoresep.checkpoints import FeatureSettings


def check_datamodule_features(module: pl.LightningModule, features: FeatureSettings) -> None:
    """Stop at start when the trainer's data module was configured with other feature settings."""
    datamodule = getattr(module.trainer, "datamodule", None)
    settings = getattr(datamodule, "settings", None)
    if settings is None:
        return
    data_features = FeatureSettings(tuple(settings.instruments), settings.sample_rate, datamodule.hparams.n_fft,
                                    settings.hop_length, settings.min_midi, settings.max_midi)
    if problems := features.mismatches(data_features, "model", "data"):
        raise ValueError(f"{type(module).__name__} and the data module disagree: {'; '.join(problems)}")


def evaluation_table(results: dict[str, float], prefix: str, instruments: tuple[str, ...]) -> str:
    """Markdown table of per-instrument results: one row per metric key, one column per instrument."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == prefix and parts[3] in instruments:
            rows.setdefault("/".join(parts[1:3]), {})[parts[3]] = value
    header = "| metric | " + " | ".join(instruments) + " |"
    lines = [header, "|---" * (len(instruments) + 1) + "|"]
    for name, values in rows.items():
        cells = [("n/a" if math.isnan(v) else f"{v:.3f}") if (v := values.get(i)) is not None else "" for i in
                 instruments]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
