"""The checks of a stage's numeric arguments at the door (finite, >= 0, > 0), named in the error, and the
optimiser every stage builds from its ``lr``/``weight_decay``/``scheduler`` arguments."""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch

from scoresep.errors import SettingsError

log = logging.getLogger(__name__)


def check_numbers(where: str, finite: dict[str, float] | None = None, nonnegative: dict[str, float] | None = None,
                  positive: dict[str, float] | None = None) -> None:
    """Refuse a stage setting at the door, naming the argument and its value (ValueError): every value must be a
    finite number (a NaN loss weight or learning rate would train on NaN until ``max_nonfinite_steps`` stops the
    run), ``nonnegative`` ones >= 0 and ``positive`` ones (learning rates) > 0. Loss weights go in ``finite``:
    their sign is checked with the loss terms (``losses.terms.separator_terms``)."""
    groups = (finite or {}, nonnegative or {}, positive or {})
    for name, value in (item for group in groups for item in group.items()):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise SettingsError(f"{where}: {name} must be a finite number, got {value}")
    for name, value in groups[1].items():
        if value < 0:
            raise SettingsError(f"{where}: {name} must be >= 0, got {value}")
    for name, value in groups[2].items():
        if value <= 0:
            raise SettingsError(f"{where}: {name} must be > 0, got {value}")


def adamw(module: pl.LightningModule, parameters, lr: float, weight_decay: float, scheduler: str):
    """AdamW over ``parameters``, with a per-step cosine decay to 0 over the run when ``scheduler='cosine'``."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if scheduler == "none":
        return optimizer
    steps = max(1, int(module.trainer.estimated_stepping_batches))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
