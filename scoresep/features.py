"""On-device spectrogram front end: STFT and inverse STFT with nnAudio, always in fp32.

The STFT runs on the batch's device after transfer (``on_after_batch_transfer``). Under autocast nnAudio's
convolutions would silently run in bf16/fp16, so every call disables autocast and casts its input to fp32.
nnAudio stores its Fourier kernels as persistent buffers (16-48 MB); they are re-registered as
non-persistent here, so they never land in a checkpoint.

Conventions: Hann window, ``center=True`` with reflect padding, so a waveform of ``T`` samples gives
``1 + T // hop_length`` frames (the piano-roll frame count) and ``n_fft // 2 + 1`` frequency bins.
"""

from __future__ import annotations

import torch
from nnAudio.features import STFT
from torch import nn

from scoresep.constants import HOP_LENGTH, N_FFT, SAMPLE_RATE


class Spectrogram(nn.Module):
    """STFT / inverse STFT of waveforms with any leading dimensions.

    Shape:
        stft: waveform ``(..., time)`` -> complex ``(..., freq, frame)``
        istft: complex ``(..., freq, frame)`` -> waveform ``(..., length)``
    """

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, sample_rate: int = SAMPLE_RATE,
                 inverse: bool = True):
        super().__init__()
        if n_fft <= 0 or hop_length <= 0 or hop_length > n_fft:
            raise ValueError(f"STFT settings: need 0 < hop_length <= n_fft, got n_fft={n_fft}, "
                             f"hop_length={hop_length}")
        self.n_fft, self.hop_length, self.sample_rate = n_fft, hop_length, sample_rate
        self.transform = STFT(n_fft=n_fft, hop_length=hop_length, window="hann", freq_scale="no", center=True,
                              pad_mode="reflect", iSTFT=inverse, sr=sample_rate, output_format="Complex",
                              verbose=False)
        for name, buffer in list(self.transform.named_buffers(recurse=False)):
            self.transform.register_buffer(name, buffer, persistent=False)

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``(..., freq, frame)`` of ``(..., time)``, computed in fp32 with autocast off."""
        leading, n_samples = waveform.shape[:-1], waveform.shape[-1]
        if n_samples <= self.n_fft // 2:
            raise ValueError(f"waveform of {n_samples} samples is too short for n_fft={self.n_fft} "
                             "(reflect padding needs more than n_fft // 2 samples)")
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            parts = self.transform(waveform.reshape(-1, n_samples).float())  # (batch, freq, frame, 2)
        spectrum = torch.complex(parts[..., 0].contiguous(), parts[..., 1].contiguous())
        return spectrum.reshape(*leading, *spectrum.shape[-2:])

    def istft(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        """Waveform ``(..., length)`` from a complex one-sided STFT ``(..., freq, frame)`` (fp32)."""
        if not spectrum.is_complex():
            raise TypeError(f"istft expects a complex spectrogram, got dtype {spectrum.dtype}")
        leading = spectrum.shape[:-2]
        with torch.autocast(device_type=spectrum.device.type, enabled=False):
            parts = torch.view_as_real(spectrum.reshape(-1, *spectrum.shape[-2:]).to(torch.complex64))
            waveform = self.transform.inverse(parts, onesided=True, length=length)
        return waveform.reshape(*leading, length)

    def analyse(self, batch: dict) -> dict:
        """Add the spectrogram keys of the batch contract to ``batch`` (in place) and return it.

        Adds ``mixture_stft`` complex ``(B, F, N)``, ``mixture_mag`` ``(B, F, N)`` and, when any item has
        stems, ``sources_mag`` ``(B, S, F, N)`` (zeros for items without stems).
        """
        spectrum = self.stft(batch["mixture"])
        batch["mixture_stft"] = spectrum
        batch["mixture_mag"] = spectrum.abs()
        if "sources" in batch and bool(batch["has_sources"].any()):
            batch["sources_mag"] = self.stft(batch["sources"]).abs()
        return batch
