"""Align a MIDI score to its recording (music synchronisation), and warp the score onto the recording's time.

A MIDI file found on the web is rarely in time with a recording of the piece: it starts earlier or later, runs at
another tempo, or drifts. The alignment is synctoolbox's (Müller et al., the Sync Toolbox, JOSS 2021): chroma
features of both sides plus decaying locally-adaptive normalised chroma onset (DLNCO) features, aligned by
memory-restricted multi-scale DTW (MrMsDTW), the method its authors publish for audio-score synchronisation. This
module only feeds it (score notes as the note table it reads, audio at the 22.05 kHz of its filterbank), keeps
its progress output off the user's terminal, and turns its warping path into a time map.

``Alignment.quality`` is the mean cosine similarity between the recording's chroma vector and the warped score's
at every aligned frame where both sound: a correct alignment of the right score scores high (0.8-0.9 measured on
mini-Slakh songs), the score of another song aligned to a recording about 0.45, whatever DTW does. ``pack
--align`` refuses a track below ``--min-quality``.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass

import numpy as np
import pretty_midi

from scoresep.errors import UserError

SYNC_SAMPLE_RATE = 22050  # the rate synctoolbox's pitch filterbank is designed for
FEATURE_RATE = 50  # features per second (20 ms): synctoolbox's default
# MrMsDTW step weights for audio-score synchronisation (diagonal steps cost as much as one horizontal plus one
# vertical step less a bonus): the setting of synctoolbox's audio-score examples.
STEP_WEIGHTS = (1.5, 1.5, 2.0)
THRESHOLD_REC = 10**6  # largest DTW area computed in one piece at the finest level
PITCH_RANGE = (21, 108)  # the filterbank's pitches; score notes outside are left out of the features only


class AlignmentError(UserError, RuntimeError):
    """The score cannot be aligned to the recording; the message says why (the caller names the files)."""


@dataclass(frozen=True)
class Alignment:
    """A strictly increasing time map from the score to the recording, and how well the two agree.

    ``score_times`` and ``audio_times``: ``(points,)`` seconds, both strictly increasing; between points the map is
    linear, beyond the last point it goes on with slope 1 (events after the last note keep their distance to it).
    """

    score_times: np.ndarray
    audio_times: np.ndarray
    quality: float

    def audio_time(self, score_time: np.ndarray | float) -> np.ndarray:
        """Recording time of score time(s) (seconds)."""
        times = np.asarray(score_time, dtype=np.float64)
        mapped = np.interp(times, self.score_times, self.audio_times)
        before, after = times < self.score_times[0], times > self.score_times[-1]
        mapped = np.where(before, self.audio_times[0] + times - self.score_times[0], mapped)
        return np.where(after, self.audio_times[-1] + times - self.score_times[-1], mapped)


def _quiet(function, *args, **kwargs):
    """Call a synctoolbox feature function without its progress dots on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def _audio_features(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(chroma (12, frames), DLNCO (12, frames))`` of a mono recording."""
    from synctoolbox.feature.chroma import pitch_to_chroma
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
    from synctoolbox.feature.pitch import audio_to_pitch_features
    from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features

    from scoresep.data.audio import resample

    audio = resample(np.ascontiguousarray(audio, dtype=np.float32), sample_rate, SYNC_SAMPLE_RATE).astype(np.float64)
    pitch = _quiet(audio_to_pitch_features, audio, Fs=SYNC_SAMPLE_RATE, feature_rate=FEATURE_RATE)
    chroma = pitch_to_chroma(pitch)
    peaks = _quiet(audio_to_pitch_onset_features, audio, Fs=SYNC_SAMPLE_RATE)
    onsets = pitch_onset_features_to_DLNCO(peaks, feature_sequence_length=chroma.shape[1], feature_rate=FEATURE_RATE)
    return chroma, onsets


def score_notes(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Every pitched (non-drum) note of a score as ``(notes, 4)`` float64: onset s, offset s, pitch, velocity."""
    rows = [(note.start, note.end, note.pitch, note.velocity) for instrument in midi.instruments
            if not instrument.is_drum for note in instrument.notes]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _score_features(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(chroma, DLNCO)`` of score notes ``(notes, 4)``, on the audio features' frame grid (time 0 = frame 0)."""
    import pandas as pd
    from synctoolbox.feature.chroma import pitch_to_chroma
    from synctoolbox.feature.csv_tools import df_to_pitch_features, df_to_pitch_onset_features
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO

    low, high = PITCH_RANGE
    notes = notes[(notes[:, 2] >= low) & (notes[:, 2] <= high) & (notes[:, 1] > notes[:, 0])]
    if notes.size == 0:
        raise AlignmentError(f"the score has no pitched note in MIDI {low}..{high} to align")
    table = pd.DataFrame({"start": notes[:, 0], "duration": notes[:, 1] - notes[:, 0],
                          "pitch": notes[:, 2].astype(int), "velocity": notes[:, 3], "instrument": "score"})
    chroma = pitch_to_chroma(_quiet(df_to_pitch_features, table, feature_rate=FEATURE_RATE))
    peaks = _quiet(df_to_pitch_onset_features, table)
    onsets = pitch_onset_features_to_DLNCO(peaks, feature_sequence_length=chroma.shape[1], feature_rate=FEATURE_RATE)
    return chroma, onsets


def chroma_agreement(audio_chroma: np.ndarray, score_chroma: np.ndarray, path: np.ndarray) -> float:
    """Mean cosine similarity of the chroma vectors paired by ``path`` ``(2, points)`` (audio row, score row),
    over the pairs where both sides sound (norm above 1/1000 of their largest); 0 when none does."""
    audio, score = audio_chroma[:, path[0]], score_chroma[:, path[1]]
    audio_norm, score_norm = np.linalg.norm(audio, axis=0), np.linalg.norm(score, axis=0)
    sounding = (audio_norm > 1e-3 * audio_norm.max(initial=0)) & (score_norm > 1e-3 * score_norm.max(initial=0))
    if not sounding.any():
        return 0.0
    cosine = (audio * score).sum(axis=0)[sounding] / (audio_norm[sounding] * score_norm[sounding])
    return float(cosine.mean())


def _audio_chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Chroma ``(12, frames)`` of a mono recording (no onset features: what ``score_agreement`` needs)."""
    from synctoolbox.feature.chroma import pitch_to_chroma
    from synctoolbox.feature.pitch import audio_to_pitch_features

    from scoresep.data.audio import resample

    audio = resample(np.ascontiguousarray(audio, dtype=np.float32), sample_rate, SYNC_SAMPLE_RATE).astype(np.float64)
    return pitch_to_chroma(_quiet(audio_to_pitch_features, audio, Fs=SYNC_SAMPLE_RATE, feature_rate=FEATURE_RATE))


# Shifts of the score against the recording (fractions of its length, circular) that measure how much a score
# agrees with this recording by chance: the same notes at the wrong times.
CHANCE_SHIFTS = tuple(k / 11 for k in range(1, 11))


@dataclass(frozen=True)
class Agreement:
    """How well a score agrees with a recording as it is (no alignment): ``agreement`` is the chroma agreement
    (``chroma_agreement``) of frames paired by time, ``by_chance`` its median over the score shifted in time by
    ``CHANCE_SHIFTS`` (circularly): what the same notes give at the wrong times. ``above_chance`` is the
    difference. A partial score (one instrument of a band) agrees less in absolute terms but still well above
    chance; another song's score agrees at chance level."""

    agreement: float
    by_chance: float

    @property
    def above_chance(self) -> float:
        return self.agreement - self.by_chance


def score_agreement(audio: np.ndarray, sample_rate: int, midi: pretty_midi.PrettyMIDI) -> Agreement:
    """How well a score agrees with a recording *as it is*, without aligning it (``Agreement``).

    Measured on 12 mini-Slakh test songs (30 s each), ``above_chance``: their own scores +0.24..+0.56 (one
    instrument's part alone +0.15..+0.63), another song's score -0.07..+0.04; ``agreement`` alone overlaps (own
    0.75-0.90, one part 0.45-0.87, another song 0.06-0.38). About 0.7 s per 30 s of audio on one core.
    """
    score_chroma, _ = _score_features(score_notes(midi))
    audio_chroma = _audio_chroma(audio, sample_rate)
    length = min(audio_chroma.shape[1], score_chroma.shape[1])
    frames = np.arange(length)
    agreement = chroma_agreement(audio_chroma, score_chroma, np.stack([frames, frames]))
    chance = [chroma_agreement(audio_chroma, score_chroma,
                               np.stack([frames, (frames + round(shift * length)) % length]))
              for shift in CHANCE_SHIFTS]
    return Agreement(agreement, float(np.median(chance)))


def align_score(audio: np.ndarray, sample_rate: int, midi: pretty_midi.PrettyMIDI) -> Alignment:
    """Align ``midi`` to the mono recording ``audio`` ``(time,)`` at ``sample_rate``.

    Raises AlignmentError when there is nothing to align (no pitched note, a recording under a second) or
    synctoolbox fails on the pair.
    """
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import make_path_strictly_monotonic

    if audio.size < sample_rate:
        raise AlignmentError(f"the recording is {audio.size / sample_rate:.2f} s long; alignment needs at least 1 s")
    score_chroma, score_onsets = _score_features(score_notes(midi))
    audio_chroma, audio_onsets = _audio_features(audio, sample_rate)
    if not np.isfinite(audio_chroma).all() or float(np.abs(audio_chroma).max(initial=0)) == 0:
        raise AlignmentError("the recording is silent (no chroma energy to align)")
    from synctoolbox.feature.chroma import quantize_chroma

    try:
        path = sync_via_mrmsdtw(f_chroma1=quantize_chroma(audio_chroma), f_onset1=audio_onsets,
                                f_chroma2=quantize_chroma(score_chroma), f_onset2=score_onsets,
                                input_feature_rate=FEATURE_RATE, step_weights=np.array(STEP_WEIGHTS),
                                threshold_rec=THRESHOLD_REC, verbose=False)
        path = make_path_strictly_monotonic(path).astype(np.int64)
    except Exception as error:  # synctoolbox raises ValueError/IndexError on degenerate inputs
        raise AlignmentError(f"synctoolbox could not align the pair ({type(error).__name__}: {error})") from error
    if path.shape[1] < 2:
        raise AlignmentError("the alignment path has fewer than two points")
    quality = chroma_agreement(audio_chroma, score_chroma, path)
    return Alignment(path[1] / FEATURE_RATE, path[0] / FEATURE_RATE, quality)


def checked_alignment(audio: np.ndarray, sample_rate: int, midi: pretty_midi.PrettyMIDI, score_path,
                      recording_name: str, min_quality: float) -> Alignment:
    """``align_score``, refused below ``min_quality``: AlignmentError ``"SCORE: alignment to RECORDING ..."``
    naming both files (what ``pack --align`` and ``separate --align`` report)."""
    try:
        alignment = align_score(audio, sample_rate, midi)
    except AlignmentError as error:
        raise AlignmentError(f"{score_path}: alignment to {recording_name} failed: {error}") from None
    if alignment.quality < min_quality:
        raise AlignmentError(f"{score_path}: alignment to {recording_name} is poor (quality {alignment.quality:.2f} "
                             f"< --min-quality {min_quality:.2f}); is it the score of this recording?")
    return alignment


def warp_score(midi: pretty_midi.PrettyMIDI, alignment: Alignment) -> pretty_midi.PrettyMIDI:
    """A copy of ``midi`` with every note, control change and pitch bend moved to the recording's time.

    The tempo map, key and time signatures stay as they are: they describe the score's beats, and warping them
    can produce tempi a MIDI file cannot store; the events' times in seconds are what a roll is made of. A note
    whose end no longer falls after its start is dropped.
    """
    warped = copy.deepcopy(midi)
    for instrument in warped.instruments:
        if instrument.notes:
            starts = alignment.audio_time(np.array([note.start for note in instrument.notes]))
            ends = alignment.audio_time(np.array([note.end for note in instrument.notes]))
            for note, start, end in zip(instrument.notes, starts, ends, strict=True):
                note.start, note.end = max(0.0, float(start)), max(0.0, float(end))
            instrument.notes = [note for note in instrument.notes if note.end > note.start]
        for events in (instrument.control_changes, instrument.pitch_bends):
            if events:
                times = alignment.audio_time(np.array([event.time for event in events]))
                for event, time in zip(events, times, strict=True):
                    event.time = max(0.0, float(time))
    return warped
