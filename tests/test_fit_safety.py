"""``scoresep fit`` never overwrites a user's work, and says clearly what is wrong: a fit refuses to replace an
earlier run's checkpoints (``--overwrite``, ``--ckpt_path``, ``--checkpoint_dir`` are the ways out), every run keeps
its config in a log folder of its own, a fit that never validated says where its weights are, a misspelled key or
a NaN weight is the last line, and a missing or empty validation split is named as such.

Each case runs the real command in-process (``scoresep.cli.main``) in its own working folder, with tiny networks on
the session's mini-Slakh, and checks the exit status, the last line and that no earlier file was changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import last_line, run_cli, snapshot

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
TINY_TRANSCRIPTOR = ["--model.init_args.model.channels=2", "--model.init_args.model.hidden=8"]
TINY_SEPARATOR = ['--model.init_args.model={"class_path": "scoresep.models.FrameSeparator", '
                  '"init_args": {"hidden": 8, "blocks": 1}}', "--model.init_args.log_media=false"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the module's runs (outside the working folders, whose snapshots it would spoil)."""
    return tmp_path_factory.mktemp("fit_safety_cache")


def _fit(config: str, data: Path, cache: Path, *extra: str, command: str = "fit") -> list[str]:
    # stage 3 rebuilds both networks from its input checkpoints: it has no size of its own
    tiny = TINY_TRANSCRIPTOR if config.startswith("stage1") else [] if config.startswith("stage3") else TINY_SEPARATOR
    return [command, "--config", str(EXPERIMENTS / config), "--data.root", str(data), "--data.cache_dir", str(cache),
            "--data.segment_seconds", "1.0", "--data.batch_size", "2", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", *tiny, *extra]


@pytest.fixture(scope="module")
def earlier_run(minislakh, cache_dir, tmp_path_factory) -> Path:
    """A working folder after one finished stage-1 fit: ``checkpoints/stage1/{best,last}.ckpt`` and
    ``lightning_logs/stage1/version_0/``. Read-only: tests copy it."""
    import os
    import sys

    from scoresep.cli import main

    folder = tmp_path_factory.mktemp("earlier_run")
    cwd, argv = os.getcwd(), sys.argv
    try:
        os.chdir(folder)
        sys.argv = ["scoresep"]
        main(_fit("stage1.yaml", minislakh, cache_dir))
    finally:
        os.chdir(cwd)
        sys.argv = argv
    assert {p.name for p in (folder / "checkpoints" / "stage1").iterdir()} == {"best.ckpt", "last.ckpt"}
    return folder


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    return folder


@pytest.fixture
def earlier(earlier_run, work) -> Path:
    """``work`` holding the earlier run's checkpoints and logs."""
    shutil.copytree(earlier_run, work, dirs_exist_ok=True)
    return work


def _step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


# 1. a fit does not replace another run's checkpoints unless told to

def test_a_second_fit_refuses_to_replace_the_first_runs_checkpoints(earlier, minislakh, cache_dir, capsys):
    before = snapshot(earlier)
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--trainer.limit_train_batches=1"), capsys)
    assert code == 1, err[-3000:]
    assert last_line(err) == (
        "scoresep fit: error: checkpoints/stage1 holds best.ckpt and last.ckpt of an earlier run, which this fit "
        "would replace: resume that run with --ckpt_path last, write this one elsewhere with --checkpoint_dir DIR, "
        "or replace them with --overwrite true")
    assert snapshot(earlier) == before  # no checkpoint, no log version, no config written


def test_ckpt_path_last_without_a_last_ckpt_is_a_new_run_and_is_checked(earlier, minislakh, cache_dir, capsys):
    (earlier / "checkpoints/stage1/last.ckpt").unlink()  # Lightning would start from scratch and replace best.ckpt
    before = snapshot(earlier)
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--ckpt_path", "last"), capsys)
    assert code == 1, err[-3000:]
    assert last_line(err) == (
        "scoresep fit: error: checkpoints/stage1 holds best.ckpt of an earlier run, which this fit would replace: "
        "write this one elsewhere with --checkpoint_dir DIR, or replace them with --overwrite true")
    assert snapshot(earlier) == before


def test_overwrite_replaces_them_and_a_saved_config_never_says_overwrite(earlier, minislakh, cache_dir, capsys,
                                                                         caplog):
    logs = earlier / "lightning_logs" / "stage1"
    kept = snapshot(logs / "version_0")
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--trainer.limit_train_batches=1",
                                "--overwrite"), capsys)
    assert code == 0, err[-3000:]
    assert "--overwrite: removed checkpoints/stage1/best.ckpt, written by an earlier run" in caplog.text
    assert _step(earlier / "checkpoints/stage1/last.ckpt") == 1 and _step(earlier / "checkpoints/stage1/best.ckpt") == 1
    assert snapshot(logs / "version_0") == kept  # the earlier run's logs are its own
    saved = logs / "version_1" / "config.yaml"
    assert yaml.safe_load(saved.read_text())["overwrite"] is False
    # re-running the saved config is a new run: refused again, not a silent replacement
    before = snapshot(earlier)
    code, _, err = run_cli(["fit", "--config", str(saved)], capsys)
    assert code == 1 and "of an earlier run, which this fit would replace" in last_line(err), err[-3000:]
    assert snapshot(earlier) == before


def test_resuming_or_writing_elsewhere_needs_no_flag(earlier, minislakh, cache_dir, capsys):
    first = snapshot(earlier / "checkpoints")
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--checkpoint_dir", "checkpoints/try2"), capsys)
    assert code == 0, err[-3000:]
    assert snapshot(earlier / "checkpoints", skip=("try2",)) == first
    assert {p.name for p in (earlier / "checkpoints/try2").iterdir()} == {"best.ckpt", "last.ckpt"}
    config = yaml.safe_load((earlier / "lightning_logs/stage1/version_1/config.yaml").read_text())
    assert {c["init_args"]["dirpath"] for c in config["trainer"]["callbacks"]
            if c["class_path"].endswith("ModelCheckpoint")} == {"checkpoints/try2"}
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--trainer.max_epochs=2", "--ckpt_path",
                                "last"), capsys)
    assert code == 0, err[-3000:]
    assert _step(earlier / "checkpoints/stage1/last.ckpt") == 4  # 2 steps more than the earlier run's 2


def test_checkpoint_dir_logger_puts_each_runs_checkpoints_in_its_own_log_folder(earlier, minislakh, cache_dir,
                                                                                   capsys):
    """What a sweep's runs need: two fits of one YAML that never share a checkpoint folder."""
    first = snapshot(earlier / "checkpoints")
    for _ in range(2):
        code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--checkpoint_dir=logger"), capsys)
        assert code == 0, err[-3000:]
    assert snapshot(earlier / "checkpoints") == first
    for version in ("version_1", "version_2"):
        folder = earlier / "lightning_logs/stage1" / version / "checkpoints"
        assert {p.name for p in folder.iterdir()} == {"best.ckpt", "last.ckpt"}


def test_the_new_options_print_and_parse(work, capsys):
    code, out, err = run_cli(["fit", "--config", str(EXPERIMENTS / "stage1.yaml"), "--overwrite=true",
                              "--checkpoint_dir", "elsewhere", "--print_config"], capsys)
    assert code == 0, err[-3000:]
    printed = yaml.safe_load(out)
    assert printed["overwrite"] is True and printed["checkpoint_dir"] == "elsewhere"
    assert not any(work.iterdir())


# 2. every run's config lands in a log folder of that run only

def test_each_wandb_run_saves_its_config_in_a_version_folder_of_its_own(work, minislakh, cache_dir,
                                                                         tiny_checkpoints, capsys):
    logs = work / "lightning_logs"
    logs.mkdir()
    (logs / "config.yaml").write_text("an older run's config\n")  # what runs before this change left there
    stage1 = f"--model.init_args.transcriptor_checkpoint={tiny_checkpoints['stage1']}"
    for attempt in ("first", "second"):
        code, _, err = run_cli(_fit("stage2.yaml", minislakh, cache_dir, stage1, "--checkpoint_dir", attempt,
                                    "--trainer.limit_train_batches=1", "--trainer.num_sanity_val_steps=0"), capsys)
        assert code == 0, err[-3000:]
    assert (logs / "config.yaml").read_text() == "an older run's config\n"
    configs = sorted(p.relative_to(logs).as_posix() for p in logs.glob("stage2/*/config.yaml"))
    assert configs == ["stage2/version_0/config.yaml", "stage2/version_1/config.yaml"]
    dirpaths = [yaml.safe_load((logs / c).read_text())["trainer"]["callbacks"][0]["init_args"]["dirpath"]
                for c in configs]
    assert dirpaths == ["first", "second"]


def test_a_run_without_a_logger_keeps_its_config_out_of_the_working_folder(earlier, minislakh, cache_dir, capsys):
    (earlier / "config.yaml").write_text("the user's own config.yaml\n")
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, "--trainer.logger=false", "--checkpoint_dir",
                                "nolog"), capsys)
    assert code == 0, err[-3000:]
    assert (earlier / "config.yaml").read_text() == "the user's own config.yaml\n"
    assert (earlier / "lightning_logs" / "version_0" / "config.yaml").is_file()


# 3. a fit too short to validate says so, and where its weights are

@pytest.mark.parametrize("limits, why", [
    (["--trainer.limit_val_batches=0"], "validation is off (limit_val_batches=0)"),
    (["--trainer.max_steps=1", "--trainer.num_sanity_val_steps=0"],
     "the fit ended at step 1, before its first validation"),
], ids=["validation-off", "ends-before-validation"])
def test_a_fit_that_never_validated_says_where_its_weights_are(limits, why, work, minislakh, cache_dir, capsys):
    code, _, err = run_cli(_fit("stage1.yaml", minislakh, cache_dir, *limits), capsys)
    assert code == 0, err[-3000:]
    assert last_line(err) == (
        f"scoresep fit: note: {why}, so checkpoints/stage1/best.ckpt was not written; checkpoints/stage1/last.ckpt "
        f"holds this fit's final weights (step {_step(work / 'checkpoints/stage1/last.ckpt')}): give that file where "
        "a best.ckpt is expected, or fit until a validation runs")
    assert not (work / "checkpoints/stage1/best.ckpt").exists()
    # stage 2 reads checkpoints/stage1/best.ckpt by default: its error points at last.ckpt
    before = snapshot(work)
    code, _, err = run_cli(_fit("stage2.yaml", minislakh, cache_dir), capsys)
    assert code == 1
    assert last_line(err) == (
        "scoresep fit: error: checkpoints/stage1/best.ckpt: checkpoint file not found; checkpoints/stage1/last.ckpt "
        "is there: a fit that never validated writes no best.ckpt, only last.ckpt with its final weights; give that "
        "file to use them")
    assert snapshot(work) == before


# 4. a misspelled key is the last line, with the closest valid one

def _misspelled_yaml(work: Path, old: str, new: str) -> str:
    path = work / "my_stage1.yaml"
    path.write_text((EXPERIMENTS / "stage1.yaml").read_text().replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize("where, expected", [
    ("--model.init_args.pos_wieght=3",
     "--model.init_args.pos_wieght: unknown key 'pos_wieght' in model.init_args (did you mean 'pos_weight'?)"),
    ("--model.init_args.model.chanels=3",
     "--model.init_args.model.chanels: unknown key 'chanels' in model.init_args.model (did you mean 'channels'?)"),
    ("--trainer.max_epoks=3", "--trainer.max_epoks: unknown key 'max_epoks' in trainer (did you mean 'max_epochs'?)"),
    ("--data.rooot=x", "--data.rooot: unknown key 'rooot' in data (did you mean 'root'?)"),
    ("--data.n_fft=512", "--data.n_fft: unknown key 'n_fft' in data (the feature settings are one block, set once: "
     "data.features.n_fft)"),
    ("--model.init_args.hop_length=512", "--model.init_args.hop_length: unknown key 'hop_length' in model.init_args "
     "(the feature settings are one block, set once: data.features.hop_length)"),
    ("yaml:pos_weight:pos_wieght",
     "{yaml}: unknown key 'pos_wieght' in model.init_args (did you mean 'pos_weight'?)"),
    ("yaml:max_epochs:max_epoks", "{yaml}: unknown key 'max_epoks' in trainer (did you mean 'max_epochs'?)"),
    ("--trainer.max_epochs=ten", "--trainer.max_epochs: expected an int, got 'ten'"),
    ("--model.init_args.scheduler=cosin", "--model.init_args.scheduler: expected one of 'cosine', 'none', got 'cosin'"),
], ids=["option", "nested-option", "trainer-option", "data-option", "flat-feature-option", "stage-feature-option",
        "yaml-model-key", "yaml-trainer-key", "wrong-type", "not-a-choice"])
def test_a_misspelled_key_is_the_last_line(where, expected, work, capsys):
    if where.startswith("yaml:"):
        _, old, new = where.split(":")
        path = _misspelled_yaml(work, f"{old}:", f"{new}:")
        argv = ["fit", "--config", path]
        expected = expected.format(yaml=path)
    else:
        argv = ["fit", "--config", str(EXPERIMENTS / "stage1.yaml"), where]
    before = snapshot(work)
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert last_line(err) == f"scoresep fit: error: {expected}"
    assert len(err.strip().splitlines()) <= 2, err  # no usage dump, no namespace dump
    assert snapshot(work) == before


# 5. NaN, infinite or negative weights and learning rates are refused at the door

@pytest.mark.parametrize("config, option, code, expected", [
    ("stage2.yaml", "--model.init_args.clip_mix_weight=nan", 2,
     "--model.init_args.clip_mix_weight: must be a finite number, got nan"),
    ("stage2.yaml", "--model.init_args.clip_mix_weight=.nan", 1, "SeparatorStage: clip_mix_weight must be a finite "
     "number, got nan"),
    ("stage2.yaml", "--model.init_args.clip_mix_weight=-1", 1, "SeparatorStage: loss weights must be >= 0, got "
     "clip_mix=-1.0"),
    ("stage2.yaml", "--model.init_args.lr=.inf", 1, "SeparatorStage: lr must be a finite number, got inf"),
    ("stage1.yaml", "--model.init_args.pos_weight=.nan", 1, "TranscriptorStage: pos_weight must be a finite number, "
     "got nan"),
    ("stage1.yaml", "--model.init_args.lr=0", 1, "TranscriptorStage: lr must be > 0, got 0.0"),
    ("stage3.yaml", "--model.init_args.aml_weight=.nan", 1, "AdversarialStage: aml_weight must be a finite number, "
     "got nan"),
    ("stage3.yaml", "--model.init_args.separator_lr=-0.001", 1, "AdversarialStage: separator_lr must be > 0, got "
     "-0.001"),
], ids=["nan-text", "yaml-nan", "negative-weight", "infinite-lr", "stage1-nan-weight", "zero-lr", "stage3-nan",
        "stage3-negative-lr"])
def test_a_nan_or_negative_setting_is_refused_at_the_door(config, option, code, expected, work, minislakh,
                                                         cache_dir, capsys):
    before = snapshot(work)
    exit_code, _, err = run_cli(_fit(config, minislakh, cache_dir, option), capsys)
    assert exit_code == code, err[-3000:]
    assert last_line(err) == f"scoresep fit: error: {expected}"
    assert "Union" not in err and "Namespace(" not in err
    assert snapshot(work) == before


# 6. a missing validation split, an empty one and one without usable tracks are told apart

def _small_dataset(minislakh: Path, work: Path, validation: str) -> tuple[Path, Path]:
    """Two training tracks and a validation split that is missing, empty, or one track with a corrupt mix."""
    data = work / "data"
    for track in sorted((minislakh / "train").glob("Track*"))[:2]:
        shutil.copytree(track, data / "train" / track.name)
    folder = data / "validation"
    if validation == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("not a track\n")
    elif validation == "unusable":
        track = sorted((minislakh / "validation").glob("Track*"))[0]
        shutil.copytree(track, folder / track.name)
        (folder / track.name / "mix.flac").write_bytes(b"fLaC" + bytes(200))
    return data, folder


@pytest.mark.parametrize("validation, expected", [
    ("missing", "{folder}: no such folder ({data} has train/), so no 'validation' tracks with usable audio; add a "
                "validation/ folder of TrackNNNNN folders (a few tracks moved from train/ will do)"),
    ("empty", "{folder}: the folder holds no TrackNNNNN track folders, so no 'validation' tracks with usable audio; "
              "put at least one track in it"),
    ("unusable", "{folder}: no 'validation' tracks with usable audio: all 1 of its track folders were skipped (the "
                 "first: /"),
])
def test_a_missing_an_empty_and_an_unusable_validation_split_are_told_apart(validation, expected, work, minislakh,
                                                                           capsys):
    data, folder = _small_dataset(minislakh, work, validation)
    before = snapshot(data)
    code, _, err = run_cli(_fit("stage1.yaml", Path("data"), work / "cache"), capsys)  # as a user types it
    assert code == 1, err[-3000:]
    assert last_line(err).startswith(f"scoresep fit: error: {expected.format(folder='data/validation', data='data')}")
    if validation == "unusable":
        assert "/mix.flac: cannot read audio header" in last_line(err)
    assert snapshot(data) == before
    assert not (work / "checkpoints").exists()


# scoresep reproduce owns its rows' folders: it retrains over an earlier attempt's leftovers, with the same hash

def test_reproduce_retrains_a_row_over_an_earlier_attempts_checkpoints(work, minislakh, cache_dir, capsys):
    from scoresep.reproduce import _plan_row, config_hash, load_preset, row_config

    preset_path = work / "tiny.yaml"
    preset_path.write_text(yaml.safe_dump({
        "data": {"root": str(minislakh), "cache_dir": str(cache_dir), "batch_size": 2, "segment_seconds": 1.0},
        "rows": {"stage1": {"config": str(EXPERIMENTS / "stage1.yaml"), "evaluate": False, "overrides": {
            "trainer": {"max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 1,
                        "enable_progress_bar": False},
            "model": {"init_args": {"model": {"channels": 2, "hidden": 8}}}}}}}))
    preset = load_preset(str(preset_path))
    row, out = preset.rows["stage1"], work / "results"
    fresh = _plan_row(preset, row, out, {}, {})
    assert "--overwrite" not in fresh.commands[0][1]
    leftover = out / "rows/stage1/checkpoints/best.ckpt"  # killed after its first validation, before last.ckpt
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"an unfinished attempt")
    again = _plan_row(preset, row, out, {}, {})
    (kind, command), = again.commands
    assert kind == "fit" and command[-2:] == ["--overwrite", "true"]
    assert config_hash(row_config(preset, row, out), out) == (out / "rows/stage1/config.hash").read_text().strip()
    code, _, err = run_cli(command[3:], capsys)  # what the row's subprocess runs: `python -m scoresep fit ...`
    assert code == 0, err[-3000:]
    assert _step(leftover) == 1
