"""On-device spectrogram front end: STFT and inverse STFT, always in fp32, with a choice of backend.

The STFT runs on the batch's device after transfer (``on_after_batch_transfer``). Two backends compute the same
transform (Hann window, ``center=True`` with reflect padding, one-sided), chosen with ``stft_backend``:

- ``torch``: ``torch.stft`` / ``torch.istft`` (FFT). Measured 13x faster than nnAudio2 on 2 CPU cores
  (8 x 4 s at 16 kHz, n_fft 1024: 2.5 ms vs 33 ms; ``benchmarks/train_step.py`` prints it), so it is the default.
- ``nnaudio2``: nnAudio2's STFT (a 1-D convolution with Fourier kernels; nnAudio 0.3.x's maintained successor).
  Its kernels are re-registered as non-persistent buffers so they never land in a checkpoint, and its
  inverse needs ``iSTFT=True`` at construction.

Both run with autocast disabled on fp32 input: under autocast nnAudio's convolutions would silently run in
bf16/fp16 (relative error ~3e-3), and the FFT has no low-precision path worth the error. A waveform of ``T``
samples gives ``1 + T // hop_length`` frames (the piano-roll frame count) and ``n_fft // 2 + 1`` bins.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
from torch import nn

from scoresep.constants import DEFAULT_INSTRUMENTS, HOP_LENGTH, MAX_MIDI, MIN_MIDI, N_FFT, SAMPLE_RATE
from scoresep.errors import SettingsError

StftBackend = Literal["torch", "nnaudio2"]
STFT_BACKENDS: tuple[str, ...] = ("torch", "nnaudio2")


@dataclass(frozen=True)
class FeatureSettings:
    """What the data and features of a model were: it must match between stages."""

    instruments: tuple[str, ...]
    sample_rate: int
    n_fft: int
    hop_length: int
    min_midi: int
    max_midi: int

    @property
    def n_pitches(self) -> int:
        return self.max_midi - self.min_midi + 1

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        """STFT (and piano-roll) frames per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return {**asdict(self), "instruments": list(self.instruments)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        return cls(**{**{f.name: data[f.name] for f in fields(cls)}, "instruments": tuple(data["instruments"])})

    @classmethod
    def defaults(cls, instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS) -> FeatureSettings:
        """The project's feature settings (``constants.py``) for ``instruments``: what a command without a
        checkpoint (score-informed separation, its evaluation) computes with."""
        return cls(tuple(instruments), SAMPLE_RATE, N_FFT, HOP_LENGTH, MIN_MIDI, MAX_MIDI)

    def mismatches(self, other: FeatureSettings, mine: str = "here", theirs: str = "there") -> list[str]:
        """One ``name=value (mine) vs name=value (theirs)`` line per differing field."""
        return [f"{f.name}={getattr(self, f.name)!r} ({mine}) vs {f.name}={getattr(other, f.name)!r} ({theirs})"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def _nnaudio2_stft(n_fft: int, hop_length: int, sample_rate: int, inverse: bool) -> nn.Module:
    os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")  # it prints a banner on import otherwise
    from nnAudio2.features.stft import STFT

    transform = STFT(n_fft=n_fft, hop_length=hop_length, window="hann", freq_scale="no", center=True,
                     pad_mode="reflect", iSTFT=inverse, sr=sample_rate, output_format="Complex", verbose=False)
    for name, buffer in list(transform.named_buffers(recurse=False)):
        transform.register_buffer(name, buffer, persistent=False)
    return transform


class Spectrogram(nn.Module):
    """STFT / inverse STFT of waveforms with any leading dimensions.

    Args:
        n_fft, hop_length, sample_rate: the transform (Hann window of ``n_fft`` samples).
        inverse: whether ``istft`` is needed (nnAudio2 builds its inverse kernels only then).
        backend: ``torch`` (FFT) or ``nnaudio2`` (convolution); they agree to ~1e-6 relative.

    Shape:
        stft: waveform ``(..., time)`` -> complex ``(..., freq, frame)``
        istft: complex ``(..., freq, frame)`` -> waveform ``(..., length)``
    """

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, sample_rate: int = SAMPLE_RATE,
                 inverse: bool = True, backend: StftBackend = "torch"):
        super().__init__()
        if n_fft <= 0 or hop_length <= 0 or hop_length > n_fft:
            raise SettingsError(f"STFT settings: need 0 < hop_length <= n_fft, got n_fft={n_fft}, "
                                f"hop_length={hop_length}")
        if backend not in STFT_BACKENDS:
            raise SettingsError(f"stft_backend must be one of {STFT_BACKENDS}, got {backend!r}")
        self.n_fft, self.hop_length, self.sample_rate = n_fft, hop_length, sample_rate
        self.backend, self.inverse = backend, inverse
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.transform = _nnaudio2_stft(n_fft, hop_length, sample_rate, inverse) if backend == "nnaudio2" else None

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``(..., freq, frame)`` of ``(..., time)``, computed in fp32 with autocast off."""
        leading, n_samples = waveform.shape[:-1], waveform.shape[-1]
        if n_samples <= self.n_fft // 2:
            raise SettingsError(f"waveform of {n_samples} samples is too short for n_fft={self.n_fft} "
                                "(reflect padding needs more than n_fft // 2 samples)")
        flat = waveform.reshape(-1, n_samples).float()
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            if self.transform is None:
                spectrum = torch.stft(flat, self.n_fft, self.hop_length, window=self.window.to(flat.device),
                                      center=True, pad_mode="reflect", return_complex=True)
            else:
                parts = self.transform(flat)  # (batch, freq, frame, 2)
                spectrum = torch.complex(parts[..., 0].contiguous(), parts[..., 1].contiguous())
        return spectrum.reshape(*leading, *spectrum.shape[-2:])

    def istft(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        """Waveform ``(..., length)`` from a complex one-sided STFT ``(..., freq, frame)`` (fp32)."""
        if not spectrum.is_complex():
            raise TypeError(f"istft expects a complex spectrogram, got dtype {spectrum.dtype}")
        if not self.inverse:
            raise RuntimeError("this Spectrogram was built with inverse=False")
        leading = spectrum.shape[:-2]
        flat = spectrum.reshape(-1, *spectrum.shape[-2:]).to(torch.complex64)
        with torch.autocast(device_type=spectrum.device.type, enabled=False):
            if self.transform is None:
                waveform = torch.istft(flat, self.n_fft, self.hop_length, window=self.window.to(flat.device),
                                       center=True, length=length)
            else:
                waveform = self.transform.inverse(torch.view_as_real(flat), onesided=True, length=length)
        return waveform.reshape(*leading, length)

    def analyse(self, batch: dict) -> dict:
        """Add the mixture's spectrogram keys of the batch contract to ``batch`` (in place) and return it.

        Adds ``mixture_stft`` complex ``(B, F, N)`` and ``mixture_mag`` ``(B, F, N)``. The stems' spectrograms
        are not computed here: most training steps never read them (stage 1 on mixtures, stage 2 with a critic,
        stage 3); ``source_magnitudes`` computes them when a loss or metric asks.
        """
        spectrum = self.stft(batch["mixture"])
        batch["mixture_stft"] = spectrum
        batch["mixture_mag"] = spectrum.abs()
        return batch

    def source_magnitudes(self, batch: dict) -> torch.Tensor | None:
        """``sources_mag`` ``(B, S, F, N)`` of the batch (zeros for items without stems), computed once and kept
        in the batch; None when no item of the batch has stems."""
        if "sources_mag" not in batch:
            if "sources" not in batch or not bool(batch["has_sources"].any()):
                return None
            batch["sources_mag"] = self.to(batch["sources"].device).stft(batch["sources"]).abs()
        return batch["sources_mag"]
