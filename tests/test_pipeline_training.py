"""Slow: stage 1 -> stage 2 -> stage 3 on a small mini-Slakh with the paper's recipe (``make test-full``).

Stage 2 should separate better than the input mixture for every instrument, guitar included. Measured with the
current defaults (frame separator, harmonic-stack transcriptor, note cells of ``L_score`` weighted 80x,
2026-12-01; 5.6 minutes on 2 cores): validation SI-SDRi bass +5.89, guitar +0.65, piano +1.08 dB, and after two
stage-3 epochs +5.90 / +0.57 / +0.86 dB. Guitar clears the 0.5 dB bar by little: 17 training songs are few to
learn its timbre (each GM program is heard in about two of them). With the note cells weighted 5x it was
-2.69 dB, and this check was a strict ``xfail`` until the weight changed (README "Results").
"""

import pytest
import pytorch_lightning as pl

from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.synth import synthesise
from scoresep.stages.adversarial import AdversarialStage
from scoresep.stages.separator import SeparatorStage
from scoresep.stages.transcriptor import TranscriptorStage

pytestmark = pytest.mark.slow
INSTRUMENTS = ("bass", "guitar", "piano")


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    synthesise(folder / "minislakh", tracks=24, seconds=20.0, seed=2, workers=2, progress=False)
    datamodule = SlakhDataModule(root=str(folder / "minislakh"), cache_dir=str(folder / "cache"),
                                 segment_seconds=4.0, batch_size=8, train_crops_per_track=8)
    pl.seed_everything(0)
    transcriptor = TranscriptorStage()
    trainer = _trainer(max_steps=300, check_val_every_n_epoch=100)
    trainer.fit(transcriptor, datamodule)
    trainer.save_checkpoint(folder / "stage1.ckpt")
    stage1 = trainer.validate(transcriptor, datamodule, verbose=False)[0]

    pl.seed_everything(0)
    separator = SeparatorStage(transcriptor_checkpoint=str(folder / "stage1.ckpt"), clip_mix_weight=0.1,
                               harmonic_mix_weight=0.1, log_media=False)
    trainer = _trainer(max_steps=200, check_val_every_n_epoch=100)
    trainer.fit(separator, datamodule)
    trainer.save_checkpoint(folder / "stage2.ckpt")
    stage2 = trainer.validate(separator, datamodule, verbose=False)[0]

    pl.seed_everything(0)
    adversarial = AdversarialStage(separator_checkpoint=str(folder / "stage2.ckpt"),
                                   transcriptor_checkpoint=str(folder / "stage1.ckpt"), aml=True, log_media=False)
    trainer = _trainer(max_epochs=2, check_val_every_n_epoch=100)
    trainer.fit(adversarial, datamodule)
    stage3 = trainer.validate(adversarial, datamodule, verbose=False)[0]
    print({"stage1": stage1, "stage2": stage2, "stage3": stage3})
    return {"stage1": stage1, "stage2": stage2, "stage3": stage3}


def test_stage2_gains_where_it_gained_before(pipeline):
    results = pipeline["stage2"]
    assert results["val/si_sdri/bass"] > 2.0 and results["val/si_sdri/piano"] > 0.5, results


def test_stage2_improves_si_sdr_over_the_mixture_for_every_instrument(pipeline):
    results = pipeline["stage2"]
    for name in INSTRUMENTS:
        assert results[f"val/si_sdri/{name}"] > 0.5, (name, results)


def test_stage3_keeps_stage2_separation_and_stage1_transcription(pipeline):
    stage2, stage3 = pipeline["stage2"], pipeline["stage3"]
    assert stage3["val/si_sdr"] > stage2["val/si_sdr"] - 1.0, (stage2, stage3)
    for name in INSTRUMENTS:
        if stage2[f"val/si_sdri/{name}"] > 0:  # above the input after stage 2: still above after stage 3
            assert stage3[f"val/si_sdri/{name}"] > 0, (name, stage3)
        before = pipeline["stage1"][f"val/mix/accuracy/{name}"]
        assert stage3[f"val/mix/accuracy/{name}"] > before - 0.05, (name, before, stage3)  # no collapse
