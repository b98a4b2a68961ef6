"""U-Net separator: mixture magnitude -> one T-F mask in [0, 1] per instrument (a 2-D U-Net over log-magnitude).

The separated spectrogram of instrument ``i`` is ``S_i = M_i * X``. Masks are independent sigmoids (not a
softmax), as in the paper: an instrument absent from the clip can get an all-zero mask, and nothing forces
the masks to add up to one except the mixture loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scoresep.errors import SettingsError
from scoresep.models.base import SeparatorNetwork


@dataclass
class UNetConfig:
    """Size of the U-Net. The defaults (``small``) train on 2 CPU cores in minutes; ``UNetConfig.paper()``
    (channels 32, depth 5) is sized for a GPU.

    Args:
        channels: channels of the first level; each level down doubles them.
        depth: number of 2x down-sampling levels (frequency and time).
        dropout: dropout in the bottleneck.
    """

    channels: int = 12
    depth: int = 3
    dropout: float = 0.0

    @classmethod
    def paper(cls) -> UNetConfig:
        return cls(channels=32, depth=5, dropout=0.1)

    def __post_init__(self) -> None:
        if self.channels < 1 or not 1 <= self.depth <= 8 or not 0.0 <= self.dropout < 1.0:
            raise SettingsError(f"separator size: need channels >= 1, 1 <= depth <= 8, 0 <= dropout < 1; got {self}")


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNetSeparator(SeparatorNetwork):
    """A ``SeparatorNetwork`` (arguments there): a 2-D U-Net over the log-magnitude."""

    config_class = UNetConfig

    def __init__(self, n_bins: int, n_instruments: int, config: UNetConfig | None = None):
        super().__init__(n_bins, n_instruments, config)
        config = self.config
        self.input_norm = nn.BatchNorm1d(n_bins)
        widths = [config.channels * 2**level for level in range(config.depth + 1)]
        self.down = nn.ModuleList([_block(1 if level == 0 else widths[level - 1], widths[level])
                                   for level in range(config.depth)])
        self.bottleneck = nn.Sequential(_block(widths[-2], widths[-1]), nn.Dropout2d(config.dropout))
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                 for level in reversed(range(config.depth))])
        self.decode = nn.ModuleList([_block(2 * widths[level], widths[level])
                                     for level in reversed(range(config.depth))])
        self.head = nn.Conv2d(widths[0], n_instruments, 1)

    @property
    def frame_multiple(self) -> int:
        """The U-Net pools time by this factor: inputs are padded to a multiple of it."""
        return 2**self.config.depth

    @property
    def receptive_field_frames(self) -> int:
        """Frames on each side of an output frame that can change it (an upper bound).

        Per level ``l`` (time resolution ``2**l``): two 3x3 convolutions on the way down and two on the way up
        reach ``4 * 2**l`` frames, pooling and the transposed convolution ``2 * 2**l``; the bottleneck's two
        convolutions ``2 * 2**depth``. Chunked inference uses at least this much context (tested).
        """
        depth = self.config.depth
        return sum(6 * 2**level for level in range(depth)) + 2 * 2**depth

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        self.check_input(magnitude)
        _, bins, frames = magnitude.shape
        multiple = 2**self.config.depth
        pad_bins, pad_frames = (-bins) % multiple, (-frames) % multiple
        features = self.input_norm(torch.log1p(magnitude.clamp_min(0)))
        features = F.pad(features, (0, pad_frames, 0, pad_bins)).unsqueeze(1)
        skips = []
        for block in self.down:
            features = block(features)
            skips.append(features)
            features = F.max_pool2d(features, 2)
        features = self.bottleneck(features)
        for upsample, block, skip in zip(self.up, self.decode, reversed(skips), strict=True):
            features = block(torch.cat([upsample(features), skip], dim=1))
        masks = torch.sigmoid(self.head(features).float())
        return masks[..., :bins, :frames]
