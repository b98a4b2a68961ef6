"""Audio I/O with soundfile (FLAC/WAV, partial reads) and resampling with torchaudio.

torchaudio's own load/save go through FFmpeg (torchcodec); we read and write with soundfile so that a
partial read of a long stem is cheap and a bad file gives an error that names it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as audio_functional

from scoresep.errors import UserError
from scoresep.fileio import atomic_write_bytes


class AudioError(UserError, RuntimeError):
    """An audio file cannot be read or written; the message names the file."""


# Bytes per sample of the uncompressed subtypes, to turn a data chunk's missing bytes into missing samples.
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                 "ULAW": 1, "ALAW": 1}
# libsndfile's header log: a data chunk (WAV/WAVEX ``data``, AIFF ``SSND``, AU ``Data Size``) whose declared
# length runs past the end of the file is logged as ``data : 160000 (should be 99956)``.
_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# RF64 keeps the length in its ds64 chunk; libsndfile logs the disagreement with the file's size.
_DS64_FRAMES = re.compile(r"Calculated frame count (\d+) does not match value from 'ds64' chunk of (\d+)")
# Lengths that streaming writers (ffmpeg or sox on a pipe) put in a header when they do not know it yet.
# sox writes 0x7ffff000 rounded down to its block size (MS_UNSPEC): any length this close to 2 GiB is "unknown".
_UNKNOWN_LENGTHS = (0xFFFFFFFF, 0x7FFFFFFF)
_UNKNOWN_LENGTH_FROM = 0x7FFF0000


def _truncation(info) -> str | None:
    """Why a file is shorter than its header says, or None.

    For WAV, AIFF, AU and RF64, libsndfile quietly shortens the stream to the bytes present when the header
    declares more, so a truncated file would read as a shorter, valid one. The header's own length is in the log
    libsndfile keeps while parsing it (``extra_info``, collected by ``soundfile.info`` anyway): checking it costs
    no decoding. Formats that declare no length in their header (Ogg) cannot be checked here; a FLAC (whose
    header does declare it) fails to decode instead.
    """
    log = info.extra_info or ""
    match = _DS64_FRAMES.search(log)
    if match and int(match[2]) > int(match[1]):
        return f"truncated audio: header declares {int(match[2])} samples, file holds {info.frames}"
    match = _DATA_CHUNK.search(log)
    if not match:
        return None
    declared, present = int(match[1]), int(match[2])
    if declared <= present or declared in _UNKNOWN_LENGTHS or declared >= _UNKNOWN_LENGTH_FROM:
        return None
    sample_bytes = _SAMPLE_BYTES.get(info.subtype)
    if sample_bytes is None:  # compressed subtype (ADPCM, GSM, ...): no fixed bytes per sample
        return f"truncated audio: header declares {declared} bytes of audio data, file holds {present}"
    # The file may end inside a frame; ceil counts that partial frame as missing, which gives the header's count.
    missing = -(-(declared - present) // (sample_bytes * info.channels))
    return f"truncated audio: header declares {info.frames + missing} samples, file holds {info.frames}"


# What the commands read as audio inputs (libsndfile's formats), and what a folder given to them is searched for.
INPUT_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aif", ".aiff")


def audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files given directly, plus the audio files (by suffix) directly inside given folders (sorted), in order;
    FileNotFoundError naming a path that does not exist or a folder without audio."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no audio file ({', '.join(INPUT_AUDIO_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(sample_rate, frames, channels)`` of an audio file, without decoding it.

    Raises AudioError naming the file when the header cannot be read or declares more samples than the file
    holds (a truncated WAV would otherwise read as a shorter, valid file).
    """
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError for bad files
        raise AudioError(f"{path}: cannot read audio header ({error})") from error
    problem = _truncation(info)
    if problem is not None:
        raise AudioError(f"{path}: {problem}")
    return info.samplerate, info.frames, info.channels


def check_finite(samples: np.ndarray, name: str | os.PathLike, first: int = 0, sample_rate: int | None = None) -> None:
    """AudioError naming ``name`` when ``samples`` (any shape, time first) hold NaN or infinite values: a float
    file with them would otherwise pass as silence or poison every result computed from it. ``first``: the
    position of ``samples`` in the file, to say where the first bad sample is."""
    finite = np.isfinite(samples)
    if finite.all():
        return
    bad = finite.reshape(finite.shape[0], -1).all(axis=1) if finite.ndim > 1 else finite
    at = first + int(np.argmin(bad))
    where = f"sample {at}" + (f", {at / sample_rate:.2f} s" if sample_rate else "")
    raise AudioError(f"{name}: the audio holds NaN or infinite samples (the first at {where}); repair or "
                     "re-export the file")


def read_audio(
    path: str | os.PathLike, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, int]:
    """Read ``[start, stop)`` frames of an audio file as mono float32.

    Returns ``(waveform (time,), sample_rate)``. Multichannel files are averaged to mono. A corrupt or
    truncated file raises AudioError naming the file: one whose header declares more samples than it holds
    (``audio_info``), or one that decodes fewer samples than its header declares (FLAC, MP3).
    """
    _, frames, _ = audio_info(path)
    try:
        data, sample_rate = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(f"{path}: cannot decode audio ({error})") from error
    expected = min(frames, stop if stop is not None else frames) - start
    if data.shape[0] < expected:
        raise AudioError(f"{path}: truncated audio: header declares {frames} samples, only "
                         f"{start + data.shape[0]} decode")
    check_finite(data, path, start, sample_rate)
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
    """Write a mono ``(time,)`` waveform (float in [-1, 1] or int16) atomically (``fileio.atomic_write_bytes``:
    temp file + rename, with the permissions the umask gives a new file)."""
    path = Path(path)
    audio_format = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if audio_format is None:
        raise AudioError(f"{path}: unsupported output format (use .flac or .wav)")
    try:
        atomic_write_bytes(path, lambda stream: soundfile.write(stream, waveform, sample_rate, subtype=subtype,
                                                                format=audio_format))
    except Exception as error:
        raise AudioError(f"{path}: cannot write audio ({error})") from error
