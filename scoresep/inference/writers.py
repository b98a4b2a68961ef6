"""Output files that appear whole or not at all: written to hidden temp files beside them, renamed at the end.

A separation writes several stems piece by piece; if anything fails (a bad input discovered late, a full disk,
Ctrl-C), every temp file is removed and no output of that input is left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile

from scoresep.data.audio import AudioError
from scoresep.data.cache import default_file_mode

AUDIO_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "wav32": ("WAV", "FLOAT")}


@contextmanager
def _write_errors_named(path: Path) -> Iterator[None]:
    """Turn any error of writing or closing an audio file (a full disk: libsndfile errors, or soundfile's
    short-write assertion) into an AudioError naming the output file."""
    try:
        yield
    except Exception as error:
        raise AudioError(f"{path}: cannot write audio ({type(error).__name__}: {error})") from error


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that files can be created in it (PermissionError naming it)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".scoresep-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(f"{folder}: output folder is not writable ({error.strerror or error})") from None
    return folder


class StemWriter:
    """Write several mono audio files chunk by chunk; ``commit()`` renames them into place, ``abort()`` (or
    leaving the ``with`` block by an exception) deletes them.

    Args:
        paths: final file paths, one per stem (row of the pieces given to ``write``).
        sample_rate: of every file.
        audio_format: ``wav`` (16-bit), ``flac`` (16-bit) or ``wav32`` (32-bit float, no clipping).
    """

    def __init__(self, paths: list[Path], sample_rate: int, audio_format: str = "wav"):
        if audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio format must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}")
        container, subtype = AUDIO_FORMATS[audio_format]
        self.paths, self.temps, self.handles = list(paths), [], []
        self.clipped = 0
        self._is_float = subtype == "FLOAT"
        try:
            for path in self.paths:
                handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
                os.close(handle)
                self.temps.append(Path(temp))
                self.handles.append(soundfile.SoundFile(temp, "w", sample_rate, 1, subtype=subtype,
                                                        format=container))
        except Exception as error:
            self.abort()
            raise AudioError(f"{self.paths[0].parent}: cannot create output files ({error})") from error

    def write(self, pieces: np.ndarray) -> None:
        """Append ``(stem, time)`` float samples to the files (integer formats clip to [-1, 1], counted)."""
        if pieces.shape[0] != len(self.handles):
            raise ValueError(f"expected {len(self.handles)} stems, got {pieces.shape[0]}")
        if not self._is_float:
            self.clipped += int((np.abs(pieces) > 1.0).sum())
            pieces = np.clip(pieces, -1.0, 1.0)
        for handle, piece, path in zip(self.handles, pieces, self.paths, strict=True):
            with _write_errors_named(path):
                handle.write(piece)

    def commit(self) -> list[Path]:
        """Close and rename every temp file to its final name (none is renamed if one cannot be)."""
        for handle, path in zip(self.handles, self.paths, strict=True):
            with _write_errors_named(path):
                handle.close()
        for path in self.paths:
            if path.is_dir():
                raise AudioError(f"{path}: a folder of that name is in the way of the output file")
        mode = default_file_mode()
        for temp, path in zip(self.temps, self.paths, strict=True):
            os.chmod(temp, mode)
            os.replace(temp, path)
        self.temps = []
        return self.paths

    def abort(self) -> None:
        """Close and delete every temp file (nothing of this output remains)."""
        for handle in self.handles:
            try:
                handle.close()
            except Exception:  # a handle broken by a full disk: it is deleted next anyway
                pass
        for temp in self.temps:
            temp.unlink(missing_ok=True)
        self.temps = []

    def __enter__(self) -> StemWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()

