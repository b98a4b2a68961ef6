"""Losses as pure functions returning one value per batch item: ``(batch,)``."""

from scoresep.losses.mixture import bin_frequencies, harmonic_mask, harmonic_templates, mixture_loss
from scoresep.losses.score import score_loss
from scoresep.losses.supervised import supervised_loss

__all__ = ["bin_frequencies", "harmonic_mask", "harmonic_templates", "mixture_loss", "score_loss", "supervised_loss"]
