"""Typed command-line values, refused at the door: argparse ``type=`` functions whose error becomes the
command's last line (``scoresep separate: error: argument --n-harmonics: ...``), before any file is read.

argparse's own ``int``/``float`` accept ``0``, ``-3``, ``nan`` and ``inf`` wherever a number parses, which then
either changes nothing (``--n-harmonics 0`` fell back to the default) or fails deep inside the computation.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
    return value


def at_least_one(text: str) -> int:
    """An integer >= 1 (a count: harmonics per note, workers)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (seconds, semitones)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0 (a tolerance in seconds)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    """A finite number in [0, 1] (a quality or agreement)."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def chance(text: str) -> float:
    """A probability threshold strictly between 0 and 1 (0 marks every frame a note, 1 none)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def add_score_check_options(parser: argparse.ArgumentParser, align_help: str) -> None:
    """``--align``, ``--min-quality`` and ``--length-tolerance``: how ``separate --score`` and ``pack`` check a
    score against its recording (``data/score_check.py``), spelled and bounded the same in both."""
    from scoresep.constants import ALIGN_MIN_QUALITY, PACK_LENGTH_TOLERANCE

    parser.add_argument("--align", action="store_true", help=align_help)
    parser.add_argument("--min-quality", type=unit_interval, default=ALIGN_MIN_QUALITY,
                        help="with --align: refuse an alignment of lower quality (0-1); without: 0 skips the check "
                             f"that the score agrees with the recording above chance (default {ALIGN_MIN_QUALITY:g})")
    parser.add_argument("--length-tolerance", type=non_negative, default=PACK_LENGTH_TOLERANCE,
                        help="without --align: largest difference of recording and score length in s "
                             f"(default {PACK_LENGTH_TOLERANCE:g})")


def add_compute_options(parser: argparse.ArgumentParser, threshold: bool = False) -> None:
    """``--chunk-seconds`` and ``--device`` (and, for commands that transcribe, ``--threshold``), spelled, bounded
    and explained the same by every command that runs a model on audio."""
    if threshold:
        parser.add_argument("--threshold", type=chance, default=None,
                            help="note probability threshold for every instrument (default: the checkpoint's "
                                 "calibrated per-instrument thresholds; 0.5 for checkpoints without)")
    parser.add_argument("--chunk-seconds", type=positive, default=30.0, help="audio per chunk (memory bound)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
