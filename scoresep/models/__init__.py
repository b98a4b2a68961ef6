"""Plain ``nn.Module`` networks (no Lightning inside): transcriptor (and activity classifier), separators.

Separators are chosen by class path (``scoresep.models.UNetSeparator``, ``scoresep.models.FrameSeparator``,
``scoresep.models.ScoreInformedSeparator`` which also reads the score;
see ``base.py`` for the interface a new one implements, ``registry.py`` for how a class path becomes one).
"""

from scoresep.models.base import SeparatorNetwork, network_masks
from scoresep.models.frame_separator import FrameSeparator, FrameSeparatorConfig
from scoresep.models.registry import build_separator, network_spec, separator_spec
from scoresep.models.score_informed import ScoreInformedConfig, ScoreInformedSeparator
from scoresep.models.unet import UNetConfig, UNetSeparator

__all__ = ["FrameSeparator", "FrameSeparatorConfig", "UNetConfig", "SeparatorNetwork", "UNetSeparator",
           "ScoreInformedConfig", "ScoreInformedSeparator", "network_masks",
           "build_separator", "network_spec", "separator_spec"]
