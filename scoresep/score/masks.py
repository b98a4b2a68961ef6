"""The score's own separation: a bin that ``n`` sounding instruments' harmonic masks cover is split equally
between them, ``H_i / max(1, sum_j H_j)``, and a bin no note explains goes to no instrument.

As a separator it needs no training (``scoresep separate --score``, the ``score_masks`` row of Table 1); as a
target (``L_score-target``) the separator learns to do it from the audio alone.

With the masks ``M_i`` of a separator that hears only the audio (``separate --score --ckpt``), the score keeps its
say over which bins belong to which instruments, and the learned masks only split the bins that several
instruments' harmonics cover: ``learned_split``, weighted against the equal split by ``learned_weight``
(``combined_masks``). Measured on mini-Slakh (docs/results.md "Audio-only checkpoints with the score"): a learned
split alone is 0.2-0.4 dB below the equal split for every score-supervised checkpoint and 1.5 dB above it for a
supervised one; restricting the learned masks to the harmonics (``M_i * H_i``) cost a stage-3 checkpoint 1.1 dB.
"""

from __future__ import annotations

import torch

from scoresep.constants import LEARNED_WEIGHT
from scoresep.errors import SettingsError
from scoresep.score.harmonics import harmonic_mask
from scoresep.score.shapes import check_same_shape, check_shape


def shared_masks(harmonic: torch.Tensor, dim: int) -> torch.Tensor:
    """``H_i / max(1, sum_j H_j)`` of 0/1 harmonic masks, the instruments along ``dim``: they sum to 1 where any
    mask covers a bin, else 0."""
    return harmonic / harmonic.sum(dim=dim, keepdim=True).clamp_min(1.0)


def learned_split(harmonic: torch.Tensor, learned: torch.Tensor, dim: int) -> torch.Tensor:
    """The bins the harmonic masks cover, split in proportion to the learned masks: ``H_i M_i / sum_j H_j M_j``.

    A bin one instrument covers is that instrument's whole (as in ``shared_masks``), a bin none covers nobody's;
    only a bin that several cover is split by ``learned``, equally where the learned masks are all 0 there. The
    masks sum to 1 where any instrument covers a bin, else 0.

    Shape: ``harmonic`` (0/1) and ``learned`` (in [0, 1]) alike, the instruments along ``dim``; returns the same.
    """
    check_same_shape("learned_split: learned", learned, "harmonic", harmonic, "instruments along dim")
    weights = harmonic * (learned.clamp(0.0, 1.0) + 1e-6)
    covered = harmonic.amax(dim=dim, keepdim=True)
    return weights / weights.sum(dim=dim, keepdim=True).clamp_min(1e-12) * covered


def check_learned_weight(learned_weight: float) -> None:
    """SettingsError unless ``learned_weight`` is in [0, 1]."""
    if not 0.0 <= learned_weight <= 1.0:
        raise SettingsError(f"learned_weight must be in [0, 1], got {learned_weight}")


def combined_masks(harmonic: torch.Tensor, learned: torch.Tensor, learned_weight: float = LEARNED_WEIGHT,
                   dim: int = 0) -> torch.Tensor:
    """An audio-only separator's masks combined with a score: ``(1 - w) shared_masks + w learned_split``.

    ``learned_weight`` ``w`` in [0, 1]: 0 is the score's masks alone, 1 the learned split of the shared bins. Either
    way a bin belongs only to instruments whose notes cover it, and the masks sum to 1 where any does.

    Shape: ``harmonic`` and ``learned`` alike, the instruments along ``dim``; returns the same.
    """
    check_learned_weight(learned_weight)
    equal = shared_masks(harmonic, dim)
    if learned_weight == 0.0:
        return equal
    return (1.0 - learned_weight) * equal + learned_weight * learned_split(harmonic, learned, dim)


def score_masks(rolls: torch.Tensor, templates: torch.Tensor, learned: torch.Tensor | None = None,
                learned_weight: float = LEARNED_WEIGHT) -> torch.Tensor:
    """Masks ``(instrument, freq, frame)`` from a score's rolls ``(instrument, pitch, frame)``.

    Without ``learned``: the harmonic masks, each bin shared equally by the instruments that cover it (they sum to
    1 where any covers it, else 0). With ``learned`` ``(instrument, freq, frame)``, an audio-only separator's
    masks: ``combined_masks`` with ``learned_weight``.
    """
    check_shape("score_masks rolls", rolls, "instrument, pitch, frame", pitch=templates.shape[0])
    harmonic = harmonic_mask(rolls[None], templates)[0]
    if learned is not None:
        check_shape("score_masks learned", learned, "instrument, freq, frame", instrument=harmonic.shape[0],
                    freq=harmonic.shape[1], frame=harmonic.shape[2])
        return combined_masks(harmonic, learned, learned_weight, dim=0)
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
