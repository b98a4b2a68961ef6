"""Overlapping chunks over STFT frames: each chunk's kept frames plus context on both sides.

Every chunk is computed on ``[start - context, stop + context)`` (clipped to the signal) and only its kept
frames ``[start, stop)`` are used; the kept ranges tile the signal without gaps or overlap. When the context
covers the model's receptive field (and chunk starts are multiples of the model's pooling factor), the kept
frames equal those of one pass over the whole signal, while memory depends only on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoresep.errors import SettingsError


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` are kept; the model sees ``[outer_start, outer_stop)``."""

    start: int
    stop: int
    outer_start: int
    outer_stop: int


def plan_chunks(n_frames: int, chunk_frames: int, context_frames: int, align: int = 1) -> list[Chunk]:
    """Chunks covering ``n_frames`` frames.

    Args:
        n_frames: frames of the whole signal.
        chunk_frames: kept frames per chunk (rounded up to a multiple of ``align``).
        context_frames: frames of context on each side (rounded up to a multiple of ``align``).
        align: every chunk's outer start is a multiple of this (a U-Net's pooling factor).
    """
    if n_frames < 1:
        raise SettingsError(f"plan_chunks: need at least one frame, got {n_frames}")
    if chunk_frames < 1 or context_frames < 0 or align < 1:
        raise SettingsError(f"plan_chunks: need chunk_frames >= 1, context_frames >= 0, align >= 1; got "
                            f"{chunk_frames}, {context_frames}, {align}")
    chunk_frames = -(-chunk_frames // align) * align
    context_frames = -(-context_frames // align) * align
    chunks = []
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        chunks.append(Chunk(start, stop, max(0, start - context_frames), min(n_frames, stop + context_frames)))
    return chunks
