"""What ``Separator`` and ``Transcriber`` share: the feature settings their network was trained with, and the two
of them a user reads most (``instruments``, ``sample_rate``: the rate of every waveform they return)."""

from __future__ import annotations

from scoresep.features import FeatureSettings


class TrainedOn:
    """A mixin for objects holding ``features`` (``FeatureSettings``)."""

    features: FeatureSettings

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.features.instruments

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate
