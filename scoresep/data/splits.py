"""Train/validation/test split names and the seeded assignment used where a dataset has no split folders."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")


def assign_splits(n_tracks: int, seed: int, fractions: tuple[float, float] = (0.15, 0.15)) -> list[str]:
    """Seeded split label per track; validation and test get at least one track each when ``n >= 3``."""
    if n_tracks < 3:
        return ["train"] * n_tracks
    n_validation = max(1, int(round(fractions[0] * n_tracks)))
    n_test = max(1, int(round(fractions[1] * n_tracks)))
    labels = ["validation"] * n_validation + ["test"] * n_test
    labels += ["train"] * (n_tracks - len(labels))
    order = np.random.default_rng([seed, 1_000_003]).permutation(n_tracks)
    return [labels[int(position)] for position in np.argsort(order)]
