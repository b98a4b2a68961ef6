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
from scoresep.errors import SettingsError
from scoresep.fileio import default_file_mode

AUDIO_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "wav32": ("WAV", "FLOAT")}


@contextmanager
def _write_errors_named(path: Path) -> Iterator[None]:
    """Turn any error of writing or closing an audio file (a full disk: libsndfile errors, or soundfile's
    short-write assertion) into an AudioError naming the output file."""
    try:
        yield
    except Exception as error:
        raise AudioError(f"{path}: cannot write audio ({type(error).__name__}: {error})") from error


def _missing_and_first_existing(folder: Path) -> tuple[list[Path], Path | None]:
    """``(folder and those of its parents that do not exist, deepest first; the nearest one that exists)``."""
    missing = []
    for path in (folder, *folder.parents):
        if os.path.lexists(path):
            return missing, path
        missing.append(path)
    return missing, None


def _file_in_the_way(folder: Path) -> Path | None:
    """``folder`` itself or its nearest existing ancestor when that is a file (not a folder), else None."""
    _, existing = _missing_and_first_existing(folder)
    return existing if existing is not None and not existing.is_dir() else None


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that files can be created in it (PermissionError naming it, and
    saying so when a file stands where the folder or one of its parents should be)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".scoresep-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        blocker = _file_in_the_way(folder)
        if blocker == folder:
            reason = "it is an existing file, not a folder"
        elif blocker is not None:
            reason = f"{blocker} is a file, not a folder"
        else:
            reason = error.strerror or str(error)
        raise PermissionError(f"{folder}: output folder is not writable ({reason})") from None
    return folder


def missing_folders(folder: str | os.PathLike) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first: what creating it would add."""
    return _missing_and_first_existing(Path(folder))[0]


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that exists and is empty; a folder with anything in it stays.

    Only for folders this run created (from :func:`missing_folders`): a user's folder is never touched."""
    for path in folders:
        try:
            path.rmdir()  # refuses a folder that is not empty
        except FileNotFoundError:
            continue  # never made (creating a deeper level failed) or already gone
        except OSError:
            return  # something is in it: its parents are not empty either


@contextmanager
def output_folder(folder: str | os.PathLike, check_writable: bool = True) -> Iterator[Path]:
    """Create ``folder`` (checked writable) for the ``with`` block; on leaving, remove what it created if it is
    still empty, so that a run that wrote nothing (every input failed, Ctrl-C) leaves no empty folder behind.

    A folder that existed before is left as it was, and so is any folder that holds a file."""
    folder = Path(folder)
    created = missing_folders(folder)
    try:
        if check_writable:
            check_writable_folder(folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)
        yield folder
    finally:
        remove_empty_folders(created)


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
            raise SettingsError(f"audio format must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}")
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
            raise SettingsError(f"expected {len(self.handles)} stems, got {pieces.shape[0]}")
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

