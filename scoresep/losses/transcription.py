"""The transcription BCE, written once: stage 1's loss, ``L_score``, ``L_tr`` and both sides of AML and ATL all
compare a transcriptor's note logits with a piano roll through ``note_bce``."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from scoresep.errors import SettingsError
from scoresep.score.shapes import check_shape


def note_bce(logits: torch.Tensor, rolls: torch.Tensor, pos_weight: float = 1.0,
             reduction: Literal["item", "all"] = "item") -> torch.Tensor:
    """Binary cross-entropy of note ``logits`` against ``rolls`` (0/1), note cells weighted ``pos_weight`` (notes
    fill 1-2 % of a roll; unweighted, silence wins). Computed in fp32 whatever the logits' precision.

    ``reduction``: ``item`` averages over (instrument, pitch, frame) for one value per batch item; ``all`` is one
    mean over every cell (stage 1's training loss, whose batch mixes mixtures and stems).

    Shape: logits, rolls ``(batch, instrument, pitch, frame)`` (pitch 1: activity labels) -> ``(batch,)`` or ``()``.
    """
    check_shape("note_bce logits", logits, "batch, instrument, pitch, frame")
    if rolls.shape != logits.shape:
        raise SettingsError(f"note_bce rolls: expected shape {tuple(logits.shape)} (the logits'), got "
                            f"{tuple(rolls.shape)}")
    logits = logits.float()
    weight = torch.tensor(pos_weight, device=logits.device, dtype=torch.float32)
    if reduction == "all":
        return F.binary_cross_entropy_with_logits(logits, rolls.float(), pos_weight=weight)
    if reduction != "item":
        raise SettingsError(f"note_bce: reduction must be 'item' or 'all', got {reduction!r}")
    loss = F.binary_cross_entropy_with_logits(logits, rolls.float(), pos_weight=weight, reduction="none")
    return loss.flatten(1).mean(1)


def transcription_bce(transcriptor: nn.Module, spectrogram: torch.Tensor, rolls: torch.Tensor,
                      pos_weight: float = 1.0) -> torch.Tensor:
    """``BCE(T(X), Y)`` per batch item, averaged over (instrument, pitch, frame).

    Shape: spectrogram ``(batch, freq, frame)``, rolls ``(batch, instrument, pitch, frame)`` -> ``(batch,)``.
    """
    check_shape("transcription_bce spectrogram", spectrogram, "batch, freq, frame")
    check_shape("transcription_bce rolls", rolls, "batch, instrument, pitch, frame", batch=spectrogram.shape[0],
                frame=spectrogram.shape[2])
    logits = transcriptor(spectrogram)
    if logits.shape != rolls.shape:
        raise SettingsError(f"transcription_bce: transcriptor output {tuple(logits.shape)} does not match the rolls "
                            f"{tuple(rolls.shape)}")
    return note_bce(logits, rolls, pos_weight)
