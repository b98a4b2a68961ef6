"""Does a score fit its recording? One check, shared by ``scoresep separate --score`` and ``scoresep pack``, with
and without ``--align``, so that a wrong pairing is refused with its numbers instead of giving silent stems.

A score is refused (``ScoreFitError``, naming the score and the recording) when:

- it holds no note of the instruments asked for, or fewer than ``MIN_NOTES_IN_RANGE`` of those notes lie inside
  the pitch range (the rest would land in the residual);
- without ``align``: its length and the recording's differ by more than ``length_tolerance`` seconds, or it does
  not agree with the recording as it is (its chroma agreement with the recording, frames paired by time, is less
  than ``MIN_ABOVE_CHANCE`` above what the same score shifted in time gives: the score of another song, or one
  that is not in time with the recording; ``min_quality`` 0 skips this check);
- with ``align``: the alignment is poor (below ``min_quality``), or it stretches or squeezes the score's notes by
  more than ``MAX_STRETCH`` (a 5-s score "aligned" over a 30-s recording).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

from scoresep.data.align import AlignmentError, checked_alignment, score_agreement, warp_score
from scoresep.data.midi import MidiError
from scoresep.errors import SettingsError
from scoresep.instruments import instrument_of

# The least share of a score's notes (of the instruments asked for) that must lie in the pitch range.
MIN_NOTES_IN_RANGE = 0.5
# The most an alignment may stretch (or squeeze) the span of a score's notes; a performance at half or twice the
# score's tempo throughout is far more often another piece, or a part of one, than a real performance.
MAX_STRETCH = 2.0
# Without alignment: how far above chance a score's chroma agreement with the recording must be (``align.Agreement``).
# Measured on 30-s mini-Slakh songs: a song's own score +0.24 or more, one part of it alone +0.15 or more, another
# song's score +0.05 at most; on 6-s clips, own +0.19 or more, another song's +0.09 at most.
MIN_ABOVE_CHANCE = 0.12


class ScoreFitError(MidiError):
    """A score that does not fit its recording; the message names both and gives the numbers."""


@dataclass(frozen=True)
class ScoreFit:
    """What the check measured: notes of the instruments asked for (and how many in the pitch range), the
    score's and the recording's lengths (s), the chroma agreement (0-1; after aligning with ``align``) and,
    aligned, how much the alignment stretched the notes' span."""

    notes: int
    notes_in_range: int
    score_seconds: float
    recording_seconds: float
    agreement: float
    aligned: bool
    stretch: float | None = None


def notes_in_range(midi: pretty_midi.PrettyMIDI, instruments: tuple[str, ...], min_midi: int, max_midi: int
                   ) -> tuple[int, int]:
    """``(notes of the instruments, those with a pitch in [min_midi, max_midi])``; each MIDI instrument counted
    for ours by its GM program, drums never."""
    total = inside = 0
    for part in midi.instruments:
        if instrument_of(None, part.program, part.is_drum) not in instruments:
            continue
        total += len(part.notes)
        inside += sum(min_midi <= note.pitch <= max_midi for note in part.notes)
    return total, inside


def _note_span(midi: pretty_midi.PrettyMIDI) -> tuple[float, float]:
    """``(first onset, last offset)`` of the pitched notes, in seconds."""
    notes = [note for part in midi.instruments if not part.is_drum for note in part.notes]
    return min(note.start for note in notes), max(note.end for note in notes)


def fit_score(midi: pretty_midi.PrettyMIDI, score_name: str, audio: np.ndarray, sample_rate: int,
              recording_name: str, instruments: tuple[str, ...], min_midi: int, max_midi: int, *, align: bool,
              length_tolerance: float, min_quality: float) -> tuple[pretty_midi.PrettyMIDI, ScoreFit]:
    """Check ``midi`` (read from ``score_name``) against the mono recording ``audio`` ``(time,)``; returns the
    score on the recording's time (aligned first with ``align``) and the figures. ScoreFitError or
    AlignmentError naming both files when it does not fit (see the module's docstring)."""
    total, inside = notes_in_range(midi, instruments, min_midi, max_midi)
    if total == 0:
        raise ScoreFitError(f"{score_name}: the score has no note of {', '.join(instruments)}")
    if inside < MIN_NOTES_IN_RANGE * total:
        raise ScoreFitError(f"{score_name}: only {inside} of its {total} notes of {', '.join(instruments)} lie in the "
                            f"pitch range MIDI {min_midi}..{max_midi} ({inside / total:.0%}; at least "
                            f"{MIN_NOTES_IN_RANGE:.0%} must): is it transposed, or not a score of these instruments?")
    recording_seconds = audio.shape[-1] / sample_rate
    score_seconds = float(midi.get_end_time())
    if align:
        alignment = checked_alignment(audio, sample_rate, midi, score_name, recording_name, min_quality)
        first, last = _note_span(midi)
        mapped = alignment.audio_time(np.array([first, last]))
        stretch = float(mapped[1] - mapped[0]) / max(last - first, 1e-6)
        if not 1 / MAX_STRETCH <= stretch <= MAX_STRETCH:
            raise ScoreFitError(
                f"{score_name}: the alignment to {recording_name} stretches the score's {last - first:.1f} s of notes "
                f"over {mapped[1] - mapped[0]:.1f} s of the recording ({stretch:.2f}x; accepted "
                f"{1 / MAX_STRETCH:.2f}x-{MAX_STRETCH:g}x): is it the score of this whole recording?")
        return warp_score(midi, alignment), ScoreFit(total, inside, score_seconds, recording_seconds,
                                                     alignment.quality, True, stretch)
    if abs(score_seconds - recording_seconds) > length_tolerance:
        raise ScoreFitError(
            f"{score_name}: recording and score lengths differ by {abs(score_seconds - recording_seconds):.1f} s "
            f"(recording {recording_name} {recording_seconds:.1f} s, score {score_seconds:.1f} s; --length-tolerance "
            f"{length_tolerance:g} s): give --align to align the score")
    try:
        agreement = score_agreement(audio, sample_rate, midi)
    except AlignmentError as error:
        raise ScoreFitError(f"{score_name}: cannot compare the score with {recording_name}: {error}") from None
    if min_quality > 0 and agreement.above_chance < MIN_ABOVE_CHANCE:
        raise ScoreFitError(
            f"{score_name}: the score does not agree with {recording_name} as it is: chroma agreement "
            f"{agreement.agreement:.2f}, by chance (the score shifted in time) {agreement.by_chance:.2f}, "
            f"{agreement.above_chance:+.2f} above chance where at least {MIN_ABOVE_CHANCE:+.2f} is needed. Is it the "
            "score of this recording? If it is, give --align to align it (--min-quality 0 skips this check)")
    return midi, ScoreFit(total, inside, score_seconds, recording_seconds, agreement.agreement, False)


def check_thresholds(length_tolerance: float, min_quality: float) -> None:
    """ValueError naming the option when ``--length-tolerance`` or ``--min-quality`` is out of its range."""
    if not np.isfinite(length_tolerance) or length_tolerance < 0:
        raise SettingsError(f"--length-tolerance {length_tolerance:g}: must be a number of seconds >= 0")
    if not np.isfinite(min_quality) or not 0 <= min_quality <= 1:
        raise SettingsError(f"--min-quality {min_quality:g}: must be between 0 and 1 (a chroma agreement)")
