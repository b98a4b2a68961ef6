"""Primitive defaults shared by data, features and models (numbers only, no logic).

The frame rate of every piano roll is ``sample_rate / hop_length``: roll frame ``n`` is the STFT frame
centred on sample ``n * hop_length`` (``center=True``), so a clip of ``T`` samples has ``1 + T // hop_length``
frames in both the roll and the spectrogram.
"""

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP_LENGTH = 256
MIN_MIDI = 21  # A0, lowest piano key
MAX_MIDI = 108  # C8, highest piano key
N_PITCHES = MAX_MIDI - MIN_MIDI + 1
DEFAULT_INSTRUMENTS = ("bass", "guitar", "piano")
# Bumped whenever the cache's content or layout changes, so old caches are rebuilt, never reused.
CACHE_VERSION = 2

# scoresep pack: largest recording/score length difference without --align (s); with --align, the lowest
# alignment quality (mean chroma cosine along the path, data/align.py) a packed track may have.
PACK_LENGTH_TOLERANCE = 2.0
ALIGN_MIN_QUALITY = 0.65
# Harmonic masks of a score (L_h-mix and score-informed separation): harmonics per note, half-width in semitones.
N_HARMONICS = 8
HARMONIC_TOLERANCE = 0.5
# `separate --score --ckpt <audio-only>`: the weight of the checkpoint's split of the bins that several instruments'
# notes cover, against an equal split (score.combined_masks). Chosen on the mini-Slakh validation songs as the
# weight whose worst gain over the score masks, across the preset's audio-only checkpoints, is largest
# (docs/results.md "Audio-only checkpoints with the score").
LEARNED_WEIGHT = 0.25
# Peak amplitude below which a whole input recording counts as silent (nothing to separate or transcribe).
SILENCE = 1e-5


def n_frames(n_samples: int, hop_length: int) -> int:
    """Number of centred STFT frames (and piano-roll frames) for ``n_samples`` samples."""
    return 1 + n_samples // hop_length
