"""Plain ``nn.Module`` networks (no Lightning inside): transcriptor (and activity classifier), separators.

Separators are chosen by class path (``scoresep.models.UNetSeparator``, ``scoresep.models.FrameSeparator``;
see ``base.py`` for the interface a new one implements, ``registry.py`` for how a class path becomes one).
"""

from scoresep.models.base import SeparatorNetwork
from scoresep.models.frame_separator import FrameSeparator, FrameSeparatorConfig
from scoresep.models.registry import build_separator, network_spec, separator_spec
from scoresep.models.unet import UNetConfig, UNetSeparator

__all__ = ["FrameSeparator", "FrameSeparatorConfig", "UNetConfig", "SeparatorNetwork", "UNetSeparator",
           "build_separator", "network_spec", "separator_spec"]
