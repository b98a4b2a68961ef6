"""Checkpoints written before the feature settings were one ``FeatureSettings`` argument still load everywhere:
``--ckpt_path`` (test and resume), ``transcriptor_checkpoint`` / ``separator_checkpoint``, ``separate``,
``transcribe``, ``evaluate`` and ``load_from_checkpoint``.

Such a checkpoint holds the settings flat among the stage's and the data module's hyper-parameters
(``instruments``, ``sample_rate``, ..., ``stft_backend``) and its ``scoresep`` section has no ``stft_backend``.
``old_form`` rewrites one of today's checkpoints that way (the keys in the order the code before the change wrote
them). The runs use other settings than the defaults, so a loader that fell back to those would fail.
"""

import json
from pathlib import Path

import pytest
import torch

from scoresep.checkpoints import StageCheckpoint
from scoresep.data.datamodule import SlakhDataModule
from scoresep.features import FeatureSettings
from scoresep.models.transcriptor import TranscriptorConfig
from scoresep.stages import SeparatorStage, TranscriptorStage
from tests.helpers import TINY_FRAME, TINY_T, run_cli

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
FEATURES = FeatureSettings(("bass", "piano"), n_fft=512)
FEATURE_ARGS = ["--data.features.instruments=[bass,piano]", "--data.features.n_fft=512"]
TINY_STAGE1 = ["--model.init_args.model.channels=4", "--model.init_args.model.hidden=16"]
TINY_STAGE2 = [f"--model.init_args.model={json.dumps(TINY_FRAME)}", "--model.init_args.log_media=false"]


def _spread(settings: dict) -> dict:
    """``features`` spread into ``settings`` where it stood: the flat form."""
    flat: dict = {}
    for key, value in settings.items():
        flat.update(value if key == "features" else {key: value})
    return flat


def old_form(path: Path, target: Path) -> Path:
    """``path``'s checkpoint as the code before ``FeatureSettings`` was one argument wrote it, saved as ``target``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if key in checkpoint:
            assert "features" in checkpoint[key]  # today's checkpoints store the settings whole
            checkpoint[key] = _spread(checkpoint[key])
    del checkpoint["scoresep"]["features"]["stft_backend"]
    torch.save(checkpoint, target)
    return target


def _args(minislakh: Path, folder: Path) -> list[str]:
    return ["--data.root", str(minislakh), "--data.cache_dir", str(folder / "cache"), "--data.segment_seconds=1.0",
            "--data.batch_size=2", "--trainer.accelerator=cpu", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false",
            "--trainer.logger=false", *FEATURE_ARGS]


@pytest.fixture(scope="module")
def runs(minislakh, tmp_path_factory):
    """Stage 1 and stage 2 (through that stage 1) trained by the CLI for one tiny epoch with ``FEATURES``; their
    checkpoints in today's form and (``old/``) in the old one."""
    folder = tmp_path_factory.mktemp("old_checkpoints")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(folder)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    try:
        from scoresep.cli import main

        main(["fit", "--config", str(EXPERIMENTS / "stage1.yaml"), *_args(minislakh, folder), *TINY_STAGE1,
              "--trainer.max_epochs=1"])
        main(["fit", "--config", str(EXPERIMENTS / "stage2.yaml"), *_args(minislakh, folder), *TINY_STAGE2,
              "--trainer.max_epochs=1",
              f"--model.init_args.transcriptor_checkpoint={folder / 'checkpoints/stage1/best.ckpt'}"])
    finally:
        monkeypatch.undo()
    (folder / "old").mkdir()
    new = {"stage1": folder / "checkpoints/stage1/best.ckpt", "stage1_last": folder / "checkpoints/stage1/last.ckpt",
           "stage2": folder / "checkpoints/stage2/best.ckpt"}
    old = {name: old_form(path, folder / "old" / f"{name}.ckpt") for name, path in new.items()}
    return {"folder": folder, "new": new, "old": old}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    return tmp_path


def test_checkpoints_store_the_feature_settings_whole(runs):
    checkpoint = torch.load(runs["new"]["stage2"], weights_only=True)
    assert checkpoint["hyper_parameters"]["features"] == FEATURES.to_dict()
    assert checkpoint["datamodule_hyper_parameters"]["features"] == FEATURES.to_dict()
    assert checkpoint["scoresep"]["features"] == FEATURES.to_dict()
    assert not {"instruments", "n_fft", "stft_backend"} & set(checkpoint["hyper_parameters"])
    old = torch.load(runs["old"]["stage2"], weights_only=True)["hyper_parameters"]
    assert "features" not in old and (old["instruments"], old["n_fft"]) == (["bass", "piano"], 512)


def test_ckpt_path_tests_and_resumes_an_old_checkpoint(runs, minislakh, in_tmp, capsys):
    config = str(EXPERIMENTS / "stage1.yaml")
    def elsewhere():  # Lightning's warning: the checkpoint's run wrote its checkpoints in another folder
        return pytest.warns(UserWarning, match="The dirpath has changed")

    with elsewhere():
        code, out, err = run_cli(["test", "--config", config, *_args(minislakh, in_tmp), *TINY_STAGE1,
                                  "--ckpt_path", str(runs["old"]["stage1"])], capsys)
    assert code == 0, err
    assert "| metric | bass | piano |" in out
    with elsewhere():
        code, _, err = run_cli(["fit", "--config", config, *_args(minislakh, in_tmp), *TINY_STAGE1,
                                "--trainer.max_epochs=2", "--ckpt_path", str(runs["old"]["stage1_last"])], capsys)
    assert code == 0, err
    resumed = torch.load(in_tmp / "checkpoints/stage1/last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4  # the old run's epoch, then one more
    assert resumed["hyper_parameters"]["features"] == FEATURES.to_dict()
    # the feature settings are still checked against the run's
    code, _, err = run_cli(["test", "--config", config, *_args(minislakh, in_tmp), *TINY_STAGE1,
                            "--data.features.hop_length=128", "--ckpt_path", str(runs["old"]["stage1"])], capsys)
    assert code == 1 and "trained with other feature settings: hop_length=128" in err


def test_old_checkpoints_hand_on_to_the_next_stages(runs, minislakh, in_tmp, capsys):
    assert StageCheckpoint.read(runs["old"]["stage1"]).transcriptor(expected=FEATURES)[1]["features"] == FEATURES
    assert StageCheckpoint.read(runs["old"]["stage2"]).separator(expected=FEATURES)[1]["features"] == FEATURES
    code, _, err = run_cli(["fit", "--config", str(EXPERIMENTS / "stage2.yaml"), *_args(minislakh, in_tmp),
                            *TINY_STAGE2, "--trainer.fast_dev_run=true",
                            f"--model.init_args.transcriptor_checkpoint={runs['old']['stage1']}"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["fit", "--config", str(EXPERIMENTS / "stage3.yaml"), *_args(minislakh, in_tmp),
                            "--trainer.fast_dev_run=true", "--model.init_args.log_media=false",
                            f"--model.init_args.separator_checkpoint={runs['old']['stage2']}",
                            f"--model.init_args.transcriptor_checkpoint={runs['old']['stage1']}"], capsys)
    assert code == 0, err


def test_commands_read_old_checkpoints(runs, minislakh, in_tmp, capsys):
    song = in_tmp / "song.flac"
    song.write_bytes((sorted(minislakh.glob("test/Track*"))[0] / "mix.flac").read_bytes())
    code, _, err = run_cli(["separate", str(song), "--ckpt", str(runs["old"]["stage2"]), "--out", "out",
                            "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (in_tmp / "out/song").iterdir()) == ["bass.wav", "piano.wav", "residual.wav"]
    code, _, err = run_cli(["transcribe", str(song), "--ckpt", str(runs["old"]["stage1"]), "--out", "song.mid"],
                           capsys)
    assert code == 0 and (in_tmp / "song.mid").is_file(), err
    code, _, err = run_cli(["evaluate", "--ckpt", str(runs["old"]["stage2"]), "--data", str(minislakh), "--cache",
                            str(in_tmp / "cache"), "--workers", "1", "--quiet", "--out", "eval.json"], capsys)
    assert code == 0 and (in_tmp / "eval.json").is_file(), err


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    one, two = first.state_dict(), second.state_dict()
    assert one.keys() == two.keys() and all(torch.equal(one[key], two[key]) for key in one)


def test_load_from_checkpoint_reads_old_checkpoints(runs, tmp_path):
    for stage, name in ((TranscriptorStage, "stage1"), (SeparatorStage, "stage2")):
        old, new = stage.load_from_checkpoint(runs["old"][name]), stage.load_from_checkpoint(runs["new"][name])
        assert old.features == new.features == FEATURES
        assert old.hparams["features"] == FEATURES.to_dict()
        _same_weights(old, new)
        with open(runs["old"][name], "rb") as handle:  # an open file too
            assert stage.load_from_checkpoint(handle).features == FEATURES
    assert SlakhDataModule.load_from_checkpoint(runs["old"]["stage1"]).features == FEATURES
    # a checkpoint saved from Python (no class path among its hyper-parameters)
    from tests.helpers import quiet_trainer

    stage = TranscriptorStage(features=FEATURES, model=TranscriptorConfig(**TINY_T))
    trainer = quiet_trainer(tmp_path)
    trainer.strategy.connect(stage)
    trainer.save_checkpoint(tmp_path / "python.ckpt")
    loaded = TranscriptorStage.load_from_checkpoint(old_form(tmp_path / "python.ckpt", tmp_path / "old.ckpt"))
    assert loaded.features == FEATURES
    _same_weights(loaded, stage)
