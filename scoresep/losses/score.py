"""Score loss: the frozen transcriptor is the critic of each separated spectrogram."""

from __future__ import annotations

import torch
from torch import nn

from scoresep.errors import SettingsError
from scoresep.losses.transcription import note_bce
from scoresep.score import check_shape, isolated_targets


def score_loss(transcriptor: nn.Module, separated: torch.Tensor, rolls: torch.Tensor,
               pos_weight: float = 1.0) -> torch.Tensor:
    """``L_score = sum_i BCE(T(S_i), Y^(i))`` per batch item.

    The transcriptor should be frozen by the caller (eval mode, no grad on its parameters); gradients still
    flow through it into ``separated``. ``rolls`` may have one pitch row (activity labels for a classifier
    critic). BCE is averaged over (instrument channel, pitch, frame) and summed over the separated sources.

    Shape:
        separated: ``(batch, instrument, freq, frame)``
        rolls: ``(batch, instrument, pitch, frame)``
        returns: ``(batch,)``
    """
    check_shape("score_loss separated", separated, "batch, instrument, freq, frame")
    batch, n_instruments, _, frames = separated.shape
    check_shape("score_loss rolls", rolls, "batch, instrument, pitch, frame", batch=batch, instrument=n_instruments,
                frame=frames)
    logits = transcriptor(separated.flatten(0, 1)).float()  # (batch * I, I, P, N)
    target = isolated_targets(rolls.float()).flatten(0, 1)
    if logits.shape != target.shape:
        raise SettingsError(f"score_loss: transcriptor output {tuple(logits.shape)} does not match the rolls "
                            f"{tuple(target.shape)} (instruments or pitch rows differ)")
    return note_bce(logits, target, pos_weight).view(batch, n_instruments).sum(1)
