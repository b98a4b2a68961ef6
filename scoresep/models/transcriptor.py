"""Transcriptor: magnitude spectrogram -> per-instrument piano-roll logits.

An onsets-and-frames-style acoustic model: optionally a fixed map from STFT bins to semitone-spaced bands
(``bands_per_semitone``; see log_frequency.py), log compression ``log(log_eps + x)`` and per-band batch
normalisation of the input (so separated spectrograms, whose level differs from mixtures, can be fed later),
optionally a harmonic stack of the log-frequency input (``harmonics``: the bands shifted so that harmonic ``h`` of
every pitch lines up with its fundamental, one input channel per ``h``, as in Bittner et al.'s harmonic CQT),
a 2-D CNN front end
that pools along frequency only, a dense projection per frame, an optional bidirectional GRU over time, and
a linear head to ``instruments x pitches`` logits per frame.

With ``n_pitches=1`` the same network is the baseline's frame-level instrument-activity classifier.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from scoresep.constants import MIN_MIDI, SAMPLE_RATE
from scoresep.errors import SettingsError
from scoresep.models.log_frequency import log_frequency_filterbank


@dataclass
class TranscriptorConfig:
    """Size of the transcriptor. ``small`` (the defaults) trains on 2 CPU cores in minutes; the paper-sized
    network is ``TranscriptorConfig.paper()`` (channels 48, conv_blocks 3, hidden 512, rnn_layers 2).

    Args:
        channels: convolution channels of the front end.
        conv_blocks: blocks of two 3x3 convolutions followed by 2x pooling along frequency.
        hidden: width of the per-frame projection and of the (bidirectional) GRU output.
        rnn_layers: GRU layers over time (0: none, frames are independent after the CNN).
        dropout: dropout after each block and the projection.
        bands_per_semitone: 0 reads the linear STFT bins; ``b`` > 0 first maps them to ``b`` bands per semitone
            (log frequency: 2.1x cheaper forward + backward at 2, and pitch shifts become shifts).
        log_eps: input compression ``log(log_eps + magnitude)``. 1 is ``log1p``, which leaves the quiet partials
            nearly linear (81 % of a mini-Slakh mixture's cells are below 1); 1e-3 compresses the top ~100 dB.
        harmonics: with log-frequency bands, stack the input shifted by ``12 * log2(h)`` semitones for each ``h``
            as convolution channels (``[1]`` or ``[]``: the input alone). A 3x3 convolution then sees a pitch's
            partials together although they lie octaves apart on the band axis; the low notes, whose fundamentals
            the 1024-point STFT does not resolve, are read from their partials.
    """

    channels: int = 8
    conv_blocks: int = 1
    hidden: int = 256
    rnn_layers: int = 1
    dropout: float = 0.1
    bands_per_semitone: int = 2
    log_eps: float = 1e-3
    harmonics: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0, 4.0, 5.0])

    @classmethod
    def paper(cls) -> TranscriptorConfig:
        return cls(channels=48, conv_blocks=3, hidden=512, rnn_layers=2, dropout=0.25, bands_per_semitone=2,
                   log_eps=1e-3, harmonics=[0.5, 1.0, 2.0, 3.0, 4.0, 5.0])

    def __post_init__(self) -> None:
        if min(self.channels, self.conv_blocks, self.hidden) < 1 or self.rnn_layers < 0:
            raise SettingsError(f"transcriptor size: channels, conv_blocks, hidden must be >= 1, got {self}")
        if self.hidden % 2:
            raise SettingsError(f"transcriptor size: hidden must be even (bidirectional GRU), got {self.hidden}")
        if self.bands_per_semitone < 0 or not self.log_eps > 0:
            raise SettingsError(f"transcriptor: need bands_per_semitone >= 0 and log_eps > 0, got {self}")
        self.harmonics = [float(h) for h in self.harmonics]
        if any(not h > 0 for h in self.harmonics) or len(set(self.harmonics)) != len(self.harmonics):
            raise SettingsError(f"transcriptor: harmonics must be distinct and > 0, got {self.harmonics}")
        if self.harmonics not in ([], [1.0]) and not self.bands_per_semitone:
            raise SettingsError("transcriptor: harmonics need log-frequency bands (bands_per_semitone > 0), "
                                f"got harmonics={self.harmonics} with bands_per_semitone=0")
        if not 0.0 <= self.dropout < 1.0:
            raise SettingsError(f"transcriptor size: dropout must be in [0, 1), got {self.dropout}")


class Transcriptor(nn.Module):
    """Magnitude ``(batch, freq, frame)`` -> logits ``(batch, instrument, pitch, frame)``.

    Args:
        n_bins: frequency bins of the input (``n_fft // 2 + 1``).
        n_instruments: output channels I.
        n_pitches: pitch rows P (88 for notes, 1 for the activity classifier).
        config: network size.
        sample_rate, lowest_midi: where the log-frequency bands lie (used when ``bands_per_semitone`` > 0).
    """

    def __init__(self, n_bins: int, n_instruments: int, n_pitches: int, config: TranscriptorConfig | None = None,
                 sample_rate: int = SAMPLE_RATE, lowest_midi: int = MIN_MIDI):
        super().__init__()
        config = config or TranscriptorConfig()
        self.n_bins, self.n_instruments, self.n_pitches, self.config = n_bins, n_instruments, n_pitches, config
        if config.bands_per_semitone:
            bank = log_frequency_filterbank(sample_rate, 2 * (n_bins - 1), lowest_midi, config.bands_per_semitone)
            self.register_buffer("filterbank", bank, persistent=False)  # fixed: rebuilt, never checkpointed
        else:
            self.filterbank = None
        bins = n_bins if self.filterbank is None else self.filterbank.shape[0]
        self.input_norm = nn.BatchNorm1d(bins)
        shifts = [round(12 * math.log2(h) * config.bands_per_semitone) for h in config.harmonics]
        self.harmonic_shifts = shifts if shifts not in ([], [0]) else []
        blocks, in_channels = [], max(1, len(self.harmonic_shifts))
        for _ in range(config.conv_blocks):
            blocks += [
                nn.Conv2d(in_channels, config.channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(config.channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(config.channels, config.channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(config.channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d((2, 1)),
                nn.Dropout(config.dropout),
            ]
            in_channels, bins = config.channels, bins // 2
        if bins < 1:
            raise SettingsError(f"transcriptor: {config.conv_blocks} pooling blocks leave no frequency bin of {n_bins}")
        self.frontend = nn.Sequential(*blocks)
        self.projection = nn.Sequential(nn.Linear(config.channels * bins, config.hidden), nn.ReLU(inplace=True),
                                        nn.Dropout(config.dropout))
        self.rnn = (nn.GRU(config.hidden, config.hidden // 2, num_layers=config.rnn_layers, batch_first=True,
                           bidirectional=True) if config.rnn_layers else None)
        self.head = nn.Linear(config.hidden, n_instruments * n_pitches)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        if magnitude.ndim != 3 or magnitude.shape[1] != self.n_bins:
            raise SettingsError(f"Transcriptor expects a magnitude (batch, freq={self.n_bins}, frame), "
                                f"got shape {tuple(magnitude.shape)}")
        batch, _, frames = magnitude.shape
        eps = self.config.log_eps
        # The fixed front end stays fp32 under autocast: a bf16 filterbank product would err by ~0.4 % per band.
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            magnitude = magnitude.float().clamp_min(0)
            if self.filterbank is not None:
                magnitude = torch.matmul(self.filterbank.float(), magnitude)  # (batch, band, frame)
            features = self.input_norm(torch.log(magnitude + eps) - math.log(eps))  # >= 0; log1p when eps = 1
        # channels_last: the 2-D convolutions' forward + backward ran 1.15-1.27x faster on the CPU (fp32 and bf16).
        stacked = self.harmonic_stack(features).contiguous(memory_format=torch.channels_last)
        features = self.frontend(stacked)  # (batch, channels, bins', frame)
        features = self.projection(features.flatten(1, 2).transpose(1, 2))  # (batch, frame, hidden)
        if self.rnn is not None:
            features, _ = self.rnn(features)
        logits = self.head(features)  # (batch, frame, instrument * pitch)
        return logits.view(batch, frames, self.n_instruments, self.n_pitches).permute(0, 2, 3, 1)

    def harmonic_stack(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, band, frame)`` -> ``(batch, harmonic, band, frame)``: channel ``j`` at band ``k`` holds band
        ``k + shift_j`` (zero beyond the ends), so harmonic ``h_j`` of the pitch at band ``k`` sits at ``k``."""
        if not self.harmonic_shifts:
            return features.unsqueeze(1)
        bands = features.shape[1]
        channels = []
        for shift in self.harmonic_shifts:
            shifted = torch.zeros_like(features)
            if shift >= 0:
                if shift < bands:
                    shifted[:, :bands - shift] = features[:, shift:]
            elif -shift < bands:
                shifted[:, -shift:] = features[:, :bands + shift]
            channels.append(shifted)
        return torch.stack(channels, 1)


def folded_for_inference(transcriptor: Transcriptor) -> Transcriptor:
    """An eval-mode copy of ``transcriptor`` whose front-end BatchNorm layers are folded into the convolutions
    before them (``torch.nn.utils.fusion.fuse_conv_bn_eval``), for a frozen critic.

    Gradients still flow through it to its input; its own parameters are frozen. In eval mode a BatchNorm is an
    affine map per channel, so the folded network computes the same logits to float rounding, but its forward and
    backward skip one pass over every front-end activation: a stage-2 step of the mini preset took 959 -> 856 ms
    and 971 -> 912 ms in two runs on one CPU thread (``benchmarks/folded_critic.py``). The original is left
    untouched, so the checkpoint keeps the critic as stage 1 trained it.
    """
    folded = copy.deepcopy(transcriptor).eval()
    layers = list(folded.frontend)
    for index in range(len(layers) - 1):
        if isinstance(layers[index], nn.Conv2d) and isinstance(layers[index + 1], nn.BatchNorm2d):
            layers[index], layers[index + 1] = fuse_conv_bn_eval(layers[index], layers[index + 1]), nn.Identity()
    folded.frontend = nn.Sequential(*layers)
    return folded.requires_grad_(False)
