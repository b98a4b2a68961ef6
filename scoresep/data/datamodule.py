"""``SlakhDataModule``: the one LightningDataModule that every stage trains and evaluates on.

It prepares the cache once (``prepare_data``, rank 0), serves hop-aligned crops (``dataset.py``) and, after
the batch reaches the accelerator, adds the spectrograms (``on_after_batch_transfer``, fp32 STFT with the
``features.stft_backend`` chosen here; see features.py). It knows nothing about models.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from scoresep.data.cache import CacheSettings, cache_path, load_index, prepare
from scoresep.data.dataset import CachedTrack, SlakhCrops
from scoresep.data.samplers import EvalShardSampler, TrainCropSampler
from scoresep.data.slakh import DatasetError, missing_split
from scoresep.data.solo_passages import SoloPassages
from scoresep.errors import SettingsError
from scoresep.features import DEFAULT_FEATURES, FeaturesArgument, FeatureSettings, Spectrogram
from scoresep.instruments import check_instruments

log = logging.getLogger(__name__)


class SlakhDataModule(FeaturesArgument, pl.LightningDataModule):
    """Slakh-layout data (Slakh2100, BabySlakh, mini-Slakh) as crops with on-device spectrograms.

    Args:
        root: dataset folder (``{train,validation,test}/TrackNNNNN`` or flat ``TrackNNNNN``).
        cache_dir: where caches live; each (dataset, settings) gets its own sub-folder.
        features: instruments, sample rate, STFT (and its backend) and pitch range (``FeatureSettings``), declared
            here only: the CLI links them into the stage, which computes the stems' and separated spectrograms the
            same way (``--data.features.n_fft 512``).
        segment_seconds: crop length; rounded down to a whole number of hops.
        batch_size: crops per batch (per process under DDP).
        num_workers: DataLoader worker processes.
        mixture: ``instruments`` (the paper's recipe): each crop's mixture is the sum of the selected
            instruments' stems, so other parts (drums, strings, leads) are not in it; ``full``: the track's own
            mixture with every part (harder; the only choice for score-only data without stems).
        remix_probability: chance that a training crop is a cross-song remix (uses stems: an opt-in variant;
            the paper's recipe is 0).
        train_crops_per_track: random crops per training track and epoch.
        eval_crops_per_track: fixed crops per validation/test track (evenly spaced).
        solo_passages: add to every training item one artificial mixture of the score's solo passages, with its
            known parts (``solo_passages.py``: where the score has one instrument alone the training mixture is its
            part, so the parts are cut from that mixture and no stem is told apart). For
            ``losses.terms.SoloLoss``; beyond the paper. Needs ``mixture: instruments``: a full mixture also holds
            the parts the score does not list (drums, vocals), so its "solo" passages are not one instrument.
        seed: crop randomness; training crops depend only on (seed, epoch, item).
        strict: stop at the first bad file instead of skipping its track with a warning.
    """

    def __init__(
        self,
        root: str = "data/minislakh",
        cache_dir: str = "data/cache",
        features: FeatureSettings = DEFAULT_FEATURES,
        segment_seconds: float = 4.0,
        batch_size: int = 8,
        num_workers: int = 0,
        mixture: Literal["instruments", "full"] = "instruments",
        remix_probability: float = 0.0,
        train_crops_per_track: int = 8,
        eval_crops_per_track: int = 4,
        solo_passages: bool = False,
        seed: int = 0,
        strict: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        features = FeatureSettings.coerce(features)  # a dict, as a checkpoint's hyper-parameters hold it, too
        check_instruments(features.instruments)
        self.features = features
        self.hparams["features"] = features.to_dict()  # primitives only: checkpoints load with weights_only=True
        if not math.isfinite(segment_seconds) or segment_seconds <= 0:
            raise SettingsError(f"SlakhDataModule: segment_seconds must be a finite number > 0, got {segment_seconds}")
        if not 0 <= remix_probability <= 1:
            raise SettingsError(f"SlakhDataModule: remix_probability must be between 0 and 1, got {remix_probability}")
        if solo_passages and mixture != "instruments":
            raise SettingsError("SlakhDataModule: solo_passages needs mixture: instruments; with mixture: full a "
                                "passage where the score has one instrument alone still holds every part the score "
                                "does not list (drums, vocals, ...), so it is not that instrument's part")
        self.segment_frames = int(segment_seconds * features.sample_rate) // features.hop_length
        if self.segment_frames < 1 or self.segment_frames * features.hop_length <= features.n_fft // 2:
            raise SettingsError(f"segment_seconds={segment_seconds} is shorter than one STFT window "
                                f"(n_fft={features.n_fft} at {features.sample_rate} Hz)")
        self.settings = CacheSettings(str(Path(root).resolve()), features.instruments, features.sample_rate,
                                      features.hop_length, features.min_midi, features.max_midi)
        self.cache = cache_path(cache_dir, self.settings)
        self.spectrogram = Spectrogram.of(features, inverse=False)
        self.datasets: dict[str, SlakhCrops] = {}
        self._problems: list[str] = []  # the index's "PATH: REASON" lines of skipped tracks

    @property
    def n_pitches(self) -> int:
        return self.settings.n_pitches

    def prepare_data(self) -> None:
        """Build or update the cache (Lightning runs this on one process per node)."""
        hp, features = self.hparams, self.features
        prepare(hp.root, hp.cache_dir, features.instruments, features.sample_rate, features.hop_length,
                features.min_midi, features.max_midi, workers=None, strict=hp.strict, progress=True)

    def setup(self, stage: str | None = None) -> None:
        index = load_index(self.cache, expected=self.settings)
        self._problems = list(index.get("problems") or [])
        by_split: dict[str, list[dict]] = {}
        for record in index["tracks"]:
            by_split.setdefault(record["split"], []).append(record)
        hp = self.hparams
        for split in ("train", "validation", "test"):
            records = by_split.get(split, [])
            if split in self.datasets or not records:
                continue
            self.datasets[split] = SlakhCrops(
                self.cache, records, self.n_pitches, self.features.hop_length, self.segment_frames,
                train=split == "train",
                remix_probability=hp.remix_probability if split == "train" else 0.0,
                eval_crops_per_track=hp.eval_crops_per_track, seed=hp.seed, mixture=hp.mixture,
                solo_passages=self._solo_passages(records) if split == "train" and hp.solo_passages else None)

    def _solo_passages(self, records: list[dict]) -> SoloPassages:
        """The training tracks' solo passages (logged: minutes per instrument)."""
        tracks = [CachedTrack(self.cache / "tracks" / record["track"], record, self.n_pitches) for record in records]
        solo = SoloPassages(tracks, self.features.frame_rate, self.features.hop_length, self.hparams.mixture)
        minutes = ", ".join(f"{name} {value:.1f}" for name, value in zip(self.features.instruments, solo.minutes(),
                                                                          strict=True))
        log.info("solo passages of the training tracks (minutes): %s", minutes)
        return solo

    def _dataset(self, split: str) -> SlakhCrops:
        if split not in self.datasets:
            raise DatasetError(missing_split(self.hparams.root, split, self._problems))
        return self.datasets[split]

    def _loader(self, dataset: SlakhCrops, sampler) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=False, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        sampler = TrainCropSampler(len(dataset) * self.hparams.train_crops_per_track, seed=self.hparams.seed)
        return self._loader(dataset, sampler)

    def val_dataloader(self) -> DataLoader:
        dataset = self._dataset("validation")
        return self._loader(dataset, EvalShardSampler(len(dataset)))

    def test_dataloader(self) -> DataLoader:
        dataset = self._dataset("test")
        return self._loader(dataset, EvalShardSampler(len(dataset)))

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """The mixture's spectrograms on the batch's device, fp32 (adds ``mixture_stft``, ``mixture_mag``); a stage
        that reads the stems' spectrograms computes them with ``Spectrogram.source_magnitudes``."""
        device = batch["mixture"].device
        if next(self.spectrogram.buffers()).device != device:
            self.spectrogram.to(device)
        return self.spectrogram.analyse(batch)
