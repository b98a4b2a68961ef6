"""LightningModules that compose models, losses and metrics: one per training stage."""

from scoresep.stages.adversarial import AdversarialStage
from scoresep.stages.separator import SeparatorStage
from scoresep.stages.transcriptor import TranscriptorStage

__all__ = ["AdversarialStage", "SeparatorStage", "TranscriptorStage"]
