import pytest
import torch

from scoresep.checkpoints import CheckpointError, StageCheckpoint
from scoresep.features import FeatureSettings
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig
from scoresep.score import activity_target
from scoresep.stages.transcriptor import TranscriptorStage, random_gain
from tests.helpers import quiet_trainer, tiny_batch, tiny_datamodule

TINY = {"channels": 4, "conv_blocks": 1, "hidden": 16, "rnn_layers": 1, "dropout": 0.0}


@pytest.mark.parametrize(("config", "n_pitches"), [(TranscriptorConfig(), 88), (TranscriptorConfig(**TINY), 1)])
def test_transcriptor_maps_magnitude_to_instrument_pitch_frame_logits(config, n_pitches):
    model = Transcriptor(513, 3, n_pitches, config)
    assert model(torch.rand(2, 513, 40)).shape == (2, 3, n_pitches, 40)
    with pytest.raises(ValueError, match=r"expects a magnitude \(batch, freq=513, frame\), got shape \(2, 40\)"):
        model(torch.rand(2, 40))


def test_paper_size_is_larger_than_small():
    small = sum(p.numel() for p in Transcriptor(513, 3, 88, TranscriptorConfig()).parameters())
    paper = sum(p.numel() for p in Transcriptor(513, 3, 88, TranscriptorConfig.paper()).parameters())
    assert 100_000 < small < 1_000_000 < 2_000_000 < paper


def test_activity_target_is_max_over_pitch():
    rolls = torch.zeros(1, 2, 88, 5)
    rolls[0, 1, 40, 2] = 1
    assert activity_target(rolls)[0, :, 0].tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]


# The stage is driven by hand here, without a Trainer, so its self.log calls have nowhere to go.
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)` but the `self.trainer` reference")
def test_training_steps_fit_a_fixed_batch(minislakh, tmp_path):
    batch = tiny_batch(minislakh, tmp_path)
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY))
    optimizer = torch.optim.Adam(stage.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = stage.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_level_augmentation_scales_each_input_by_one_gain_within_the_range():
    magnitude = torch.rand(64, 513, 10) + 0.1
    assert random_gain(magnitude, 0.0) is magnitude
    torch.manual_seed(0)
    ratio = random_gain(magnitude, 12.0) / magnitude  # (batch, freq, frame)
    per_input = ratio[:, :1, :1]
    assert torch.allclose(ratio, per_input.expand_as(ratio), rtol=1e-5)  # one gain per input
    decibels = 20 * per_input.flatten().log10()
    assert decibels.min() >= -12.0 - 1e-4 and decibels.max() <= 12.0 + 1e-4
    assert decibels.max() - decibels.min() > 12.0  # gains differ between inputs, both signs drawn
    with pytest.raises(ValueError, match="gain_db >= 0"):
        TranscriptorStage(model=TranscriptorConfig(**TINY), gain_db=-3.0)


@pytest.mark.parametrize("train_on", ["sources", "both", "submixtures"])
def test_training_variants_use_the_stems(minislakh, tmp_path, train_on):
    datamodule = tiny_datamodule(minislakh, tmp_path)
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY), train_on=train_on, gain_db=6.0)
    quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1).fit(stage, datamodule)
    assert stage.global_step == 2


def test_checkpoint_hands_the_transcriptor_on_without_kernels(minislakh, tmp_path):
    datamodule = tiny_datamodule(minislakh, tmp_path)
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY), label="activity")
    trainer = quiet_trainer(tmp_path, max_steps=3, limit_val_batches=2)
    trainer.fit(stage, datamodule)
    path = tmp_path / "stage1.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert not any("spectrogram" in key or "kernel" in key for key in checkpoint["state_dict"])
    assert checkpoint["scoresep"]["stage"] == "transcriptor"
    features = FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024, 256, 21, 108)
    model, info = StageCheckpoint.read(path).transcriptor(expected=features, label="activity")
    assert info["n_pitches"] == 1 and info["label"] == "activity"
    for name, tensor in stage.transcriptor.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    with pytest.raises(CheckpointError, match=r"label='activity', this run needs label='notes'"):
        StageCheckpoint.read(path).transcriptor(expected=features, label="notes")
    other = FeatureSettings(("bass", "guitar", "piano"), 22_050, 1024, 256, 21, 108)
    with pytest.raises(CheckpointError, match=rf"{path}: trained with other feature settings: sample_rate=22050 "
                                              r"\(this run\) vs sample_rate=16000 \(checkpoint\)"):
        StageCheckpoint.read(path).transcriptor(expected=other)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        StageCheckpoint.read(tmp_path / "missing.ckpt").transcriptor()
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.ckpt: cannot read checkpoint"):
        StageCheckpoint.read(tmp_path / "garbage.ckpt").transcriptor()


def test_stage_and_data_disagreeing_stop_at_start(minislakh, tmp_path):
    datamodule = tiny_datamodule(minislakh, tmp_path)
    stage = TranscriptorStage(features=FeatureSettings(("bass", "piano"), max_midi=96),
                              model=TranscriptorConfig(**TINY))
    with pytest.raises(ValueError, match=r"instruments=\('bass', 'piano'\) \(model\) vs "
                                         r"instruments=\('bass', 'guitar', 'piano'\) \(data\); max_midi=96"):
        quiet_trainer(tmp_path, max_steps=1).fit(stage, datamodule)


def test_evaluation_reports_per_instrument_mixture_and_isolated_scores(minislakh, tmp_path, capsys):
    datamodule = tiny_datamodule(minislakh, tmp_path)
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY))
    results = quiet_trainer(tmp_path).test(stage, datamodule)[0]
    for kind in ("mix", "iso"):
        for name in ("bass", "guitar", "piano"):
            assert 0.0 <= results[f"test/{kind}/accuracy/{name}"] <= 1.0
            assert f"test/{kind}/onset_f1/{name}" in results
    assert 0.0 <= results["test/iso/wrong_channel/piano"] <= 1.0
    assert "| mix/accuracy |" in capsys.readouterr().out


def test_thresholds_are_calibrated_on_validation_kept_in_the_checkpoint_and_used_downstream(minislakh, tmp_path):
    from scoresep.inference.transcription import Transcriber

    datamodule = tiny_datamodule(minislakh, tmp_path)
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY, bands_per_semitone=2, log_eps=1e-3))
    trainer = quiet_trainer(tmp_path, max_steps=3, limit_val_batches=2, num_sanity_val_steps=0)
    trainer.fit(stage, datamodule)
    logged = [float(trainer.callback_metrics[f"val/threshold/{name}"]) for name in ("bass", "guitar", "piano")]
    assert stage.thresholds.tolist() == pytest.approx(logged)
    assert logged != [0.5, 0.5, 0.5]  # a few steps of weighted BCE are far from calibrated at 0.5
    path = tmp_path / "calibrated.ckpt"
    trainer.save_checkpoint(path)
    _, info = StageCheckpoint.read(path).transcriptor()
    assert info["thresholds"] == pytest.approx(logged)
    assert Transcriber.from_checkpoint(path, device="cpu").thresholds.tolist() == pytest.approx(logged)
    assert Transcriber.from_checkpoint(path, threshold=0.7, device="cpu").thresholds.tolist() == pytest.approx(
        [0.7] * 3)
    assert "filterbank" not in "".join(torch.load(path, weights_only=True)["state_dict"])  # fixed, rebuilt


def test_log_frequency_input_maps_bins_to_semitone_bands():
    from scoresep.models.log_frequency import log_frequency_filterbank

    bank = log_frequency_filterbank(16_000, 1024, 21, 2)
    assert bank.shape == (197, 513)  # A0 - 1/2 semitone up to 8 kHz, two bands per semitone
    assert torch.allclose(bank.sum(1), torch.ones(197))  # every band averages at least one bin
    # a pure tone at A4 (440 Hz) lands in the band centred on MIDI 69: row 2 * (69 - 20.5) = 97
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(16_000) / 16_000)
    magnitude = torch.stft(tone, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
    assert int((bank @ magnitude).mean(-1).argmax()) == 97


def test_checkpoints_from_before_the_input_settings_load_with_linear_bins_and_log1p(tmp_path):
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY, bands_per_semitone=0, log_eps=1.0, harmonics=[]))
    checkpoint = {"state_dict": stage.state_dict()}
    stage.on_save_checkpoint(checkpoint)
    for key in ("bands_per_semitone", "log_eps", "harmonics"):  # what a checkpoint of the earlier format holds
        del checkpoint["scoresep"]["models"]["transcriptor"]["config"][key]
    del checkpoint["scoresep"]["models"]["transcriptor"]["thresholds"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    model, info = StageCheckpoint.read(tmp_path / "old.ckpt").transcriptor()
    assert model.filterbank is None and model.config.log_eps == 1.0
    magnitude = torch.rand(1, 513, 20)
    stage.transcriptor.eval(), model.eval()
    assert torch.equal(model(magnitude), stage.transcriptor(magnitude))
    from scoresep.checkpoints import checkpoint_thresholds

    assert checkpoint_thresholds(info) == [0.5, 0.5, 0.5]


def test_harmonic_stack_lines_each_partial_up_with_its_fundamental():
    model = Transcriptor(513, 3, 88, TranscriptorConfig(**TINY, harmonics=[0.5, 1, 2, 3]))
    assert model.harmonic_shifts == [-24, 0, 24, 38]  # 2 bands per semitone: an octave is 24 bands
    bands = torch.arange(100.0).view(1, 100, 1).expand(2, 100, 3)  # each band holds its own index
    stacked = model.harmonic_stack(bands)
    assert stacked.shape == (2, 4, 100, 3)
    assert torch.equal(stacked[:, 1], bands)
    assert stacked[0, 2, 10, 0] == 34 and stacked[0, 3, 10, 0] == 48  # 2nd / 3rd partial of band 10
    assert stacked[0, 0, 30, 0] == 6  # the sub-octave
    assert stacked[0, 0, 10, 0] == 0 and stacked[0, 3, 70, 0] == 0  # beyond either end: zeros, never wrapped
    assert model(torch.rand(2, 513, 7)).shape == (2, 3, 88, 7)


def test_harmonics_need_log_frequency_bands_and_distinct_positive_factors():
    with pytest.raises(ValueError, match="harmonics need log-frequency bands"):
        TranscriptorConfig(**TINY, bands_per_semitone=0, harmonics=[1, 2])
    with pytest.raises(ValueError, match="distinct and > 0"):
        TranscriptorConfig(**TINY, harmonics=[1, 1, 2])
    assert Transcriptor(513, 3, 88, TranscriptorConfig(**TINY, harmonics=[1])).harmonic_shifts == []
