"""Which STFT bins a score's notes cover: each pitch's harmonics ``k * f0`` within a tolerance in semitones.

The harmonic mask ``H_i`` of instrument ``i`` marks those bins in the frames where its notes sound. ``L_h-mix``
trains with it (``losses.mixture``), ``L_score-target`` and the training-free score-informed separation share a
bin between the instruments whose masks cover it (``score.masks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scoresep.constants import HARMONIC_TOLERANCE, N_HARMONICS
from scoresep.errors import SettingsError
from scoresep.score.shapes import check_shape


@dataclass(frozen=True)
class HarmonicSettings:
    """Harmonic masks of a score: harmonics per note and their half-width in semitones (stage 2's defaults)."""

    n_harmonics: int = N_HARMONICS
    tolerance: float = HARMONIC_TOLERANCE


STAGE2_HARMONICS = HarmonicSettings()  # the default of every separator: the masks L_h-mix trains with


def bin_frequencies(sample_rate: int, n_fft: int) -> torch.Tensor:
    """Centre frequency in Hz of each one-sided STFT bin: ``(n_fft // 2 + 1,)``."""
    return torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft


def harmonic_templates(freqs: torch.Tensor, n_pitches: int, min_midi: int, n_harmonics: int = 8,
                       tolerance: float = 0.5) -> torch.Tensor:
    """Which frequency bins belong to which pitch: ``(pitch, freq)`` of 0/1.

    Bin ``f`` belongs to pitch ``p`` when it lies within ``tolerance`` semitones of a harmonic ``k * f0(p)``
    (``k = 1..n_harmonics``, only harmonics below the top bin), or within one bin spacing of it (so low
    notes, whose semitone is narrower than a bin, still cover their nearest bins).
    """
    if n_harmonics < 1 or tolerance <= 0:
        raise SettingsError(f"harmonic mask: need n_harmonics >= 1 and tolerance > 0, got {n_harmonics}, {tolerance}")
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
