"""LightningModules that compose models, losses and metrics: one per training stage."""

from scoresep.stages.transcriptor import TranscriptorStage

__all__ = ["TranscriptorStage"]
