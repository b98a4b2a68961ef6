"""A fixed, differentiable map from linear STFT bins to semitone-spaced bands (a log-frequency spectrogram).

Why by hand: the critic must read the *separated STFT magnitudes* ``S_i = M_i * X`` that the separator makes, so
it needs a map from STFT bins, not a transform of the waveform. torchaudio offers mel and linear filterbanks
only; nnAudio2's CQT starts from the waveform. Twenty lines of triangular filters do what is needed.

Band ``k`` is centred on MIDI pitch ``lowest_midi - 0.5 + k / bands_per_semitone`` (up to the Nyquist frequency)
and is a triangle over linear frequency whose half-width is one band, or one STFT bin where the bins are
coarser (low notes), so every band sees at least one bin. Rows are normalised to sum to one: a band is a
weighted average of magnitudes, the level of the input is kept. A shift of pitch is a shift along the band
axis, which convolutions exploit.
"""

from __future__ import annotations

import math

import torch

from scoresep.errors import SettingsError


def log_frequency_filterbank(sample_rate: int, n_fft: int, lowest_midi: int, bands_per_semitone: int) -> torch.Tensor:
    """``(bands, n_fft // 2 + 1)`` weights; ``filterbank @ magnitude`` maps ``(freq, frame)`` to ``(band, frame)``."""
    if bands_per_semitone < 1:
        raise SettingsError(f"bands_per_semitone must be >= 1, got {bands_per_semitone}")
    bin_spacing = sample_rate / n_fft
    bin_freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * bin_spacing
    nyquist_midi = 69 + 12 * math.log2((sample_rate / 2) / 440.0)
    first = lowest_midi - 0.5
    n_bands = int((nyquist_midi - first) * bands_per_semitone)
    centres_midi = first + torch.arange(n_bands, dtype=torch.float64) / bands_per_semitone
    centres = 440.0 * 2 ** ((centres_midi - 69) / 12)
    step = 2 ** (1 / (12 * bands_per_semitone))
    half_width = torch.maximum(centres * (step - 1), torch.full_like(centres, bin_spacing))
    weights = (1 - (bin_freqs[None] - centres[:, None]).abs() / half_width[:, None]).clamp_min(0)
    return (weights / weights.sum(1, keepdim=True)).float()
