"""What a transcriptor learns from a score: the piano rolls per instrument, their frame-level activity (the
baseline's classifier), and the roll each separated instrument should be transcribed as (``L_score``)."""

from __future__ import annotations

import torch


def activity_target(rolls: torch.Tensor) -> torch.Tensor:
    """Frame-level instrument activity ``(B, I, 1, N)`` from piano rolls ``(B, I, P, N)`` (max over pitch): the
    target of the baseline's activity classifier, whether it trains (stage 1) or judges (stage 2)."""
    return rolls.amax(dim=2, keepdim=True)


def isolated_targets(rolls: torch.Tensor) -> torch.Tensor:
    """For each instrument ``i`` the roll ``Y^(i)``: channel ``i`` holds ``Y_i``, every other channel zeros.

    Shape: ``(batch, instrument, pitch, frame)`` -> ``(batch, instrument(i), instrument(channel), pitch, frame)``.
    """
    eye = torch.eye(rolls.shape[1], device=rolls.device, dtype=rolls.dtype)
    return eye[None, :, :, None, None] * rolls[:, None]
