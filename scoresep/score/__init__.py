"""What a musical score says about a recording, as tensors: which frequency bins each note's harmonics cover
(``harmonics``), the targets a transcriptor learns (``targets``), the score's own separation of a mixture
(``masks``), a MIDI file on the STFT's frames (``rolls``) and the errors of a real score (``perturb``), with the
shape checks every layer uses (``shapes``).

Losses (``scoresep.losses``), training stages and inference all read the score through this package; it knows
nothing about any of them.
"""

from scoresep.score.harmonics import (
    STAGE2_HARMONICS,
    HarmonicSettings,
    bin_frequencies,
    harmonic_mask,
    harmonic_templates,
)
from scoresep.score.masks import (
    check_learned_weight,
    combined_masks,
    learned_split,
    score_masks,
    score_separation,
    shared_masks,
)
from scoresep.score.perturb import ScorePerturbation, perturb_rolls
from scoresep.score.rolls import score_rolls
from scoresep.score.shapes import check_same_shape, check_shape
from scoresep.score.targets import activity_target, isolated_targets

__all__ = [
    "STAGE2_HARMONICS", "HarmonicSettings", "ScorePerturbation", "activity_target", "bin_frequencies",
    "check_learned_weight", "check_same_shape", "check_shape", "combined_masks", "harmonic_mask", "harmonic_templates",
    "isolated_targets", "learned_split", "perturb_rolls", "score_masks", "score_rolls", "score_separation",
    "shared_masks",
]
