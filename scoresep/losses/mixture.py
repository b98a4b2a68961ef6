"""Mixture-consistency losses: separated spectrograms should add up to the mixture.

Variants (the paper's Table 1): plain ``L_mix`` (all instruments), clip-level ``L_c-mix`` (only instruments
active in the clip, from the score), and harmonic ``L_h-mix`` (each separated spectrogram restricted by a
T-F mask built from the score's notes and their harmonics, ``score.harmonic_mask``; the loss is taken over the
bins that some instrument's mask covers).
"""

from __future__ import annotations

import torch

from scoresep.score.shapes import check_same_shape, check_shape


def mixture_loss(separated: torch.Tensor, mixture: torch.Tensor, active: torch.Tensor | None = None,
                 harmonic: torch.Tensor | None = None, restrict_to_covered: bool = True) -> torch.Tensor:
    """L1 distance between the (masked) sum of separated spectrograms and the mixture, per batch item.

    - ``active`` (clip-level mask, ``L_c-mix``): only instruments active in the clip are summed.
    - ``harmonic`` (``L_h-mix``): each ``S_i`` is multiplied by its harmonic mask ``H_i`` before summing, and
      with ``restrict_to_covered`` the error is averaged over the bins some ``H_i`` covers only.

    Shape:
        separated: ``(batch, instrument, freq, frame)``; mixture: ``(batch, freq, frame)``
        active: ``(batch, instrument)`` bool; harmonic: like ``separated``
        returns: ``(batch,)``
    """
    check_shape("mixture_loss separated", separated, "batch, instrument, freq, frame")
    batch, n_instruments, bins, frames = separated.shape
    check_shape("mixture_loss mixture", mixture, "batch, freq, frame", batch=batch, freq=bins, frame=frames)
    weights = torch.ones(batch, n_instruments, device=separated.device, dtype=separated.dtype)
    if active is not None:
        check_shape("mixture_loss active", active, "batch, instrument", batch=batch, instrument=n_instruments)
        weights = active.to(separated.dtype)
    weights = weights[:, :, None, None]
    if harmonic is None:
        return ((weights * separated).sum(1) - mixture).abs().flatten(1).mean(1)
    check_same_shape("mixture_loss: harmonic", harmonic, "separated", separated, "batch, instrument, freq, frame")
    masks = weights * harmonic
    error = ((masks * separated).sum(1) - mixture).abs()
    if not restrict_to_covered:
        return error.flatten(1).mean(1)
    covered = (masks.sum(1) > 0).to(error.dtype)
    return (error * covered).flatten(1).sum(1) / covered.flatten(1).sum(1).clamp_min(1.0)


def harmonic_leak_loss(separated: torch.Tensor, harmonic: torch.Tensor) -> torch.Tensor:
    """Energy each instrument keeps where its score has no harmonic (``L_h-leak``), per batch item.

    ``L_h-mix`` only says that the harmonic parts ``H_i * S_i`` add up to the mixture: nothing in it stops an
    instrument from also taking bins that belong to another one. This term is the missing half of the
    harmonic prior: the mean magnitude of ``(1 - H_i) * S_i`` summed over instruments, so an instrument absent
    from the clip (``H_i = 0``) is pushed to silence and a present one to its own harmonics. Together with
    ``L_c-mix`` (the sum must still be the mixture) it moves shared energy to the instrument whose score
    explains it. Same unit as :func:`mixture_loss` (magnitude per bin).

    Shape:
        separated, harmonic: ``(batch, instrument, freq, frame)``
        returns: ``(batch,)``
    """
    check_shape("harmonic_leak_loss separated", separated, "batch, instrument, freq, frame")
    check_same_shape("harmonic_leak_loss: harmonic", harmonic, "separated", separated,
                     "batch, instrument, freq, frame")
    return ((1.0 - harmonic) * separated).sum(1).flatten(1).mean(1)



__all__ = ["harmonic_leak_loss", "mixture_loss"]
