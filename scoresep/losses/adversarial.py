"""Stage-3 adversarial losses: the adversarial mixture loss (AML) and the adversarial transcription loss (ATL).

Both are two-sided: one term for the transcriptor's update (it learns to spot separation errors) and one for
the separator's update (it learns to make them invisible). The caller detaches the separated spectrograms in
the transcriptor's update and freezes the transcriptor in the separator's update; these functions only
compute the objectives.

AML's transcriptor side is ``-L_score(X', Y')`` in the paper's poster, which is unbounded below: the
transcriptor can drive it to -inf with confident wrong notes and forget how to transcribe. ``aml_form``:

- ``negated``: the poster's ``-BCE(T(X'), Y')``, unbounded (kept for comparison).
- ``clipped``: ``-min(BCE(T(X'), Y'), margin)``: the same gradient until the artificial mixtures' loss reaches
  ``margin``, then none; bounded below by ``-margin``.
- ``empty``: ``BCE(T(X'), 0)``: an artificial mixture is labelled "fake" by an empty roll; bounded below by 0.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from scoresep.errors import SettingsError
from scoresep.losses.score import score_loss
from scoresep.losses.transcription import transcription_bce
from scoresep.score.shapes import check_shape

AmlForm = Literal["negated", "clipped", "empty"]


def mixing_pairs(batch: int, n_instruments: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each artificial mixture ``b`` and instrument ``i``, the song whose separated source it takes.

    Each instrument gets its own random permutation of the batch (so every separated source is used once per
    instrument); when ``batch >= 2`` and ``n_instruments >= 2`` no artificial mixture takes all its sources
    from one song (it would just be that song's own separation). Returns ``(instrument, batch)`` long.
    """
    pairs = torch.stack([torch.randperm(batch, generator=generator) for _ in range(n_instruments)])
    if batch < 2 or n_instruments < 2:
        return pairs
    last = pairs[-1]
    for item in range(batch):
        if bool((pairs[:, item] == pairs[0, item]).all()):
            # swapping the last instrument's picks of this item and the next keeps a permutation and gives
            # both items a source from a second song (proof: picks of one permutation are distinct)
            other = (item + 1) % batch
            last[item], last[other] = last[other].clone(), last[item].clone()
    return pairs


def artificial_mixtures(separated: torch.Tensor, rolls: torch.Tensor,
                        pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``X'_b = sum_i S_{pairs[i, b], i}`` and its score ``Y'_b = (Y_{pairs[i, b], i})_i``.

    Shape:
        separated: ``(batch, instrument, freq, frame)``; rolls: ``(batch, instrument, pitch, frame)``
        pairs: ``(instrument, batch)`` from :func:`mixing_pairs`
        returns: ``(batch, freq, frame)``, ``(batch, instrument, pitch, frame)``
    """
    check_shape("artificial_mixtures separated", separated, "batch, instrument, freq, frame")
    batch, n_instruments, _, frames = separated.shape
    check_shape("artificial_mixtures rolls", rolls, "batch, instrument, pitch, frame", batch=batch,
                instrument=n_instruments, frame=frames)
    check_shape("artificial_mixtures pairs", pairs, "instrument, batch", instrument=n_instruments, batch=batch)
    instrument = torch.arange(n_instruments, device=separated.device)[:, None]
    pairs = pairs.to(separated.device)
    mixtures = separated[pairs, instrument].sum(0)  # (I, B, F, N) -> (B, F, N)
    scores = rolls[pairs, instrument].transpose(0, 1)  # (I, B, P, N) -> (B, I, P, N)
    return mixtures, scores


def aml_separator_loss(transcriptor: nn.Module, mixtures: torch.Tensor, scores: torch.Tensor,
                       pos_weight: float = 1.0) -> torch.Tensor:
    """Separator's side of AML: the transcriptor should transcribe ``X'`` as ``Y'``. ``(batch,)``."""
    check_shape("aml_separator_loss mixtures", mixtures, "batch, freq, frame")
    return transcription_bce(transcriptor, mixtures, scores, pos_weight)


def aml_transcriptor_loss(transcriptor: nn.Module, mixtures: torch.Tensor, scores: torch.Tensor,
                          form: AmlForm = "clipped", margin: float = 1.0, pos_weight: float = 1.0) -> torch.Tensor:
    """Transcriptor's side of AML (it should *not* transcribe ``X'`` as ``Y'``), per batch item ``(batch,)``.

    See the module docstring for ``form``; ``margin`` is the BCE value above which ``clipped`` stops pushing.
    """
    check_shape("aml_transcriptor_loss mixtures", mixtures, "batch, freq, frame")
    if form == "empty":
        return transcription_bce(transcriptor, mixtures, torch.zeros_like(scores), pos_weight)
    loss = transcription_bce(transcriptor, mixtures, scores, pos_weight)
    if form == "negated":
        return -loss
    if form == "clipped":
        if margin <= 0:
            raise SettingsError(f"aml_transcriptor_loss: margin must be > 0, got {margin}")
        return -torch.clamp(loss, max=margin)
    raise SettingsError(f"aml_transcriptor_loss: form must be 'negated', 'clipped' or 'empty', got {form!r}")


def atl_transcriptor_loss(transcriptor: nn.Module, separated: torch.Tensor, rolls: torch.Tensor,
                          pos_weight: float = 1.0) -> torch.Tensor:
    """Transcriptor's side of ATL: on each separated ``S_i`` it should hear every note of the mixture (all
    instruments' rolls), i.e. the interference that remains. Summed over ``i``, per batch item ``(batch,)``.

    Shape: separated ``(batch, instrument, freq, frame)``, rolls ``(batch, instrument, pitch, frame)``.
    """
    check_shape("atl_transcriptor_loss separated", separated, "batch, instrument, freq, frame")
    batch, n_instruments, _, frames = separated.shape
    check_shape("atl_transcriptor_loss rolls", rolls, "batch, instrument, pitch, frame", batch=batch,
                instrument=n_instruments, frame=frames)
    every_note = rolls[:, None].expand(batch, n_instruments, *rolls.shape[1:])  # (B, I(source), I, P, N)
    loss = transcription_bce(transcriptor, separated.flatten(0, 1), every_note.flatten(0, 1), pos_weight)
    return loss.view(batch, n_instruments).sum(1)


def atl_separator_loss(transcriptor: nn.Module, separated: torch.Tensor, rolls: torch.Tensor,
                       pos_weight: float = 1.0) -> torch.Tensor:
    """Separator's side of ATL: ``T(S_i)`` should show only instrument ``i``'s notes (``L_score``). ``(batch,)``."""
    check_shape("atl_separator_loss separated", separated, "batch, instrument, freq, frame")
    return score_loss(transcriptor, separated, rolls, pos_weight)


__all__ = ["AmlForm", "aml_separator_loss", "aml_transcriptor_loss", "artificial_mixtures", "atl_separator_loss",
           "atl_transcriptor_loss", "mixing_pairs"]
