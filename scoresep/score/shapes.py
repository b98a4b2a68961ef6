"""Shape checks at the door of every loss and score function, naming the expected layout in the error."""

from __future__ import annotations

import torch

from scoresep.errors import SettingsError


def check_shape(name: str, tensor: torch.Tensor, layout: str, **sizes: int) -> None:
    """Raise ValueError unless ``tensor`` has one axis per comma-separated name in ``layout`` (and the
    given sizes), e.g. ``check_shape("separated", s, "batch, instrument, freq, frame", instrument=3)``."""
    axes = [axis.strip() for axis in layout.split(",")]
    if tensor.ndim != len(axes) or any(tensor.shape[axes.index(a)] != n for a, n in sizes.items() if a in axes):
        expected = ", ".join(f"{a}={sizes[a]}" if a in sizes else a for a in axes)
        raise SettingsError(f"{name}: expected shape ({expected}), got {tuple(tensor.shape)}")


def check_same_shape(name: str, tensor: torch.Tensor, reference_name: str, reference: torch.Tensor,
                     layout: str) -> None:
    """Raise ValueError unless ``tensor`` has exactly the shape of ``reference`` (both laid out as ``layout``),
    e.g. ``check_same_shape("supervised_loss: sources", sources, "separated", separated, "batch, ...")``."""
    if tensor.shape != reference.shape:
        raise SettingsError(f"{name} {tuple(tensor.shape)} must match {reference_name} {tuple(reference.shape)} "
                            f"({layout})")
