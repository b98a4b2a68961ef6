"""Losses as pure functions returning one value per batch item: ``(batch,)``."""

from scoresep.losses.adversarial import (
    aml_separator_loss,
    aml_transcriptor_loss,
    artificial_mixtures,
    atl_separator_loss,
    atl_transcriptor_loss,
    mixing_pairs,
    transcription_bce,
)
from scoresep.losses.mixture import harmonic_leak_loss, mixture_loss
from scoresep.losses.score import score_loss
from scoresep.losses.score_target import score_target_loss
from scoresep.losses.supervised import supervised_loss

__all__ = [
    "aml_separator_loss", "aml_transcriptor_loss", "artificial_mixtures", "atl_separator_loss", "atl_transcriptor_loss",
    "harmonic_leak_loss", "mixing_pairs", "mixture_loss", "score_loss", "score_target_loss", "supervised_loss",
    "transcription_bce",
]
