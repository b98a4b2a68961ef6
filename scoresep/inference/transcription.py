"""``Transcriber``: per-instrument piano rolls (and MIDI) of a recording of any length, chunk by chunk.

The transcriptor's bidirectional GRU sees a whole chunk, so a chunk is transcribed with ``context_seconds`` of
audio on each side that is computed and discarded: the rolls then match one pass over the whole recording
except for rare cells near chunk borders, and memory depends only on the chunk length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pretty_midi
import torch

from scoresep.checkpoints import CheckpointError, StageCheckpoint, checkpoint_thresholds
from scoresep.constants import n_frames as frame_count
from scoresep.data.audio import AudioError
from scoresep.errors import SettingsError
from scoresep.features import FeatureSettings, Spectrogram
from scoresep.inference.chunks import plan_chunks
from scoresep.inference.midi_out import rolls_to_midi
from scoresep.inference.separation import Separator, Source, as_mono, pick_device
from scoresep.inference.sources import ArraySource
from scoresep.inference.trained import TrainedOn
from scoresep.models import network_masks
from scoresep.models.transcriptor import Transcriptor


class Transcriber(TrainedOn):
    """Transcribe mono audio into one piano roll per instrument.

    Args:
        network: the transcriptor network (stage 1, stage 3, or the critic a stage-2 checkpoint carries).
        features: the feature settings it was trained with.
        threshold: note probability above which a cell is a note: one per instrument (what a checkpoint's
            calibration chose) or one number for all.
        chunk_seconds: kept audio per chunk.
        context_seconds: audio on each side of a chunk that the network sees but whose output is discarded.
        device: where to compute (default: CUDA when available).

    ``transcriber(waveform, sample_rate)`` returns ``{instrument: bool (pitch, frame)}``; pitch row ``p`` is
    MIDI note ``features.min_midi + p``, frame ``n`` is time ``n * hop_length / sample_rate``.
    """

    def __init__(self, network: Transcriptor, features: FeatureSettings, threshold: float | Sequence[float] = 0.5,
                 chunk_seconds: float = 30.0, context_seconds: float = 4.0, device: str | torch.device | None = None):
        thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float32).flatten(),
                                     (len(features.instruments),)).copy()
        if not ((thresholds > 0) & (thresholds < 1)).all():
            raise SettingsError(f"threshold must be in (0, 1), got {threshold}")
        if chunk_seconds <= 0 or context_seconds < 0:
            raise SettingsError(f"need chunk_seconds > 0 and context_seconds >= 0, got {chunk_seconds}, "
                                f"{context_seconds}")
        self.device = pick_device(device)
        self.network = network.to(self.device).eval()
        self.features, self.thresholds = features, thresholds
        self.chunk_seconds, self.context_seconds = chunk_seconds, context_seconds
        self.spectrogram = Spectrogram(features.n_fft, features.hop_length, features.sample_rate,
                                       inverse=False).to(self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, threshold: float | None = None, chunk_seconds: float = 30.0,
                        context_seconds: float = 4.0, device: str | torch.device | None = None) -> Transcriber:
        """Load the transcriptor of a stage-1, stage-2 (its critic) or stage-3 checkpoint. ``threshold`` None
        takes the checkpoint's calibrated per-instrument thresholds (0.5 for checkpoints without)."""
        network, info = StageCheckpoint.read(path).transcriptor()
        if info["label"] != "notes":
            raise CheckpointError(f"{path}: this transcriptor was trained with label={info['label']!r} (an "
                                  "instrument-activity classifier); it cannot write notes")
        return cls(network, info["features"], checkpoint_thresholds(info, threshold), chunk_seconds, context_seconds,
                   device)

    @property
    def frame_rate(self) -> float:
        return self.features.frame_rate

    @torch.inference_mode()
    def probabilities(self, source: Source, separator: Separator | None = None) -> np.ndarray:
        """Note probabilities float32 ``(instrument, pitch, frame)`` of a whole source.

        With ``separator``, channel ``i`` is the transcription of the separated instrument ``i`` (each separated
        magnitude is transcribed and its own channel kept) instead of the mixture's.
        """
        if separator is not None and (problems := self.features.mismatches(separator.features, "transcriptor",
                                                                            "separator")):
            raise CheckpointError(f"separator and transcriptor were trained with other settings: {'; '.join(problems)}")
        hop, n_samples = self.features.hop_length, source.n_samples
        if n_samples <= self.features.n_fft // 2:
            raise AudioError(f"{source.name}: too short to transcribe ({n_samples} samples at {self.sample_rate} "
                             f"Hz; needs more than {self.features.n_fft // 2})")
        n_frames = frame_count(n_samples, hop)
        context = round(self.context_seconds * self.frame_rate)
        if separator is not None:
            context = max(context, separator.context_frames)
        chunks = plan_chunks(n_frames, max(1, round(self.chunk_seconds * self.frame_rate)), context,
                             separator.network.frame_multiple if separator is not None else 1)
        result = np.zeros((len(self.instruments), self.network.n_pitches, n_frames), dtype=np.float32)
        for chunk in chunks:
            outer_stop = n_samples if chunk.outer_stop == n_frames else chunk.outer_stop * hop
            mixture = torch.from_numpy(source.read(chunk.outer_start * hop, outer_stop)).to(self.device)
            magnitude = self.spectrogram.stft(mixture[None]).abs()  # (1, freq, frame)
            if separator is None:
                logits = self.network(magnitude)[0]
            else:
                separated = network_masks(separator.network, magnitude)[0] * magnitude  # (instrument, freq, frame)
                channels = torch.arange(len(self.instruments), device=self.device)
                logits = self.network(separated)[channels, channels]
            first = chunk.start - chunk.outer_start
            kept = torch.sigmoid(logits[..., first : first + chunk.stop - chunk.start].float())
            result[..., chunk.start : chunk.stop] = kept.cpu().numpy()
        return result

    def transcribe_source(self, source: Source, separator: Separator | None = None) -> np.ndarray:
        """Bool piano rolls ``(instrument, pitch, frame)`` of a whole source."""
        return self.probabilities(source, separator) > self.thresholds[:, None, None]

    def __call__(self, waveform: torch.Tensor | np.ndarray, sample_rate: int,
                 separator: Separator | None = None) -> dict[str, torch.Tensor]:
        """Transcribe an in-memory ``(time,)`` or ``(channel, time)`` waveform: ``{instrument: (pitch, frame)}``."""
        rolls = self.transcribe_source(ArraySource(as_mono(waveform, sample_rate, self.sample_rate),
                                                   self.sample_rate), separator)
        return {name: torch.from_numpy(rolls[index]) for index, name in enumerate(self.instruments)}

    def to_midi(self, rolls: np.ndarray | dict[str, torch.Tensor]) -> pretty_midi.PrettyMIDI:
        """A multi-instrument MIDI (one track per instrument, its GM program) of ``(instrument, pitch, frame)``
        rolls or of the dict this transcriber returns."""
        if isinstance(rolls, dict):
            rolls = np.stack([np.asarray(rolls[name]) for name in self.instruments])
        return rolls_to_midi(rolls, self.instruments, self.frame_rate, self.features.min_midi)
