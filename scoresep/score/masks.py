"""The score's own separation: a bin that ``n`` sounding instruments' harmonic masks cover is split equally
between them, ``H_i / max(1, sum_j H_j)``, and a bin no note explains goes to no instrument.

As a separator it needs no training (``scoresep separate --score``, the ``score_masks`` row of Table 1); as a
target (``L_score-target``) the separator learns to do it from the audio alone. With a learned mask ``M_i`` the
score restricts it instead: ``M_i * H_i``.
"""

from __future__ import annotations

import torch

from scoresep.score.harmonics import harmonic_mask
from scoresep.score.shapes import check_shape


def shared_masks(harmonic: torch.Tensor, dim: int) -> torch.Tensor:
    """``H_i / max(1, sum_j H_j)`` of 0/1 harmonic masks, the instruments along ``dim``: they sum to 1 where any
    mask covers a bin, else 0."""
    return harmonic / harmonic.sum(dim=dim, keepdim=True).clamp_min(1.0)


def score_masks(rolls: torch.Tensor, templates: torch.Tensor, learned: torch.Tensor | None = None) -> torch.Tensor:
    """Masks ``(instrument, freq, frame)`` from a score's rolls ``(instrument, pitch, frame)``.

    Without ``learned``: the harmonic masks, each bin shared equally by the instruments that cover it (they sum to
    1 where any covers it, else 0). With ``learned`` ``(instrument, freq, frame)``: ``learned * H``.
    """
    check_shape("score_masks rolls", rolls, "instrument, pitch, frame", pitch=templates.shape[0])
    harmonic = harmonic_mask(rolls[None], templates)[0]
    if learned is not None:
        check_shape("score_masks learned", learned, "instrument, freq, frame", instrument=harmonic.shape[0],
                    freq=harmonic.shape[1], frame=harmonic.shape[2])
        return learned * harmonic
    return shared_masks(harmonic, dim=0)


def score_separation(mixture: torch.Tensor, harmonic: torch.Tensor) -> torch.Tensor:
    """The score's separation ``H_i / max(1, sum_j H_j) * X``: each bin split equally between the instruments
    whose harmonic masks cover it; a bin no note explains goes to no instrument.

    Shape:
        mixture: ``(batch, freq, frame)``; harmonic: ``(batch, instrument, freq, frame)`` of 0/1
        returns: ``(batch, instrument, freq, frame)``
    """
    check_shape("score_separation harmonic", harmonic, "batch, instrument, freq, frame")
    batch, _, bins, frames = harmonic.shape
    check_shape("score_separation mixture", mixture, "batch, freq, frame", batch=batch, freq=bins, frame=frames)
    return shared_masks(harmonic, dim=1) * mixture[:, None]
