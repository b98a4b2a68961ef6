"""Slow: after stage 1, a short stage 2 separates better than the input mixture (``make test-full``)."""

import pytest
import pytorch_lightning as pl

from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.synth import synthesise
from scoresep.stages.separator import SeparatorStage
from scoresep.stages.transcriptor import TranscriptorStage

pytestmark = pytest.mark.slow


def test_stage2_improves_si_sdr_over_the_mixture_for_every_instrument(tmp_path):
    root = tmp_path / "minislakh"
    synthesise(root, tracks=24, seconds=20.0, seed=2, workers=2, progress=False)
    datamodule = SlakhDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), segment_seconds=4.0,
                                 batch_size=8, train_crops_per_track=8)
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=300, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, check_val_every_n_epoch=100)
    trainer.fit(TranscriptorStage(), datamodule)
    trainer.save_checkpoint(tmp_path / "stage1.ckpt")
    stage = SeparatorStage(transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"), clip_mix_weight=0.1,
                           harmonic_mix_weight=0.1)
    trainer = pl.Trainer(max_steps=200, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, check_val_every_n_epoch=100)
    trainer.fit(stage, datamodule)
    results = trainer.validate(stage, datamodule)[0]
    for name in ("bass", "guitar", "piano"):
        assert results[f"val/si_sdri/{name}"] > 0.5, (name, results)
