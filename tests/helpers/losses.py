"""A separator loss term of a "user's own package": the tests name it by class path
(``tests.helpers.losses.FrameEnergy``), as a user names a term of theirs in a YAML."""

from dataclasses import dataclass
from pathlib import Path

import torch

from scoresep.losses.terms import LossInputs, SeparatorLoss


@dataclass
class FrameEnergy(SeparatorLoss):
    """Mean of ``|S|^power`` over each item's separated spectrograms: a term no stage knows, with a setting of
    its own. ``(batch,)``."""

    power: float = 2.0

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return inputs.separated.abs().pow(self.power).flatten(1).mean(1)


class UndecoratedEnergy(FrameEnergy):
    """Forgot ``@dataclass``: its setting would not be a field (refused by name)."""

    floor: float = 0.0


@dataclass
class LossNamedLoss(FrameEnergy):
    """Takes the name the stages log their total under (refused)."""

    name = "loss"


@dataclass
class PathSetting(FrameEnergy):
    """A setting that is not plain data: a checkpoint could not keep it (refused)."""

    where: Path = Path("/tmp")
