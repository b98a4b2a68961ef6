"""``Separator``: separate a recording of any length with a stage-2 or stage-3 checkpoint, chunk by chunk.

Each chunk of STFT frames is separated with enough context on both sides to cover the U-Net's receptive field
and the inverse STFT's window, so the kept samples equal those of one pass over the whole recording (to float
rounding; tested) while memory depends only on the chunk length. The masks are applied to the mixture's STFT
and inverted with the mixture's phase, in fp32, as in validation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
import torch

from scoresep.checkpoints import FeatureSettings, load_separator
from scoresep.constants import n_frames as frame_count
from scoresep.data.audio import AudioError
from scoresep.features import Spectrogram
from scoresep.inference.chunks import Chunk, plan_chunks
from scoresep.inference.sources import ArraySource, FileSource
from scoresep.models import SeparatorNetwork

Source = ArraySource | FileSource


def pick_device(device: str | torch.device | None, option: str = "device") -> torch.device:
    """The device to compute on: ``None`` means the first CUDA device when there is one, else the CPU.

    A device this machine cannot use (no CUDA, a CUDA index past the last GPU, an unknown name) is refused here
    with a ValueError that names it as ``option`` (the command's ``--device``), before any model is moved: torch
    would otherwise fail deep inside with a driver message."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use = f"use {option} cpu" if option.startswith("-") else f"use {option}='cpu'"
    label = f"{option} {device}" if option.startswith("-") else f"{option}={str(device)!r}"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{label}: not a device name (use cpu, cuda or cuda:N)") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{label}: no CUDA device is visible on this machine (torch.cuda.is_available() is "
                             f"False); {use}")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"{label}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    elif chosen.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{label}: no Apple MPS device is available on this machine; {use}")
    elif chosen.type != "cpu":
        raise ValueError(f"{label}: {chosen.type} devices are not supported (use cpu, cuda or cuda:N)")
    return chosen


def as_mono(waveform: torch.Tensor | np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """A ``(time,)`` or ``(channel, time)`` waveform as mono float32 at ``target_rate``."""
    array = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if array.ndim == 2:
        array = array.mean(axis=0)
    if array.ndim != 1:
        raise ValueError(f"expected a waveform (time,) or (channel, time), got shape {array.shape}")
    array = array.astype(np.float32)
    if sample_rate != target_rate:
        import torchaudio.functional as audio_functional

        array = audio_functional.resample(torch.from_numpy(array), sample_rate, target_rate).numpy()
    return array


class Separator:
    """Separate mono audio into one waveform per instrument plus the residual.

    Args:
        network: a separator network (any ``scoresep.models.SeparatorNetwork``), any device.
        features: the feature settings it was trained with.
        chunk_seconds: kept audio per chunk; memory grows with it, never with the recording's length.
        device: where to compute (default: CUDA when available).

    ``separator(waveform, sample_rate)`` returns ``{instrument: (time,), ..., "residual": (time,)}`` at the
    model's sample rate (``separator.sample_rate``); ``waveform`` is ``(time,)`` or ``(channel, time)``.
    """

    def __init__(self, network: SeparatorNetwork, features: FeatureSettings, chunk_seconds: float = 30.0,
                 device: str | torch.device | None = None):
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        self.device = pick_device(device)
        self.network = network.to(self.device).eval()
        self.features, self.chunk_seconds = features, chunk_seconds
        self.spectrogram = Spectrogram(features.n_fft, features.hop_length, features.sample_rate).to(self.device)
        # Frames within ceil(n_fft / 2 hop) of a piece's edge see its reflect padding; the U-Net spreads that by its
        # receptive field and the inverse STFT by another ceil(n_fft / 2 hop): the context covers all three.
        reach = -(-features.n_fft // (2 * features.hop_length))
        self.context_frames = network.receptive_field_frames + 2 * reach + 1

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, chunk_seconds: float = 30.0,
                        device: str | torch.device | None = None) -> Separator:
        """Load the separator of a stage-2 or stage-3 checkpoint (CheckpointError naming the file otherwise)."""
        network, info = load_separator(path)
        return cls(network, info["features"], chunk_seconds, device)

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.features.instruments

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def chunks(self, n_samples: int) -> list[Chunk]:
        """The frame chunks of a recording of ``n_samples`` samples."""
        return plan_chunks(frame_count(n_samples, self.features.hop_length),
                           max(1, round(self.chunk_seconds * self.features.frame_rate)), self.context_frames,
                           self.network.frame_multiple)

    @torch.inference_mode()
    def masks(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks (instrument, freq, frame), mixture STFT (freq, frame))`` of a mono ``(time,)`` piece."""
        spectrum = self.spectrogram.stft(mixture[None])
        return self.network(spectrum.abs())[0], spectrum[0]

    def stream(self, source: Source) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first sample, pieces (instrument + 1, time))`` in order; the last row is the residual.

        The pieces tile ``[0, source.n_samples)`` exactly.
        """
        hop, n_samples = self.features.hop_length, source.n_samples
        if n_samples <= self.features.n_fft // 2:
            raise AudioError(f"{source.name}: too short to separate ({n_samples} samples at {self.sample_rate} Hz; "
                             f"needs more than {self.features.n_fft // 2})")
        n_frames = frame_count(n_samples, hop)
        for chunk in self.chunks(n_samples):
            # A chunk that reaches the last frame reaches the last sample (frame n covers sample n * hop).
            outer_start, keep_first = chunk.outer_start * hop, chunk.start * hop
            outer_stop = n_samples if chunk.outer_stop == n_frames else chunk.outer_stop * hop
            keep_stop = n_samples if chunk.stop == n_frames else chunk.stop * hop
            mixture = torch.from_numpy(source.read(outer_start, outer_stop)).to(self.device)
            masks, spectrum = self.masks(mixture)
            with torch.inference_mode():
                waveforms = self.spectrogram.istft(masks * spectrum[None], mixture.shape[-1])
            kept = waveforms[:, keep_first - outer_start : keep_stop - outer_start]
            residual = mixture[keep_first - outer_start : keep_stop - outer_start] - kept.sum(0)
            yield chunk.start * hop, torch.cat([kept, residual[None]]).float().cpu().numpy()

    def separate_source(self, source: Source, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Whole separation ``(instrument + 1, time)`` of a source (for evaluation; needs the memory)."""
        result = np.zeros((len(self.instruments) + 1, source.n_samples), dtype=np.float32)
        for start, pieces in self.stream(source):
            result[:, start : start + pieces.shape[1]] = pieces
            if progress is not None:
                progress(pieces.shape[1])
        return result

    def __call__(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> dict[str, torch.Tensor]:
        """Separate an in-memory waveform; returns ``{instrument: (time,), "residual": (time,)}``."""
        mono = as_mono(waveform, sample_rate, self.sample_rate)
        result = self.separate_source(ArraySource(mono, self.sample_rate))
        names = (*self.instruments, "residual")
        return {name: torch.from_numpy(result[index]) for index, name in enumerate(names)}

