"""The score-informed separator (issue 27): it reads the score as well as the mixture, starts as the training-free
formula, trains in the stages without stems, is exact in chunks, and is never run without its score."""

import json

import numpy as np
import pretty_midi
import pytest
import soundfile
import torch

from scoresep.checkpoints import StageCheckpoint
from scoresep.data.slakh import scan
from scoresep.features import FeatureSettings
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource
from scoresep.models import ScoreInformedConfig, ScoreInformedSeparator, network_masks
from scoresep.score import bin_frequencies, harmonic_mask, harmonic_templates, score_rolls, shared_masks
from scoresep.stages import AdversarialStage, SeparatorStage
from tests.helpers import quiet_trainer, run_cli, tiny_datamodule, train_tiny_stages

FEATURES = FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024, 256, 21, 108)
INSTRUMENTS = FEATURES.instruments
SCORE_INFORMED = {"class_path": "scoresep.models.ScoreInformedSeparator", "init_args": {"hidden": 16, "blocks": 3}}


def _harmonic(rolls: torch.Tensor) -> torch.Tensor:
    templates = harmonic_templates(bin_frequencies(16_000, 1024), 88, 21, 8, 0.5)
    return harmonic_mask(rolls, templates)


def _song(minislakh) -> tuple[np.ndarray, np.ndarray]:
    entry = scan(minislakh, INSTRUMENTS)[0][0]
    waveform = soundfile.read(entry.mixture, dtype="float32")[0]
    midi = pretty_midi.PrettyMIDI(str(entry.directory / "all_src.mid"))
    rolls, _ = score_rolls(midi, INSTRUMENTS, 1 + len(waveform) // 256, 16_000 / 256, 21, 108)
    return waveform, rolls


def _train_informed(minislakh, tmp_path) -> None:
    """Tiny stage 1 and stage 2 (``stage1.ckpt``, ``stage2.ckpt``) and one step of a score-informed stage 2 through
    that stage 1, saved as ``tmp_path / "informed.ckpt"``."""
    train_tiny_stages(minislakh, tmp_path, steps=1)
    stage2 = SeparatorStage(model=SCORE_INFORMED, log_media=False,
                            transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"))
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(stage2, tiny_datamodule(minislakh, tmp_path))
    trainer.save_checkpoint(tmp_path / "informed.ckpt")


def test_untrained_it_is_the_formula_and_its_masks_never_sum_past_one():
    torch.manual_seed(0)
    network = ScoreInformedSeparator(513, 3, ScoreInformedConfig(hidden=16, blocks=2)).eval().requires_grad_(False)
    harmonic = _harmonic((torch.rand(2, 3, 88, 40) > 0.97).float())
    masks = network(torch.rand(2, 513, 40) * 10, harmonic)
    formula = shared_masks(harmonic, dim=1)
    assert (masks - formula).abs().max() < 3 * network.config.prior_floor  # the prior floor's share, no more
    torch.nn.init.normal_(network.expand[-1].weight)  # a trained network moves away from it, within [0, 1]
    masks = network(torch.rand(2, 513, 40) * 10, harmonic)
    assert (masks - formula).abs().max() > 0.1
    assert float(masks.min()) >= 0 and float(masks.sum(1).max()) <= 1 + 1e-6


def test_it_refuses_to_run_without_a_score_and_names_what_it_needs():
    network = ScoreInformedSeparator(513, 3, ScoreInformedConfig(hidden=8, blocks=1))
    with pytest.raises(ValueError, match="reads the score"):
        network_masks(network, torch.rand(1, 513, 10))
    with pytest.raises(ValueError, match=r"harmonic masks \(batch, instrument, freq, frame\)"):
        network(torch.rand(1, 513, 10), torch.zeros(1, 2, 513, 10))
    separator = Separator(network, FEATURES, device="cpu")
    with pytest.raises(ValueError, match="reads the score; give the recording's score"):
        separator.separate_source(ArraySource(np.zeros(16_000, np.float32) + 0.1, 16_000))


def test_its_receptive_field_is_exact_and_chunked_separation_equals_one_pass(minislakh):
    torch.manual_seed(1)
    network = ScoreInformedSeparator(513, 3, ScoreInformedConfig(hidden=8, blocks=4, dilation_cycle=2)).eval()
    torch.nn.init.normal_(network.expand[-1].weight, std=0.1)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    magnitude, harmonic = torch.rand(1, 513, 120), _harmonic((torch.rand(1, 3, 88, 120) > 0.97).float())
    changed = magnitude.clone()
    changed[..., 60] += 3.0
    with torch.no_grad():
        difference = (network(changed, harmonic) - network(magnitude, harmonic)).abs().amax(dim=(0, 1, 2))
    assert (difference.nonzero().flatten() - 60).abs().max() == network.receptive_field_frames
    waveform, rolls = _song(minislakh)
    whole = Separator(network, FEATURES, chunk_seconds=100.0, device="cpu").separate_source(
        ArraySource(waveform, 16_000), score=rolls)
    chunked = Separator(network, FEATURES, chunk_seconds=0.5, device="cpu")
    pieces = chunked.separate_source(ArraySource(waveform, 16_000), score=rolls)
    assert np.abs(pieces - whole).max() < 1e-5 * np.abs(whole).max()


def test_it_trains_in_stage_2_and_stage_3_without_stems_and_separates_with_the_score(minislakh, tmp_path):
    train_tiny_stages(minislakh, tmp_path, steps=1)
    stage2 = SeparatorStage(model=SCORE_INFORMED, log_media=False,
                            transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"))
    before = {name: tensor.clone() for name, tensor in stage2.separator.state_dict().items()}
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1)
    trainer.fit(stage2, tiny_datamodule(minislakh, tmp_path))
    assert not torch.equal(before["expand.3.weight"], stage2.separator.state_dict()["expand.3.weight"])
    trainer.save_checkpoint(tmp_path / "informed.ckpt")
    network, info = StageCheckpoint.read(tmp_path / "informed.ckpt").separator()
    assert isinstance(network, ScoreInformedSeparator) and network.reads_score
    stage3 = AdversarialStage(separator_checkpoint=str(tmp_path / "informed.ckpt"),
                              transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"), log_media=False)
    quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(stage3, tiny_datamodule(minislakh, tmp_path))
    waveform, rolls = _song(minislakh)
    separated = Separator.from_checkpoint(tmp_path / "informed.ckpt", device="cpu")(waveform, 16_000, score=rolls)
    assert set(separated) == {"bass", "guitar", "piano", "residual"}
    total = sum(separated.values()).numpy()
    assert np.abs(total - waveform[: len(total)]).max() < 1e-4  # the pieces and the residual sum to the mixture


def test_evaluate_and_separate_read_the_score_for_it_and_say_so(minislakh, tmp_path, capsys):
    _train_informed(minislakh, tmp_path)
    for checkpoint, flags, reads, weight in [("informed.ckpt", [], True, None), ("stage2.ckpt", [], False, None),
                                             ("stage2.ckpt", ["--score"], True, 0.25),
                                             ("stage2.ckpt", ["--score", "--learned-weight", "0.75"], True, 0.75)]:
        out = tmp_path / f"{checkpoint}{len(flags)}.json"
        code, _, stderr = run_cli(["evaluate", "--ckpt", str(tmp_path / checkpoint), "--data", str(minislakh),
                                   "--cache", str(tmp_path / "cache"), "--split", "test", "--out", str(out),
                                   "--quiet", *flags], capsys)
        assert code == 0, stderr
        result = json.loads(out.read_text())
        assert result["reads_score"] is reads and result.get("learned_weight") == weight
    entry = scan(minislakh, INSTRUMENTS)[0][0]
    informed = str(tmp_path / "informed.ckpt")
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", informed, "--out", str(tmp_path / "a")],
                              capsys)
    assert code == 1 and "reads the score as well as the audio; give each recording's score with --score" in stderr
    assert not (tmp_path / "a").exists()
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", informed, "--score",
                               str(entry.directory / "all_src.mid"), "--out", str(tmp_path / "b"), "--quiet"], capsys)
    assert code == 0, stderr
    assert len(list((tmp_path / "b").rglob("*.flac"))) + len(list((tmp_path / "b").rglob("*.wav"))) == 4
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", str(tmp_path / "stage2.ckpt"), "--score",
                               str(entry.directory / "all_src.mid"), "--out", str(tmp_path / "c"), "--quiet"], capsys)
    assert code == 0 and "this separator hears only the audio; with --score each bin stays with the" in stderr
    assert "(weight 0.25 against an equal split, --learned-weight)" in stderr
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", informed, "--score",
                               str(entry.directory / "all_src.mid"), "--learned-weight", "0.3", "--out",
                               str(tmp_path / "d")], capsys)
    assert code == 1 and "--learned-weight weighs an audio-only separator's masks against the score's" in stderr
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", str(tmp_path / "stage2.ckpt"),
                               "--learned-weight", "0.3", "--out", str(tmp_path / "e")], capsys)
    assert code == 1 and "it needs --score and a separator that hears only the audio" in stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()
    code, _, stderr = run_cli(["transcribe", str(entry.mixture), "--ckpt", str(tmp_path / "stage1.ckpt"),
                               "--from-separated", "--separator-ckpt", informed, "--out", str(tmp_path / "t.mid")],
                              capsys)
    assert code == 1 and "its separator reads the score, and transcribe has none to give it" in stderr
    assert not (tmp_path / "t.mid").exists()


def test_a_warm_start_must_keep_the_harmonic_masks_the_separator_reads(minislakh, tmp_path):
    """Stage 3 and a warm-started stage 2 refuse other harmonic settings for a separator that reads the score (it
    would read masks it never saw); with the checkpoint's own they start."""
    from scoresep.checkpoints import CheckpointError

    _train_informed(minislakh, tmp_path)
    informed = str(tmp_path / "informed.ckpt")
    with pytest.raises(CheckpointError, match="reads the score through harmonic masks"):
        AdversarialStage(separator_checkpoint=informed, transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"),
                         n_harmonics=6, log_media=False)
    with pytest.raises(CheckpointError, match="reads the score through harmonic masks"):
        SeparatorStage(model=SCORE_INFORMED, critic="none", separator_checkpoint=informed, harmonic_tolerance=0.25,
                       loss_weights={"remix": 1.0}, log_media=False)
    SeparatorStage(model=SCORE_INFORMED, critic="none", separator_checkpoint=informed, loss_weights={"remix": 1.0},
                   log_media=False)
