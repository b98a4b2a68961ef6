"""Supervised loss of the upper bound: separated spectrograms against the true source magnitudes."""

from __future__ import annotations

from typing import Literal

import torch

from scoresep.errors import SettingsError
from scoresep.score.shapes import check_same_shape, check_shape


def supervised_loss(separated: torch.Tensor, sources: torch.Tensor, kind: Literal["l1", "mse"] = "l1") -> torch.Tensor:
    """Mean L1 (or squared) error between ``S_i`` and ``|STFT(source_i)|`` per batch item.

    Shape:
        separated, sources: ``(batch, instrument, freq, frame)``
        returns: ``(batch,)``
    """
    check_shape("supervised_loss separated", separated, "batch, instrument, freq, frame")
    check_same_shape("supervised_loss: sources", sources, "separated", separated, "batch, instrument, freq, frame")
    error = separated - sources
    if kind == "l1":
        return error.abs().flatten(1).mean(1)
    if kind == "mse":
        return error.pow(2).flatten(1).mean(1)
    raise SettingsError(f"supervised_loss: kind must be 'l1' or 'mse', got {kind!r}")
