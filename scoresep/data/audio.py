"""Audio I/O with soundfile (FLAC/WAV, partial reads) and resampling with torchaudio.

torchaudio's own load/save go through FFmpeg (torchcodec); we read and write with soundfile so that a
partial read of a long stem is cheap and a bad file gives an error that names it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as audio_functional


class AudioError(RuntimeError):
    """An audio file cannot be read or written; the message names the file."""


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(sample_rate, frames, channels)`` of an audio file, without decoding it."""
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError for bad files
        raise AudioError(f"{path}: cannot read audio header ({error})") from error
    return info.samplerate, info.frames, info.channels


def read_audio(
    path: str | os.PathLike, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, int]:
    """Read ``[start, stop)`` frames of an audio file as mono float32.

    Returns ``(waveform (time,), sample_rate)``. Multichannel files are averaged to mono. A corrupt or
    truncated file raises AudioError naming the file.
    """
    _, frames, _ = audio_info(path)
    try:
        data, sample_rate = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(f"{path}: cannot decode audio ({error})") from error
    expected = min(frames, stop if stop is not None else frames) - start
    if data.shape[0] < expected:
        raise AudioError(f"{path}: truncated: header says {frames} frames, only {start + data.shape[0]} decode")
    return data.mean(axis=1), sample_rate


def resample(waveform: np.ndarray, orig_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Resample a ``(..., time)`` float32 array with torchaudio's band-limited sinc interpolation."""
    if orig_sample_rate == sample_rate:
        return waveform
    tensor = torch.from_numpy(np.ascontiguousarray(waveform))
    return audio_functional.resample(tensor, orig_sample_rate, sample_rate).numpy()


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode a whole file to mono float32 at ``sample_rate``: ``(time,)``."""
    waveform, file_rate = read_audio(path)
    return resample(waveform, file_rate, sample_rate)


def write_audio(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write a mono ``(time,)`` waveform (float in [-1, 1] or int16) atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio_format = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if audio_format is None:
        raise AudioError(f"{path}: unsupported output format (use .flac or .wav)")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        soundfile.write(temp_name, waveform, sample_rate, subtype=subtype, format=audio_format)
        os.replace(temp_name, path)
    except Exception as error:
        Path(temp_name).unlink(missing_ok=True)
        raise AudioError(f"{path}: cannot write audio ({error})") from error
