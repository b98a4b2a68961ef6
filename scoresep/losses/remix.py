"""``L_remix`` (not in the paper): the separator learns to split bins that several instruments share, from the score
alone, by separating remixes whose sources are known.

The score's own separation of a crop (``H_i / max(1, sum_j H_j) * X``, ``score.masks``) is right wherever one
instrument's harmonics cover a bin and only guesses (an equal split) where several do. A *remix* takes each
instrument's part of that separation from another crop of the batch: bass from crop 3, guitar from crop 7, ...
In the remix the parts come from different songs, so the bins they share are split exactly: each part is known.
The separator is asked for those parts back, with the L1 distance on magnitudes of the supervised row
(``supervised_loss``). What it learns (which of two overlapping instruments a bin's energy belongs to, from
timbre) is what the formula cannot know. No stem is used: the parts are the score's separations of mixtures.

The remix is built in the waveform domain (inverse STFT of each part with its crop's phase, then the sum and a
new STFT), so it is the mixture a recording of those parts would give, interference included.
"""

from __future__ import annotations

import torch

from scoresep.score.shapes import check_same_shape, check_shape


def remix_picks(batch_size: int, n_instruments: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which crop each instrument's part comes from, per remix: ``(instrument, batch)``, each row a random
    permutation of the batch (drawn from ``generator``, else torch's global generator)."""
    if batch_size < 1 or n_instruments < 1:
        raise ValueError(f"remix_picks: need batch_size and n_instruments >= 1, got {batch_size}, {n_instruments}")
    return torch.stack([torch.randperm(batch_size, generator=generator) for _ in range(n_instruments)])


def remix(parts: torch.Tensor, rolls: torch.Tensor, picks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each remix's parts and score: instrument ``i`` of remix ``b`` is instrument ``i`` of crop ``picks[i, b]``.

    Shape:
        parts: ``(batch, instrument, time)`` (or any trailing dims); rolls: ``(batch, instrument, pitch, frame)``
        picks: ``(instrument, batch)`` of crop indices
        returns: ``(parts, rolls)`` of the remixes, the same shapes; the remix itself is ``parts.sum(1)``
    """
    check_shape("remix rolls", rolls, "batch, instrument, pitch, frame")
    if parts.shape[:2] != rolls.shape[:2] or picks.shape != (rolls.shape[1], rolls.shape[0]):
        raise ValueError(f"remix: parts {tuple(parts.shape)}, rolls {tuple(rolls.shape)} and picks "
                         f"{tuple(picks.shape)} must agree on (batch, instrument) and picks be (instrument, batch)")
    instruments = torch.arange(rolls.shape[1], device=parts.device)[:, None]
    picks = picks.to(parts.device)
    remixed_rolls = rolls[picks.to(rolls.device), instruments.to(rolls.device)]
    return parts[picks, instruments].transpose(0, 1), remixed_rolls.transpose(0, 1)


def remix_loss(separated: torch.Tensor, parts_magnitude: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the separated remix ``S_i`` and the magnitude of its known part, per remix.

    Shape:
        separated, parts_magnitude: ``(batch, instrument, freq, frame)``
        returns: ``(batch,)``
    """
    check_shape("remix_loss separated", separated, "batch, instrument, freq, frame")
    check_same_shape("remix_loss: parts_magnitude", parts_magnitude, "separated", separated,
                     "batch, instrument, freq, frame")
    return (separated.float() - parts_magnitude.float()).abs().flatten(1).mean(1)
