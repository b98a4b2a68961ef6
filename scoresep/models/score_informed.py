"""Score-informed separator: the mixture magnitude and the recording's score in, one mask per instrument out.

The score enters as each instrument's 0/1 harmonic masks ``H_i`` (bins near the harmonics of its sounding notes,
``score.harmonic_mask``). The network starts from the training-free formula of ``score.masks`` and learns a
correction to it:

- Per bin there are ``I + 1`` classes, the instruments and "no instrument" (the residual). Their prior is the
  formula: ``F_i = H_i / max(1, sum_j H_j)`` and ``F_none = 1 - sum_i F_i``.
- The masks are ``softmax(log(F + prior_floor) + correction)`` over the classes, without the last one. They
  sum to at most 1 in each bin, so the separated sources never hold more than the mixture.
- The correction comes from a frame-wise trunk, the one of ``FrameSeparator``. Each frame's log-magnitude and
  every instrument's ``H_i`` are compressed to ``hidden`` features, dilated convolutions over time give them
  context, and a dense layer expands them to one correction per class and bin. The last layer starts at zero,
  so an untrained network *is* the formula, and training only has to learn where the formula is wrong: bins
  that several instruments share, onsets, vibrato, a note's body below its fundamental, what a score leaves out.

The receptive field over time is that of the trunk (the sum of the dilations); frames are independent
otherwise, so chunked inference equals one pass (``frame_multiple`` 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from scoresep.errors import SettingsError
from scoresep.models.base import SeparatorNetwork
from scoresep.models.frame_separator import DilatedContext, FrameSeparatorConfig, TemporalBlock
from scoresep.score.masks import shared_masks


@dataclass
class ScoreInformedConfig(FrameSeparatorConfig):
    """Size of the score-informed separator: its trunk's (``FrameSeparatorConfig``: hidden, blocks,
    dilation_cycle, dropout, log_eps), and

    Args:
        prior_floor: added to the formula's shares before their log. It bounds the prior's logits (``log`` of
            ``prior_floor`` where the score puts no note), so the correction can still give such a bin to an
            instrument; an untrained network gives a bin that only one instrument covers to it up to a share of
            about ``1 - I * prior_floor``.
    """

    prior_floor: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.prior_floor < 1:
            raise SettingsError(f"score-informed separator: need 0 < prior_floor < 1, got {self.prior_floor}")


class ScoreInformedSeparator(DilatedContext, SeparatorNetwork):
    """A ``SeparatorNetwork`` that reads the score (``reads_score``): ``forward(magnitude, harmonic)``, see the
    module docstring."""

    config_class = ScoreInformedConfig
    reads_score = True

    def __init__(self, n_bins: int, n_instruments: int, config: ScoreInformedConfig | None = None):
        super().__init__(n_bins, n_instruments, config)
        config, hidden = self.config, self.config.hidden
        self.input_norm = nn.BatchNorm1d(n_bins)
        self.compress = nn.Sequential(nn.Conv1d((1 + n_instruments) * n_bins, hidden, 1, bias=False),
                                      nn.BatchNorm1d(hidden), nn.Tanh(), nn.Dropout(config.dropout))
        self.temporal = nn.Sequential(*[TemporalBlock(hidden, dilation, config.dropout)
                                        for dilation in config.dilations])
        self.expand = nn.Sequential(nn.Conv1d(2 * hidden, hidden, 1, bias=False), nn.BatchNorm1d(hidden),
                                    nn.ReLU(inplace=True), nn.Conv1d(hidden, (n_instruments + 1) * n_bins, 1))
        nn.init.zeros_(self.expand[-1].weight)  # untrained: the formula itself
        nn.init.zeros_(self.expand[-1].bias)

    def prior_logits(self, harmonic: torch.Tensor) -> torch.Tensor:
        """``log(F + prior_floor)`` of the formula's shares, ``(batch, instrument + 1, freq, frame)``, fp32."""
        shares = shared_masks(harmonic.float(), dim=1)
        residual = (1.0 - shares.sum(1, keepdim=True)).clamp_min(0.0)
        return torch.log(torch.cat([shares, residual], 1) + self.config.prior_floor)

    def forward(self, magnitude: torch.Tensor, harmonic: torch.Tensor) -> torch.Tensor:
        self.check_input(magnitude)
        batch, bins, frames = magnitude.shape
        if harmonic.shape != (batch, self.n_instruments, bins, frames):
            raise SettingsError(f"ScoreInformedSeparator expects harmonic masks (batch, instrument, freq, frame) = "
                                f"{(batch, self.n_instruments, bins, frames)}, got {tuple(harmonic.shape)}")
        features = self.input_norm(torch.log(magnitude.clamp_min(0) + self.config.log_eps) -
                                   math.log(self.config.log_eps))  # (batch, freq, frame)
        inputs = torch.cat([features, harmonic.to(features.dtype).flatten(1, 2)], 1)  # (batch, (1 + I) * freq, frame)
        compressed = self.compress(inputs)
        context = self.temporal(compressed)
        correction = self.expand(torch.cat([compressed, context], dim=1))  # (batch, (I + 1) * freq, frame)
        logits = self.prior_logits(harmonic) + correction.float().view(batch, self.n_instruments + 1, bins, frames)
        return torch.softmax(logits, dim=1)[:, :self.n_instruments]
