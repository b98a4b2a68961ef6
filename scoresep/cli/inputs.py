"""The inputs and progress of ``separate`` and ``transcribe``: audio files and folders given on the command line,
a whole input's peak, a progress bar in seconds of audio, an ``--out`` that must be a folder, and a batch that
goes on past an input that fails."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from scoresep.data.audio import audio_files
from scoresep.errors import SettingsError

T = TypeVar("T")


def audio_inputs(inputs: list[str]) -> list[Path]:
    """Files given directly, plus the audio files (by suffix) directly inside given folders, in order."""
    files = audio_files(inputs)
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise SettingsError(f"{stems[path.stem]} and {path} would write to the same output names ({path.stem}/); "
                                "separate them in two runs")
        stems[path.stem] = path
    return files


def peak_amplitude(source, block_seconds: float = 30.0) -> float:
    """Largest absolute sample of a source, read block by block (bounded memory)."""
    block, peak = max(1, int(block_seconds * source.sample_rate)), 0.0
    for start in range(0, source.n_samples, block):
        peak = max(peak, float(abs(source.read(start, start + block)).max(initial=0.0)))
    return peak


def _progress(seconds: float, name: str, enabled: bool):
    """A progress bar over a recording's ``seconds`` of audio (a user thinks in seconds, not samples)."""
    from tqdm import tqdm

    return tqdm(total=round(seconds, 1), desc=name, unit="s", disable=not enabled, file=sys.stderr, leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s of audio [{elapsed}<{remaining}]")


def out_folder_argument(out: str) -> Path:
    """``--out`` that must be a folder (it may not exist yet): refused at once when it names an existing file."""
    path = Path(out)
    if os.path.lexists(path) and not path.is_dir():
        raise NotADirectoryError(f"{path}: --out is an existing file, not a folder")
    return path


def each_input(command: str, items: Sequence[T], errors: tuple[type[BaseException], ...],
               work: Callable[[T], str]) -> int:
    """Run ``work`` on every input of a batch and print the line it returns; an error of the types ``errors`` is
    printed as one line (``scoresep COMMAND: error: ...``, naming its file) and the batch goes on with the next
    input. Returns how many inputs failed, for ``end_of_batch``."""
    failures = 0
    for item in items:
        try:
            line = work(item)
        except errors as error:
            failures += 1
            print(f"scoresep {command}: error: {error}", file=sys.stderr)
            continue
        print(line)
    return failures


def end_of_batch(command: str, failures: int, inputs: int) -> None:
    """Exit non-zero when any input of a batch failed (each was reported as it failed, naming its file): with one
    input its error line stays the last line; with several the last line counts the failures."""
    if failures:
        raise SystemExit(f"scoresep {command}: {failures} of {inputs} input(s) failed" if inputs > 1 else 1)
