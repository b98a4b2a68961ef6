"""Frame-wise separator in the manner of Open-Unmix: compress each frame's spectrum, model time, expand to masks.

Per frame, a fully connected layer compresses the log-magnitude spectrum (``freq`` bins) to ``hidden`` features;
a stack of residual dilated 1-D convolutions over time (kernel 3, dilations 1, 2, 4, ... repeating every
``dilation_cycle`` blocks) gives each frame context; the compressed frame and its context are concatenated
(Open-Unmix's skip connection) and expanded by two fully connected layers to one sigmoid mask per instrument.

Why dilated convolutions where Open-Unmix has a BLSTM: the receptive field stays finite (``receptive_field_frames``
= the sum of the dilations), so chunked inference of long recordings equals one pass exactly, which a
bidirectional recurrence cannot give; and 1-D convolutions are the cheapest layers on a CPU. Against the 2-D U-Net
(``UNetSeparator``) a training step costs about a tenth (``benchmarks/train_step.py``), so on a laptop's budget it
sees many more songs.

Input compression is ``log(log_eps + |X|)``: with ``log1p`` (eps 1) the quiet upper partials that carry timbre
enter almost linearly (81 % of a mini-Slakh mixture's cells are below 1); ``log_eps`` 1e-3 compresses the top
~100 dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from scoresep.errors import SettingsError
from scoresep.models.base import SeparatorNetwork


@dataclass
class FrameSeparatorConfig:
    """Size of the frame-wise separator.

    Args:
        hidden: features per frame after the compression layer (Open-Unmix uses 512).
        blocks: residual dilated convolution blocks over time.
        dilation_cycle: dilations double for this many blocks, then start again at 1.
        dropout: dropout after the compression layer and in each block.
        log_eps: ``log(log_eps + magnitude)`` input compression.
    """

    hidden: int = 256
    blocks: int = 6
    dilation_cycle: int = 6
    dropout: float = 0.0
    log_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.blocks < 0 or self.dilation_cycle < 1 or not 0.0 <= self.dropout < 1.0:
            raise SettingsError(f"frame separator size: need hidden >= 1, blocks >= 0, dilation_cycle >= 1, "
                                f"0 <= dropout < 1; got {self}")
        if not self.log_eps > 0:
            raise SettingsError(f"frame separator: log_eps must be > 0, got {self.log_eps}")

    @property
    def dilations(self) -> list[int]:
        return [2 ** (block % self.dilation_cycle) for block in range(self.blocks)]


class DilatedContext:
    """``frame_multiple`` and ``receptive_field_frames`` of a network whose only context over time is a stack of
    kernel-3 convolutions with ``config.dilations`` (each reaches ``d`` frames on each side; the rest is
    frame-wise): ``FrameSeparator`` and ``ScoreInformedSeparator``."""

    config: FrameSeparatorConfig

    @property
    def frame_multiple(self) -> int:
        return 1

    @property
    def receptive_field_frames(self) -> int:
        return sum(self.config.dilations)


class TemporalBlock(nn.Module):
    """``x + ReLU(BN(conv_dilated(x)))`` over ``(batch, hidden, frame)``, length preserved."""

    def __init__(self, hidden: int, dilation: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation, bias=False),
                                    nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.layers(features)


class FrameSeparator(DilatedContext, SeparatorNetwork):
    """A ``SeparatorNetwork`` (arguments there) that works frame by frame, with dilated context over time (the
    module docstring)."""

    config_class = FrameSeparatorConfig

    def __init__(self, n_bins: int, n_instruments: int, config: FrameSeparatorConfig | None = None):
        super().__init__(n_bins, n_instruments, config)
        config = self.config
        hidden = config.hidden
        self.input_norm = nn.BatchNorm1d(n_bins)
        self.compress = nn.Sequential(nn.Conv1d(n_bins, hidden, 1, bias=False), nn.BatchNorm1d(hidden), nn.Tanh(),
                                      nn.Dropout(config.dropout))
        self.temporal = nn.Sequential(*[TemporalBlock(hidden, dilation, config.dropout)
                                        for dilation in config.dilations])
        self.expand = nn.Sequential(nn.Conv1d(2 * hidden, hidden, 1, bias=False), nn.BatchNorm1d(hidden),
                                    nn.ReLU(inplace=True), nn.Conv1d(hidden, n_instruments * n_bins, 1))
        # Start near mask 0.5 everywhere: a neutral split of the mixture that every loss can move from.
        nn.init.zeros_(self.expand[-1].weight)
        nn.init.constant_(self.expand[-1].bias, 0.0)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        self.check_input(magnitude)
        batch, bins, frames = magnitude.shape
        features = self.input_norm(torch.log(magnitude.clamp_min(0) + self.config.log_eps) -
                                   math.log(self.config.log_eps))  # (batch, freq, frame), >= 0 before the norm
        compressed = self.compress(features)  # (batch, hidden, frame)
        context = self.temporal(compressed)
        logits = self.expand(torch.cat([compressed, context], dim=1))  # (batch, instrument * freq, frame)
        return torch.sigmoid(logits.float()).view(batch, self.n_instruments, bins, frames)
