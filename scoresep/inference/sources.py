"""Audio inputs for inference, read piece by piece at the model's sample rate (bounded memory).

A source gives mono float32 samples ``[start, stop)`` at the model's rate, whatever the file's rate and channel
count: channels are averaged, the rate is converted with torchaudio's band-limited sinc resampler. A file is
never decoded whole: each request reads only the native samples it needs plus a margin for the resampling
filter, aligned so that pieces line up exactly with resampling the whole file (to float rounding).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as audio_functional

from scoresep.data.audio import AudioError, audio_info, check_finite

# Native samples of context around each piece when resampling; torchaudio's default filter (6 zero crossings)
# reaches far fewer samples than this even for strong down-sampling.
_RESAMPLE_MARGIN = 4096


@dataclass
class ArraySource:
    """An in-memory mono waveform ``(time,)`` already at the model's sample rate."""

    waveform: np.ndarray
    sample_rate: int
    name: str = "<array>"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.waveform = np.asarray(self.waveform, dtype=np.float32)
        if self.waveform.ndim != 1:
            raise AudioError(f"{self.name}: expected a mono waveform (time,), got shape {self.waveform.shape}")
        check_finite(self.waveform, self.name, 0, self.sample_rate)

    @property
    def n_samples(self) -> int:
        return int(self.waveform.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the waveform) as float32 ``(time,)``."""
        return np.ascontiguousarray(self.waveform[max(0, start) : min(stop, self.n_samples)])


class FileSource:
    """An audio file (WAV, FLAC, OGG, MP3 where libsndfile reads it) seen as mono at ``sample_rate``.

    Raises AudioError naming the file when it cannot be opened or holds no samples. ``notes`` lists what was
    done to the audio (down-mix, resampling) so the command can tell the user.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int):
        self.path, self.sample_rate, self.name = Path(path), sample_rate, str(path)
        if not self.path.is_file():
            raise AudioError(f"{path}: file not found")
        # the header, checked against the file's size: a truncated WAV is refused, not read as a shorter one
        self.native_rate, self.native_frames, self.channels = audio_info(self.path)
        if self.native_frames <= 0:
            raise AudioError(f"{path}: the file holds no audio samples")
        divisor = math.gcd(self.native_rate, sample_rate)
        self._native_step, self._model_step = self.native_rate // divisor, sample_rate // divisor
        self.n_samples = -(-self.native_frames * sample_rate // self.native_rate)  # ceil
        self.notes = []
        if self.channels > 1:
            self.notes.append(f"{self.channels} channels averaged to mono")
        if self.native_rate != sample_rate:
            self.notes.append(f"resampled from {self.native_rate} Hz to {sample_rate} Hz")

    def _read_native(self, start: int, stop: int) -> np.ndarray:
        """Native samples ``[start, stop)``, zeros outside the file, averaged to mono."""
        first, last = max(0, start), min(stop, self.native_frames)
        data = np.zeros((max(0, last - first), self.channels), dtype=np.float32)
        if last > first:
            try:
                with soundfile.SoundFile(str(self.path)) as handle:
                    handle.seek(first)
                    data = handle.read(last - first, dtype="float32", always_2d=True)
            except Exception as error:
                raise AudioError(f"{self.path}: cannot decode audio at sample {first} ({error})") from error
            if data.shape[0] < last - first:
                raise AudioError(f"{self.path}: truncated audio: header declares {self.native_frames} samples, "
                                 f"only {first + data.shape[0]} decode")
            check_finite(data, self.path, first, self.native_rate)
        mono = data.mean(axis=1) if data.shape[0] else np.zeros(0, dtype=np.float32)
        return np.pad(mono, (first - start, stop - start - (first - start) - mono.shape[0])).astype(np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` at the model's rate (clipped to the file) as float32 ``(time,)``."""
        start, stop = max(0, start), min(stop, self.n_samples)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self._native_step == self._model_step:
            return self._read_native(start, stop)
        # Align the piece to the resampler's period so that its output samples are the whole file's.
        aligned = start - start % self._model_step
        margin = self._native_step * -(-_RESAMPLE_MARGIN // self._native_step)
        native_start = aligned // self._model_step * self._native_step
        native_stop = -(-stop * self.native_rate // self.sample_rate)
        # Beyond the file's end the whole-file resampler also sees zeros, so zero padding there is exact.
        native = self._read_native(native_start - margin, min(native_stop + margin, self.native_frames))
        if native_start - margin < 0:  # torchaudio pads the whole file's start with zeros: do the same
            native = native[margin - native_start :]
            lead = 0
            aligned_out = 0
        else:
            lead = margin // self._native_step * self._model_step
            aligned_out = aligned - lead
        resampled = audio_functional.resample(torch.from_numpy(native), self.native_rate, self.sample_rate).numpy()
        offset = start - aligned_out
        piece = resampled[offset : offset + (stop - start)]
        if piece.shape[0] < stop - start:
            piece = np.pad(piece, (0, stop - start - piece.shape[0]))
        return np.ascontiguousarray(piece, dtype=np.float32)

