"""Losses as pure functions returning one value per batch item: ``(batch,)``."""

from scoresep.losses.adversarial import (
    aml_separator_loss,
    aml_transcriptor_loss,
    artificial_mixtures,
    atl_separator_loss,
    atl_transcriptor_loss,
    mixing_pairs,
)
from scoresep.losses.mixture import harmonic_leak_loss, mixture_loss
from scoresep.losses.remix import remix, remix_loss, remix_picks
from scoresep.losses.score import score_loss
from scoresep.losses.score_target import score_target_loss
from scoresep.losses.supervised import supervised_loss
from scoresep.losses.transcription import note_bce, transcription_bce

__all__ = [
    "aml_separator_loss", "aml_transcriptor_loss", "artificial_mixtures", "atl_separator_loss", "atl_transcriptor_loss",
    "harmonic_leak_loss", "mixing_pairs", "mixture_loss", "note_bce", "remix", "remix_loss",
    "remix_picks", "score_loss", "score_target_loss",
    "supervised_loss", "transcription_bce",
]
