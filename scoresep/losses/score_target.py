"""``L_score-target`` (not in the paper): the separator imitates the score's own separation of the mixture.

The harmonic masks ``H_i`` of the score (the ones ``L_h-mix`` uses) separate a mixture without any training:
instrument ``i`` keeps ``H_i / max(1, sum_j H_j)`` of every bin (``score.masks``; +5.4 dB average
SI-SDRi on the mini-Slakh test songs, reading the test score). That separation is a pseudo-target the separator
can learn from the mixture alone, so that at test time it needs no score: no stem, no critic. Its step costs a
separator forward and backward pass only, about a quarter of a critic step (``benchmarks/train_step.py``), so it
is a cheap warm start before ``L_score`` teaches timbre through the critic (docs/results.md "Learning curves").
"""

from __future__ import annotations

import torch

from scoresep.score import check_same_shape, check_shape, score_separation


def score_target_loss(separated: torch.Tensor, mixture: torch.Tensor, harmonic: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between each ``S_i`` and the score's separation of the mixture, per batch item.

    Squared, not L1: from the mixture alone the separator cannot know the score, so the best it can do is an
    estimate of the target given the audio. The squared error's is the conditional mean (a soft share of each
    bin); L1's is the conditional median, which gives an instrument nothing in every bin where it sounds less
    than half the time. Measured on the validation crops (SI-SDR bass / guitar / piano, dB): L1 after 1,600 steps
    +2.70 / +0.05 / +1.48, the squared error after 200 steps +2.89 / +1.67 / +2.17 (docs/results.md "Learning
    curves").

    Shape:
        separated: ``(batch, instrument, freq, frame)``; mixture: ``(batch, freq, frame)``
        harmonic: like ``separated``, 0/1 (``score.harmonic_mask``)
        returns: ``(batch,)``
    """
    check_shape("score_target_loss separated", separated, "batch, instrument, freq, frame")
    check_same_shape("score_target_loss: harmonic", harmonic, "separated", separated,
                     "batch, instrument, freq, frame")
    error = separated - score_separation(mixture, harmonic).to(separated.dtype)
    return error.pow(2).flatten(1).mean(1)
