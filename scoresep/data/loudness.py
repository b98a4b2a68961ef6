"""Integrated loudness (ITU-R BS.1770-4, mono) for the ``integrated_loudness`` field of metadata.yaml."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

# K-weighting filter specification (the two BS.1770 biquads expressed for any sample rate).
_SHELF_GAIN_DB, _SHELF_Q, _SHELF_HZ = 3.99984385397, 0.7071752369554193, 1681.9744509555319
_HIGHPASS_Q, _HIGHPASS_HZ = 0.5003270373253953, 38.13547087613982


def _k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    gain = 10 ** (_SHELF_GAIN_DB / 40)
    w0 = 2 * math.pi * _SHELF_HZ / sample_rate
    alpha = math.sin(w0) / (2 * _SHELF_Q)
    cos_w0, root = math.cos(w0), 2 * math.sqrt(gain) * alpha
    shelf_b = [
        gain * ((gain + 1) + (gain - 1) * cos_w0 + root),
        -2 * gain * ((gain - 1) + (gain + 1) * cos_w0),
        gain * ((gain + 1) + (gain - 1) * cos_w0 - root),
    ]
    shelf_a = [(gain + 1) - (gain - 1) * cos_w0 + root, 2 * ((gain - 1) - (gain + 1) * cos_w0),
               (gain + 1) - (gain - 1) * cos_w0 - root]
    w0 = 2 * math.pi * _HIGHPASS_HZ / sample_rate
    alpha = math.sin(w0) / (2 * _HIGHPASS_Q)
    cos_w0 = math.cos(w0)
    highpass_b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    highpass_a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    return [(np.asarray(shelf_b), np.asarray(shelf_a)), (np.asarray(highpass_b), np.asarray(highpass_a))]


def integrated_loudness(waveform: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness in LUFS of a mono ``(time,)`` signal; ``-inf`` when silent."""
    weighted = np.asarray(waveform, dtype=np.float64)
    for b, a in _k_weighting(sample_rate):
        weighted = lfilter(b, a, weighted)
    block, step = int(0.4 * sample_rate), int(0.1 * sample_rate)
    if weighted.size < block:
        return float("-inf")
    squares = np.cumsum(np.concatenate([[0.0], weighted**2]))
    starts = np.arange(0, weighted.size - block + 1, step)
    power = (squares[starts + block] - squares[starts]) / block
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    gated = power[loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * math.log10(gated.mean()) - 10.0
    gated = power[(loudness > -70.0) & (loudness > relative_gate)]
    return float(-0.691 + 10 * math.log10(gated.mean()))
