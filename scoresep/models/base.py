"""What every separator network offers the stages and chunked inference (the interface; ``registry.py`` builds
one from its class path).

A separator network maps a mixture magnitude ``(batch, freq, frame)`` to one mask in [0, 1] per instrument
``(batch, instrument, freq, frame)``. Besides ``forward`` it declares:

- ``frame_multiple``: inputs are padded to a multiple of this many frames (pooling); chunk starts align to it.
- ``receptive_field_frames``: frames on each side of an output frame that can change it (an upper bound);
  chunked inference keeps at least this much context, so it equals one pass over the whole recording.
- ``reads_score``: False for the networks that hear the mixture alone. A network with ``reads_score = True``
  (``ScoreInformedSeparator``) also reads the recording's score at test time: its ``forward`` takes
  ``(magnitude, harmonic)``, ``harmonic`` the score's 0/1 harmonic masks ``(batch, instrument, freq, frame)``.
  Callers go through ``network_masks``, which passes the score to the networks that read it and refuses a call
  without one.

Networks are chosen in the YAML by class path, like any LightningCLI component, and stored in checkpoints as
``{"class_path": ..., "init_args": ...}`` (primitives only), so stage 2, stage 3, ``separate``, ``transcribe``
and ``evaluate`` rebuild any architecture::

    model:
      class_path: scoresep.models.FrameSeparator
      init_args: {hidden: 256, blocks: 6}

``init_args`` are the fields of the network's ``config_class`` dataclass (an unknown or misspelled field is an
error naming the field); ``n_bins`` and ``n_instruments`` come from the feature settings, never from the YAML.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

from scoresep.errors import SettingsError


class SeparatorNetwork(nn.Module, abc.ABC):
    """Base of the separator networks: mixture magnitude ``(batch, freq, frame)`` -> masks
    ``(batch, instrument, freq, frame)`` in [0, 1]; see the module docstring.

    Args:
        n_bins: frequency bins (``n_fft // 2 + 1``).
        n_instruments: number of masks I.
        config: network size, an instance of ``config_class`` (None: its defaults), kept as ``self.config``.
    """

    config_class: ClassVar[type]
    reads_score: ClassVar[bool] = False

    def __init__(self, n_bins: int, n_instruments: int, config: Any = None):
        super().__init__()
        self.n_bins, self.n_instruments = n_bins, n_instruments
        self.config = config if config is not None else self.config_class()

    @property
    @abc.abstractmethod
    def frame_multiple(self) -> int:
        """Inputs are padded to a multiple of this many frames."""

    @property
    @abc.abstractmethod
    def receptive_field_frames(self) -> int:
        """Frames on each side of an output frame that can change it (an upper bound)."""

    def check_input(self, magnitude) -> None:
        if magnitude.ndim != 3 or magnitude.shape[1] != self.n_bins:
            raise SettingsError(f"{type(self).__name__} expects a magnitude (batch, freq={self.n_bins}, frame), "
                                f"got shape {tuple(magnitude.shape)}")


def network_masks(network: SeparatorNetwork, magnitude: torch.Tensor,
                  harmonic: torch.Tensor | None = None) -> torch.Tensor:
    """The masks ``(batch, instrument, freq, frame)`` of ``network`` for a mixture magnitude
    ``(batch, freq, frame)``; ``harmonic`` (the score's harmonic masks ``(batch, instrument, freq, frame)``) goes
    to the networks that read the score and is not needed by the others."""
    if not network.reads_score:
        return network(magnitude)
    if harmonic is None:
        raise SettingsError(f"{type(network).__name__} reads the score: it separates a recording only together "
                            "with its score (scoresep separate --score, evaluate reads the test score)")
    return network(magnitude, harmonic)
