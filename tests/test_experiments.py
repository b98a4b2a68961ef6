"""Every experiment YAML parses and runs one training and one validation batch (``fast_dev_run``).

Stage-2 and stage-3 configs read earlier stages' checkpoints from ``checkpoints/``; a session fixture trains
tiny ones first (stage 1, the classifier, then stage 2 from that stage 1).
"""

import shutil
from pathlib import Path

import pytest
import yaml

from scoresep.cli import main

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
CONFIGS = sorted(EXPERIMENTS.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    """LightningCLI reads sys.argv when given no args; make it the bare command, as a user's shell would."""
    monkeypatch.setattr("sys.argv", ["scoresep"])


def _data_args(minislakh, tmp_path):
    return ["--data.root", str(minislakh), "--data.cache_dir", str(tmp_path / "cache"),
            "--data.segment_seconds", "1.0", "--data.batch_size", "2", "--data.num_workers", "0"]


@pytest.fixture(scope="session")
def stage_checkpoints(minislakh, tmp_path_factory):
    """``checkpoints/{stage1,classifier,stage2,stage2_score_target,stage2_score_informed}/best.ckpt`` from
    two-batch runs of those configs (stage2_score_target is stage2_warm's warm start, stage2_score_informed
    adapt_score_informed's)."""
    folder = tmp_path_factory.mktemp("stage1-runs")
    args = ["--data.root", str(minislakh), "--data.cache_dir", str(folder / "cache"), "--data.segment_seconds", "1.0",
            "--trainer.accelerator=cpu", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    import os
    import sys

    cwd, argv = os.getcwd(), sys.argv
    try:
        os.chdir(folder)
        sys.argv = ["scoresep"]
        for name in ("stage1", "baseline_classifier", "stage2", "stage2_score_target", "stage2_score_informed"):
            # no W&B run here: one left open in this process would swallow later tests' W&B logging
            extra = ["--model.init_args.log_media=false", "--trainer.logger=false"] if name.startswith("stage2") else []
            if name == "stage2_score_informed":  # these songs have no solo passages: L_remix alone
                extra += ["--data.solo_passages=false", "--model.init_args.loss_weights={remix: 1.0}"]
            main(["fit", "--config", str(EXPERIMENTS / f"{name}.yaml"), *args, *extra])
    finally:
        os.chdir(cwd)
        sys.argv = argv
    return folder / "checkpoints"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_experiment_runs_under_fast_dev_run(config, minislakh, stage_checkpoints, tmp_path, monkeypatch, request):
    """Each YAML as a user runs it; one that trains on the score's solo passages gets songs that have some."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(stage_checkpoints, tmp_path / "checkpoints")
    solo = (yaml.safe_load(config.read_text()).get("data") or {}).get("solo_passages", False)
    data = request.getfixturevalue("minislakh_solo") if solo else minislakh
    main(["fit", "--config", str(config), *_data_args(data, tmp_path), "--trainer.fast_dev_run=true",
          "--trainer.accelerator=cpu"])


def test_stage1_fit_then_test_prints_the_per_instrument_table(minislakh, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = str(EXPERIMENTS / "stage1.yaml")
    args = [*_data_args(minislakh, tmp_path), "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    main(["fit", "--config", config, *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
          "--trainer.limit_val_batches=1"])
    assert (tmp_path / "checkpoints/stage1/last.ckpt").is_file()
    assert (tmp_path / "checkpoints/stage1/best.ckpt").is_file()
    main(["test", "--config", config, *args, "--ckpt_path", "checkpoints/stage1/best.ckpt"])
    output = capsys.readouterr().out
    assert "| metric | bass | guitar | piano |" in output and "| iso/wrong_channel |" in output
    assert "| mix/accuracy |" in output and "| iso/accuracy |" in output


def test_mistyped_option_is_rejected(minislakh, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(EXPERIMENTS / "stage1.yaml"), "--model.init_args.pos_wieght=3"])


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_experiment_writes_last_ckpt_every_epoch(config):
    """``save_last`` only writes when a best checkpoint is written; a run whose score stops improving would
    leave a stale last.ckpt. Every YAML keeps an unmonitored checkpoint named ``last`` instead."""
    import yaml

    callbacks = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    last = [c["init_args"] for c in callbacks if c.get("init_args", {}).get("filename") == "last"]
    assert len(last) == 1 and last[0]["monitor"] is None and last[0]["save_top_k"] == 1
    assert not any(c.get("init_args", {}).get("save_last") for c in callbacks)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_experiment_survives_kills_and_preemption(config):
    """Atomic checkpoint writes, a checkpoint on SIGUSR1 and RNG state in checkpoints, in every run."""
    import yaml

    trainer = yaml.safe_load(config.read_text())["trainer"]
    assert [p["class_path"] for p in trainer["plugins"]] == ["scoresep.training.AtomicCheckpointIO"]
    names = [c["class_path"] for c in trainer["callbacks"]]
    assert "scoresep.training.PreemptionCheckpoint" in names and "scoresep.training.RandomStateCheckpoint" in names


def test_the_data_block_lives_once_in_experiments_base():
    """Every experiment keeps only the data keys that differ from experiments/base/data.yaml, and the base file
    says what the DataModule's own defaults are (so a copy of scoresep without experiments/ trains the same).
    It holds exactly the keys the experiments always gave (the feature settings as one ``features`` block, which
    `scoresep reproduce` hashes flat, as it always did): a new key would change every composed config, and
    `scoresep reproduce` would refuse the rows trained before as trained with another configuration."""
    import inspect

    import yaml

    from scoresep.data.datamodule import SlakhDataModule
    from scoresep.features import FEATURE_FIELDS

    base = yaml.safe_load((EXPERIMENTS / "base" / "data.yaml").read_text())["data"]
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(SlakhDataModule.__init__).parameters.items() if name != "self"}
    defaults["features"] = defaults["features"].to_dict()  # a FeatureSettings, written in YAML as a mapping
    assert base.items() <= defaults.items()
    assert tuple(base["features"]) == FEATURE_FIELDS  # every feature setting, in the order of the flat form
    # strict: a run-time switch, not part of an experiment. solo_passages: added after results folders existed,
    # so base leaves it unset (its comment names it) and their rows keep their hashes; an experiment may set it.
    added_later = {"solo_passages"}
    assert set(defaults) - set(base) == {"strict"} | added_later
    assert all(f"# {key}: {str(defaults[key]).lower()}" in (EXPERIMENTS / "base" / "data.yaml").read_text()
               for key in added_later)
    for config in CONFIGS:
        data = yaml.safe_load(config.read_text()).get("data") or {}
        assert set(data) <= set(base) | added_later, config.name
        assert all(value != base.get(key, defaults[key]) for key, value in data.items()), (config.name, data)


def test_the_base_data_file_is_read_before_the_experiment(tmp_path, monkeypatch, capsys):
    base = tmp_path / "data.yaml"
    base.write_text("data:\n  batch_size: 3\n  root: from/base\n  mixture: full\n")
    monkeypatch.setattr("scoresep.configs.BASE_CONFIGS", (base,))
    for name, root in (("stage2", "from/base"), ("adapt", "data/packed")):
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(EXPERIMENTS / f"{name}.yaml"), "--print_config"])
        printed = capsys.readouterr().out
        assert "batch_size: 3" in printed and "mixture: full" in printed  # from the base file
        assert f"root: {root}" in printed  # the base's, unless the experiment gives its own (read after it)
