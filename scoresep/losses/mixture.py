"""Mixture-consistency losses: separated spectrograms should add up to the mixture.

Variants (the paper's Table 1): plain ``L_mix`` (all instruments), clip-level ``L_c-mix`` (only instruments
active in the clip, from the score), and harmonic ``L_h-mix`` (each separated spectrogram restricted by a
T-F mask built from the score's notes and their harmonics; the loss is taken over the bins that some
instrument's mask covers).
"""

from __future__ import annotations

import torch

from scoresep.losses._shapes import check_same_shape, check_shape


def harmonic_templates(freqs: torch.Tensor, n_pitches: int, min_midi: int, n_harmonics: int = 8,
                       tolerance: float = 0.5) -> torch.Tensor:
    """Which frequency bins belong to which pitch: ``(pitch, freq)`` of 0/1.

    Bin ``f`` belongs to pitch ``p`` when it lies within ``tolerance`` semitones of a harmonic ``k * f0(p)``
    (``k = 1..n_harmonics``, only harmonics below the top bin), or within one bin spacing of it (so low
    notes, whose semitone is narrower than a bin, still cover their nearest bins).
    """
    if n_harmonics < 1 or tolerance <= 0:
        raise ValueError(f"harmonic mask: need n_harmonics >= 1 and tolerance > 0, got {n_harmonics}, {tolerance}")
    freqs = freqs.double()
    spacing = float(freqs[1] - freqs[0])
    f0 = 440.0 * 2.0 ** ((torch.arange(n_pitches, dtype=torch.float64) + min_midi - 69) / 12)
    harmonics = f0[:, None] * torch.arange(1, n_harmonics + 1, dtype=torch.float64)  # (P, K)
    width = torch.clamp(harmonics * (2 ** (tolerance / 12) - 1), min=spacing)
    distance = (freqs[None, None, :] - harmonics[..., None]).abs()  # (P, K, F)
    inside = (distance <= width[..., None]) & (harmonics[..., None] <= float(freqs[-1]) + spacing)
    return inside.any(dim=1).float()


def harmonic_mask(rolls: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """T-F mask ``H_i`` from the score: 1 on bins near the harmonics of every note sounding in a frame.

    Shape:
        rolls: ``(batch, instrument, pitch, frame)``
        templates: ``(pitch, freq)`` from :func:`harmonic_templates`
        returns: ``(batch, instrument, freq, frame)`` of 0/1
    """
    check_shape("harmonic_mask rolls", rolls, "batch, instrument, pitch, frame", pitch=templates.shape[0])
    covered = torch.einsum("bipn,pf->bifn", rolls.float(), templates.to(rolls.device).float())
    return (covered > 0).float()


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


def bin_frequencies(sample_rate: int, n_fft: int) -> torch.Tensor:
    """Centre frequency in Hz of each one-sided STFT bin: ``(n_fft // 2 + 1,)``."""
    return torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft


__all__ = ["bin_frequencies", "harmonic_leak_loss", "harmonic_mask", "harmonic_templates", "mixture_loss"]
