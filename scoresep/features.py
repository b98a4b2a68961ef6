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

import io
import os
from collections.abc import Mapping
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
    """What the data and features of a model are: declared once, under ``data.features``, linked into the stage,
    stored whole in its checkpoint, and checked between stages.

    Args:
        instruments: instruments to separate/transcribe, in output order.
        sample_rate: audio rate of the cache and the models (Hz).
        n_fft: STFT size (``n_fft // 2 + 1`` frequency bins).
        hop_length: STFT hop; also the piano-roll frame period (``sample_rate / hop_length`` frames/s).
        min_midi: lowest pitch row of the rolls (MIDI number; 21 = A0).
        max_midi: highest pitch row of the rolls (108 = C8).
        stft_backend: ``torch`` (FFT, the default: fastest measured on CPU) or ``nnaudio2``: how the data module
            and the stage compute the spectrograms (the same transform either way, see ``Spectrogram``).
    """

    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    min_midi: int = MIN_MIDI
    max_midi: int = MAX_MIDI
    stft_backend: StftBackend = "torch"

    def __post_init__(self) -> None:
        # a tuple whatever the caller gave (a YAML or checkpoint list): equal settings compare and hash equal
        object.__setattr__(self, "instruments", tuple(self.instruments))

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
        """Primitives only: what checkpoints store (they load with ``torch.load(weights_only=True)``)."""
        return {**asdict(self), "instruments": list(self.instruments)}

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSettings:
        """The settings ``to_dict`` wrote; a field the mapping lacks takes its default (checkpoints written before
        ``stft_backend`` was stored lack it)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @classmethod
    def coerce(cls, value: FeatureSettings | Mapping) -> FeatureSettings:
        """``value`` itself, or the settings of a mapping (how a checkpoint's hyper-parameters hold them)."""
        return value if isinstance(value, FeatureSettings) else cls.from_dict(value)

    @classmethod
    def defaults(cls, instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS) -> FeatureSettings:
        """The project's feature settings (``constants.py``) for ``instruments``: what a command without a
        checkpoint (score-informed separation, its evaluation) computes with."""
        return cls(tuple(instruments))

    def mismatches(self, other: FeatureSettings, mine: str = "here", theirs: str = "there") -> list[str]:
        """One ``name=value (mine) vs name=value (theirs)`` line per differing field that changes what a model
        computes: not ``stft_backend`` (both backends compute the same transform, so a model trained with one
        runs with the other)."""
        return [f"{f.name}={getattr(self, f.name)!r} ({mine}) vs {f.name}={getattr(other, f.name)!r} ({theirs})"
                for f in fields(self) if f.name != "stft_backend" and getattr(self, f.name) != getattr(other, f.name)]


DEFAULT_FEATURES = FeatureSettings()
# The feature settings' names, which checkpoints written before FeatureSettings was one argument hold as separate
# hyper-parameters of the stage and the data module.
FEATURE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FeatureSettings))


def gather_features(settings: dict) -> dict:
    """``settings`` (a stage's or the data module's arguments) in today's form: separate feature settings, as
    checkpoints written before ``features`` existed hold them, gathered into one ``features`` dict where the first
    of them stood; ``settings`` itself when it has none."""
    if "features" in settings or not any(name in settings for name in FEATURE_FIELDS):
        return settings
    gathered: dict = {}
    for key, value in settings.items():
        if key in FEATURE_FIELDS:
            gathered.setdefault("features", {})[key] = value
        else:
            gathered[key] = value
    return gathered


class FeaturesArgument:
    """Base of the Lightning classes whose ``__init__`` takes ``features: FeatureSettings`` (the stages, the data
    module): their ``load_from_checkpoint`` also reads a checkpoint written when the feature settings were
    separate arguments (``gather_features``)."""

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        source = _gathered_checkpoint(checkpoint_path, cls.CHECKPOINT_HYPER_PARAMS_KEY,
                                      kwargs.get("weights_only") is not False)
        return super().load_from_checkpoint(source, *args, **kwargs)


def _gathered_checkpoint(source, key: str, weights_only: bool):
    """``source`` (a path or an open file) itself, or an in-memory copy of its checkpoint whose hyper-parameters
    ``key`` are in today's form (``gather_features``). Anything that is not a local file is returned as it is:
    Lightning's own loading reads it (or says what is wrong)."""
    if isinstance(source, str | os.PathLike):
        if not os.path.isfile(source):
            return source
        checkpoint = torch.load(source, map_location="cpu", weights_only=weights_only, mmap=True)  # tensors unread
    else:
        start = source.tell()
        checkpoint = torch.load(source, map_location="cpu", weights_only=weights_only)
        source.seek(start)
    hyper_parameters = checkpoint.get(key) if isinstance(checkpoint, dict) else None
    if not isinstance(hyper_parameters, dict) or (gathered := gather_features(hyper_parameters)) is hyper_parameters:
        return source
    buffer = io.BytesIO()
    torch.save({**checkpoint, key: gathered}, buffer)
    buffer.seek(0)
    return buffer


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

    @classmethod
    def of(cls, features: FeatureSettings, inverse: bool) -> Spectrogram:
        """The transform of ``features`` (its STFT settings and backend)."""
        return cls(features.n_fft, features.hop_length, features.sample_rate, inverse, features.stft_backend)

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
