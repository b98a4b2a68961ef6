"""``Separator``: separate a recording of any length with a stage-2 or stage-3 checkpoint, chunk by chunk, or
with the recording's score alone.

With a score (piano rolls ``(instrument, pitch, frame)`` on the STFT's frames, see ``score/masks.py``) each
instrument's mask is restricted to the bins near the harmonics of its sounding notes: without a network the
mask is the score's harmonic mask itself, a bin that several sounding instruments cover split equally between
them (training-free score-informed separation); with a network that hears only the audio, the learned masks
split those shared bins, weighted against the equal split by ``learned_weight`` (``score.combined_masks``). A
network that reads the score itself (``ScoreInformedSeparator``) gets the harmonic masks as its input and its
masks are used as they are; it needs the score for every recording.

Each chunk of STFT frames is separated with enough context on both sides to cover the U-Net's receptive field
and the inverse STFT's window, so the kept samples equal those of one pass over the whole recording (to float
rounding; tested) while memory depends only on the chunk length. The masks are applied to the mixture's STFT
and inverted with the mixture's phase, in fp32, as in validation.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

from scoresep.checkpoints import StageCheckpoint
from scoresep.constants import LEARNED_WEIGHT, SILENCE
from scoresep.constants import n_frames as frame_count
from scoresep.data.audio import AudioError, check_finite
from scoresep.errors import SettingsError
from scoresep.features import FeatureSettings, Spectrogram
from scoresep.inference.chunks import Chunk, plan_chunks
from scoresep.inference.sources import ArraySource, FileSource
from scoresep.inference.trained import TrainedOn
from scoresep.models import SeparatorNetwork
from scoresep.score import (
    STAGE2_HARMONICS,
    HarmonicSettings,
    bin_frequencies,
    check_learned_weight,
    harmonic_mask,
    harmonic_templates,
    score_masks,
)

Source = ArraySource | FileSource


def pick_device(device: str | torch.device | None, option: str = "device") -> torch.device:
    """The device to compute on: ``None`` means the first CUDA device when there is one, else the CPU.

    A device this machine cannot use (no CUDA, a CUDA index past the last GPU, an unknown name) is refused here
    with a ValueError that names it as ``option`` (the command's ``--device``), before any model is moved: torch
    would otherwise fail deep inside with a driver message."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use = f"use {option} cpu" if option.startswith("-") else f"use {option}='cpu'"
    label = f"{option} {device}" if option.startswith("-") else f"{option}={str(device)!r}"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SettingsError(f"{label}: not a device name (use cpu, cuda or cuda:N)") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"{label}: no CUDA device is visible on this machine (torch.cuda.is_available() is "
                                f"False); {use}")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise SettingsError(f"{label}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    elif chosen.type == "mps":
        if not torch.backends.mps.is_available():
            raise SettingsError(f"{label}: no Apple MPS device is available on this machine; {use}")
    elif chosen.type != "cpu":
        raise SettingsError(f"{label}: {chosen.type} devices are not supported (use cpu, cuda or cuda:N)")
    return chosen


# The most channels a 2-D waveform may have: which axis is time is read from the shape (the other one has at most
# this many entries and is the shorter), so a soundfile array (time, channel) and a torch one (channel, time) both work.
MAX_CHANNELS = 8


def as_mono(waveform: torch.Tensor | np.ndarray, sample_rate: int, target_rate: int, name: str = "waveform"
            ) -> np.ndarray:
    """A ``(time,)``, ``(channel, time)`` (torch, torchaudio) or ``(time, channel)`` (soundfile) waveform as mono
    float32 at ``target_rate``.

    The channel axis of a 2-D waveform is the one with at most ``MAX_CHANNELS`` entries that is shorter than the
    other; a shape where that is not clear, and NaN or infinite samples, are refused with an AudioError naming
    ``name`` and the shape."""
    array = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if array.ndim == 2:
        rows, columns = array.shape
        if rows <= MAX_CHANNELS and rows < columns:
            array = array.mean(axis=0)  # (channel, time)
        elif columns <= MAX_CHANNELS and columns < rows:
            array = array.mean(axis=1)  # (time, channel), as soundfile.read returns it
        else:
            raise AudioError(f"{name}: cannot tell time from channels in shape {array.shape}: give (time,), "
                             f"(channel, time) or (time, channel) with at most {MAX_CHANNELS} channels")
    if array.ndim != 1:
        raise AudioError(f"{name}: expected a waveform (time,), (channel, time) or (time, channel), got shape "
                         f"{array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise AudioError(f"{name}: expected real audio samples, got dtype {array.dtype}")
    array = array.astype(np.float32)
    check_finite(array, name, 0, sample_rate)
    if sample_rate != target_rate:
        import torchaudio.functional as audio_functional

        array = audio_functional.resample(torch.from_numpy(array), sample_rate, target_rate).numpy()
    return array


class Separator(TrainedOn):
    """Separate mono audio into one waveform per instrument plus the residual.

    Args:
        network: a separator network (any ``scoresep.models.SeparatorNetwork``), any device. A separator of the
            score's harmonic masks alone, with no network, is ``Separator.from_score(features, ...)``: every call
            then needs a score.
        features: the feature settings it was trained with.
        chunk_seconds: kept audio per chunk; memory grows with it, never with the recording's length.
        device: where to compute (default: CUDA when available).
        harmonics: the harmonic masks of a score (harmonics per note, half-width in semitones).
        learned_weight: with a score and a network that hears only the audio, the weight of the network's split of
            the bins several instruments' harmonics cover against the score's equal split (``score.combined_masks``;
            0: the score's masks alone, 1: the network's split).

    ``separator(waveform, sample_rate)`` returns ``{instrument: (time,), ..., "residual": (time,)}`` at the
    model's sample rate (``separator.sample_rate``); ``waveform`` is ``(time,)``, ``(channel, time)`` or
    ``(time, channel)`` (``as_mono``); NaN or infinite samples are refused, a silent one warns.
    """

    def __init__(self, network: SeparatorNetwork, features: FeatureSettings, chunk_seconds: float = 30.0,
                 device: str | torch.device | None = None, harmonics: HarmonicSettings = STAGE2_HARMONICS, *,
                 score_only: bool = False, learned_weight: float = LEARNED_WEIGHT):
        if network is None and not score_only:
            raise SettingsError("Separator needs a network; a separator of the score's masks alone is "
                                "Separator.from_score(features, ...)")
        if chunk_seconds <= 0:
            raise SettingsError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        check_learned_weight(learned_weight)  # before any work, not at the first chunk
        self.learned_weight = learned_weight
        self.device = pick_device(device)
        self.network = network.to(self.device).eval() if network is not None else None
        self.features, self.chunk_seconds, self.harmonics = features, chunk_seconds, harmonics
        self.spectrogram = Spectrogram(features.n_fft, features.hop_length, features.sample_rate).to(self.device)
        self.templates = harmonic_templates(bin_frequencies(features.sample_rate, features.n_fft), features.n_pitches,
                                            features.min_midi, harmonics.n_harmonics, harmonics.tolerance
                                            ).to(self.device)
        # Frames within ceil(n_fft / 2 hop) of a piece's edge see its reflect padding; the U-Net spreads that by its
        # receptive field and the inverse STFT by another ceil(n_fft / 2 hop): the context covers all three.
        reach = -(-features.n_fft // (2 * features.hop_length))
        receptive_field = network.receptive_field_frames if network is not None else 0
        self.context_frames = receptive_field + 2 * reach + 1

    @classmethod
    def from_score(cls, features: FeatureSettings, chunk_seconds: float = 30.0,
                   device: str | torch.device | None = None, harmonics: HarmonicSettings = STAGE2_HARMONICS
                   ) -> Separator:
        """Training-free score-informed separation: no network, each instrument keeps its notes' harmonic bins
        (a bin several instruments cover shared equally, ``score.masks``). Every call needs the score's rolls."""
        return cls(None, features, chunk_seconds, device, harmonics, score_only=True)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, chunk_seconds: float = 30.0,
                        device: str | torch.device | None = None,
                        harmonics: HarmonicSettings | None = None,
                        learned_weight: float = LEARNED_WEIGHT) -> Separator:
        """Load the separator of a stage-2 or stage-3 checkpoint (CheckpointError naming the file otherwise).
        ``harmonics`` None: the harmonic masks the checkpoint's stage trained with (stage 2's defaults when it
        records none), for separating with a score."""
        network, info = StageCheckpoint.read(path).separator()
        if harmonics is None:
            harmonics = HarmonicSettings(**info.get("harmonics", {}))
        return cls(network, info["features"], chunk_seconds, device, harmonics, learned_weight=learned_weight)

    def chunks(self, n_samples: int) -> list[Chunk]:
        """The frame chunks of a recording of ``n_samples`` samples."""
        return plan_chunks(frame_count(n_samples, self.features.hop_length),
                           max(1, round(self.chunk_seconds * self.features.frame_rate)), self.context_frames,
                           self.network.frame_multiple if self.network is not None else 1)

    @torch.inference_mode()
    def masks(self, mixture: torch.Tensor, rolls: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks (instrument, freq, frame), mixture STFT (freq, frame))`` of a mono ``(time,)`` piece; ``rolls``
        ``(instrument, pitch, frame)``: the piece's score, on the same frames."""
        spectrum = self.spectrogram.stft(mixture[None])
        if self.network is not None and self.network.reads_score:
            if rolls is None:
                raise SettingsError("this separator reads the score: it separates a recording only with its score")
            harmonic = harmonic_mask(rolls[None], self.templates)
            return self.network(spectrum.abs(), harmonic)[0], spectrum[0]
        learned = self.network(spectrum.abs())[0] if self.network is not None else None
        if rolls is None:
            if learned is None:
                raise SettingsError("a Separator without a network separates with a score only (score=...)")
            return learned, spectrum[0]
        return score_masks(rolls, self.templates, learned, self.learned_weight), spectrum[0]

    def check_length(self, source: Source) -> None:
        """AudioError naming the source when it is too short for one STFT window."""
        if source.n_samples <= self.features.n_fft // 2:
            raise AudioError(f"{source.name}: too short to separate ({source.n_samples} samples at "
                             f"{self.sample_rate} Hz; needs more than {self.features.n_fft // 2})")

    def _check_score(self, source: Source, score: np.ndarray | None) -> None:
        if score is None:
            if self.network is None:
                raise SettingsError(f"{source.name}: a Separator without a network separates with a score only")
            if self.network.reads_score:
                raise SettingsError(f"{source.name}: this checkpoint's separator ({type(self.network).__name__}) "
                                    "reads the score; give the recording's score (separate --score)")
            return
        expected = (len(self.instruments), self.features.n_pitches)
        if score.ndim != 3 or score.shape[:2] != expected:
            raise SettingsError(f"{source.name}: score rolls must be (instrument, pitch, frame) with (instrument, "
                                f"pitch) = {expected}, got {score.shape}")

    def stream(self, source: Source, score: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first sample, pieces (instrument + 1, time))`` in order; the last row is the residual.

        The pieces tile ``[0, source.n_samples)`` exactly. ``score``: bool rolls ``(instrument, pitch, frame)`` of
        the whole recording on the STFT's frames (frame ``n`` at sample ``n * hop``); frames past its end are silent.
        """
        self._check_score(source, score)
        self.check_length(source)
        hop, n_samples = self.features.hop_length, source.n_samples
        n_frames = frame_count(n_samples, hop)
        for chunk in self.chunks(n_samples):
            # A chunk that reaches the last frame reaches the last sample (frame n covers sample n * hop).
            outer_start, keep_first = chunk.outer_start * hop, chunk.start * hop
            outer_stop = n_samples if chunk.outer_stop == n_frames else chunk.outer_stop * hop
            keep_stop = n_samples if chunk.stop == n_frames else chunk.stop * hop
            if keep_stop <= keep_first:  # the last frame of a recording whose length is a multiple of the hop
                continue
            mixture = torch.from_numpy(source.read(outer_start, outer_stop)).to(self.device)
            rolls = None
            if score is not None:
                count = frame_count(outer_stop - outer_start, hop)
                piece = score[:, :, chunk.outer_start : chunk.outer_start + count]
                piece = np.pad(piece, [(0, 0), (0, 0), (0, count - piece.shape[-1])])
                rolls = torch.from_numpy(np.ascontiguousarray(piece)).to(self.device)
            masks, spectrum = self.masks(mixture, rolls)
            with torch.inference_mode():
                waveforms = self.spectrogram.istft(masks * spectrum[None], mixture.shape[-1])
            kept = waveforms[:, keep_first - outer_start : keep_stop - outer_start]
            residual = mixture[keep_first - outer_start : keep_stop - outer_start] - kept.sum(0)
            yield chunk.start * hop, torch.cat([kept, residual[None]]).float().cpu().numpy()

    def separate_source(self, source: Source, progress: Callable[[int], None] | None = None,
                        score: np.ndarray | None = None) -> np.ndarray:
        """Whole separation ``(instrument + 1, time)`` of a source (for evaluation; needs the memory)."""
        result = np.zeros((len(self.instruments) + 1, source.n_samples), dtype=np.float32)
        for start, pieces in self.stream(source, score):
            result[:, start : start + pieces.shape[1]] = pieces
            if progress is not None:
                progress(pieces.shape[1])
        return result

    def __call__(self, waveform: torch.Tensor | np.ndarray, sample_rate: int,
                 score: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Separate an in-memory waveform; returns ``{instrument: (time,), "residual": (time,)}``. ``score``: its
        rolls (``score_masks.score_rolls``), at the model's sample rate and hop."""
        mono = as_mono(waveform, sample_rate, self.sample_rate)
        if float(np.abs(mono).max(initial=0.0)) < SILENCE:
            warnings.warn(f"the waveform is silent (peak below {SILENCE:g}): every separated stem is silent too",
                          stacklevel=2)
        result = self.separate_source(ArraySource(mono, self.sample_rate), score=score)
        names = (*self.instruments, "residual")
        return {name: torch.from_numpy(result[index]) for index, name in enumerate(names)}

