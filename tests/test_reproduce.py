"""``scoresep reproduce``: rows hand checkpoints on, finished rows are not retrained, failures are contained;
``scoresep evaluate`` scores whole tracks."""

import hashlib
import json
import sys
import time

import pytest
import torch
import yaml

from scoresep.cli import main
from scoresep.configs import deep_merge
from scoresep.data.cache import load_index
from scoresep.data.dataset import CachedTrack
from scoresep.evaluation.whole_tracks import evaluate_checkpoint
from scoresep.metrics import si_sdr
from scoresep.reproduce import (
    ReproduceError,
    config_hash,
    lightning_config,
    load_preset,
    native_bf16,
    order_rows,
    recorded_seed,
    reproduce,
    resolve_precision,
    row_config,
)
from tests.helpers import TINY_FRAME, TINY_T, train_tiny_stages

TINY_TRAINER = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False}


def _preset(tmp_path, minislakh, extra_rows=None) -> str:
    data = {"root": str(minislakh), "cache_dir": str(tmp_path / "cache"), "batch_size": 2, "segment_seconds": 1.0,
            "eval_crops_per_track": 1}
    rows = {
        "stage1": {"config": "experiments/stage1.yaml",
                   "overrides": {"trainer": TINY_TRAINER, "model": {"init_args": {"model": TINY_T}}}},
        "stage2": {"config": "experiments/stage2.yaml", "checkpoints": {"transcriptor_checkpoint": "stage1"},
                   "overrides": {"trainer": TINY_TRAINER,
                                 "model": {"init_args": {"model": TINY_FRAME, "log_media": False}}}},
        **(extra_rows or {}),
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"data": data, "parallel": 2, "evaluate": {"split": "test"}, "rows": rows}))
    return str(path)


def test_preset_rows_are_checked_and_ordered(tmp_path, minislakh):
    preset = load_preset("mini")
    order = order_rows(preset.rows)
    for row in preset.rows.values():
        assert all(order.index(needed) < order.index(row.name) for needed in row.checkpoints.values())
    assert {"stage1", "supervised", "baseline", "stage2_cmix", "stage2_hmix", "stage2", "stage3_noadv", "stage3",
            "stage3_atl"} <= set(preset.rows)
    config = row_config(preset, preset.rows["stage3"], tmp_path)
    assert config["model"]["init_args"]["separator_checkpoint"] == str(tmp_path / "rows/stage2/checkpoints/best.ckpt")
    assert all(c["init_args"]["dirpath"] == str(tmp_path / "rows/stage3/checkpoints")
               for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rows": {"a": {"config": "experiments/stage2.yaml",
                                                  "checkpoints": {"transcriptor_checkpoint": "nope"}}}}))
    with pytest.raises(ReproduceError, match="bad.yaml: row a takes transcriptor_checkpoint from row 'nope'"):
        load_preset(str(bad))
    bad.write_text(yaml.safe_dump({"rows": {"a": {"config": "experiments/stage2.yaml", "epochs": 3}}}))
    with pytest.raises(ReproduceError, match=r"row a: unknown key\(s\) \['epochs'\]"):
        load_preset(str(bad))


def test_preset_precision_reaches_every_row_and_auto_follows_the_hardware(tmp_path, monkeypatch):
    # With native bf16: the rows trained through a critic keep their own 32-true, every other row inherits bf16.
    monkeypatch.setattr("scoresep.reproduce.hardware.native_bf16", lambda: "cpu")
    preset = load_preset("mini")
    assert preset.precision == "bf16-mixed"
    trained = {name: row for name, row in preset.rows.items() if row.reference is None}  # not the reference row
    for name, row in trained.items():
        through_a_critic = "transcriptor_checkpoint" in row.checkpoints
        assert row_config(preset, row, tmp_path)["trainer"]["precision"] == (
            "32-true" if through_a_critic else "bf16-mixed"), name
    # Without it (bf16 would be emulated, slower than fp32): every row in fp32.
    monkeypatch.setattr("scoresep.reproduce.hardware.native_bf16", lambda: None)
    preset = load_preset("mini")
    assert {row_config(preset, row, tmp_path)["trainer"]["precision"] for row in preset.rows.values()
            if row.reference is None} == {"32-true"}
    assert resolve_precision("16-mixed") == "16-mixed"
    bad = tmp_path / "bad.yaml"
    for value in ("bf16", "bf16-true"):
        bad.write_text(yaml.safe_dump({"precision": value, "rows": {"a": {"config": "experiments/stage2.yaml"}}}))
        with pytest.raises(ReproduceError, match=rf"bad.yaml: precision '{value}' is not one of"):
            load_preset(str(bad))
    bad.write_text(yaml.safe_dump({"rows": {"a": {"config": "experiments/stage2.yaml"}}}))
    assert "precision" not in row_config(load_preset(str(bad)), load_preset(str(bad)).rows["a"], tmp_path)["trainer"]


@pytest.mark.parametrize("flags, expected", [({"avx512_bf16", "avx512f"}, "cpu"), ({"amx_bf16"}, "cpu"),
                                             ({"bf16", "asimd"}, "cpu"),
                                             ({"avx512f", "avx512bw", "avx512vl", "avx512dq"}, None), (set(), None)])
def test_native_bf16_needs_bf16_instructions_not_just_avx512(flags, expected, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("scoresep.reproduce.hardware.cpu_flags", lambda: flags)
    assert native_bf16() == expected


def test_reproduce_runs_rows_in_order_resumes_and_contains_failures(tmp_path, minislakh, capsys):
    broken = {"broken": {"config": "experiments/supervised.yaml",
                         "overrides": {"trainer": TINY_TRAINER, "model": {"init_args": {"no_such_option": 1}}}},
              "after_broken": {"config": "experiments/stage2.yaml", "overrides": {"trainer": TINY_TRAINER},
                               "checkpoints": {"transcriptor_checkpoint": "broken"}}}
    out = tmp_path / "results"
    with pytest.raises(ReproduceError, match="rows not done: broken, after_broken"):
        reproduce(_preset(tmp_path, minislakh, broken), out)
    summary = json.loads((out / "reproduce.json").read_text())
    assert summary["rows"]["stage1"]["status"] == "done" and summary["rows"]["stage2"]["status"] == "done"
    assert summary["seed"] == 0 and summary["rows"]["stage2"]["beyond_paper"] is False
    assert summary["rows"]["broken"]["status"] == "failed" and summary["rows"]["after_broken"]["status"] == "skipped"
    assert "no_such_option" in (out / "rows/broken/run.log").read_text()
    stage2 = torch.load(out / "rows/stage2/checkpoints/best.ckpt", weights_only=True)
    assert stage2["hyper_parameters"]["transcriptor_checkpoint"] == str(out / "rows/stage1/checkpoints/best.ckpt")
    evaluation = json.loads((out / "evaluations/stage2.json").read_text())
    assert evaluation["summary"]["separation"]["bass"]["tracks"] >= 1
    assert (out / "report.md").is_file() and (out / "si_sdr.png").is_file()

    # Run again with only the good rows: nothing is retrained, nothing re-evaluated.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")} | {
        p: p.stat().st_mtime_ns for p in (out / "evaluations").iterdir()}
    capsys.readouterr()
    reproduce(_preset(tmp_path, minislakh), out)
    assert "stage1: already done" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # A moved results folder still resumes: nothing depends on where it lives.
    moved = tmp_path / "moved"
    out.rename(moved)
    capsys.readouterr()
    reproduce(_preset(tmp_path, minislakh), moved)
    assert "stage2: already done" in capsys.readouterr().out
    moved.rename(out)

    # A changed configuration is never mixed with the results of the old one.
    changed = yaml.safe_load(open(_preset(tmp_path, minislakh)))
    changed["rows"]["stage1"]["overrides"]["trainer"]["limit_train_batches"] = 3
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    with pytest.raises(ReproduceError, match="rows/stage1: trained with another configuration"):
        reproduce(str(tmp_path / "changed.yaml"), out)

    # A row trained from an input that has been retrained since is refused too (its checkpoint is stale).
    done = out / "rows/stage1/done.json"
    record = json.loads(done.read_text())
    done.write_text(json.dumps({**record, "finished": "2030-01-01T00:00:00"}))
    with pytest.raises(ReproduceError, match="rows/stage2: trained from an earlier stage1"):
        reproduce(_preset(tmp_path, minislakh), out)


def test_an_interrupted_row_resumes_from_its_last_checkpoint(tmp_path, minislakh):
    from scoresep.reproduce import _plan_row

    preset = load_preset(_preset(tmp_path, minislakh))
    out = tmp_path / "results"
    (out / "rows/stage1/checkpoints").mkdir(parents=True)
    (out / "rows/stage1/checkpoints/last.ckpt").write_bytes(b"x")
    job = _plan_row(preset, preset.rows["stage1"], out, {"seconds": 120.0}, {})
    kinds = [kind for kind, _ in job.commands]
    assert kinds == ["fit", "evaluate"]
    assert job.commands[0][1][-2:] == ["--ckpt_path", str(out / "rows/stage1/checkpoints/last.ckpt")]
    assert job.previous_seconds == 120.0  # resumed: the interrupted run's minutes are part of the row's time
    # a row retrained from scratch (its folder deleted, as the refusal message says) does not count them
    fresh = _plan_row(preset, preset.rows["stage2"], out, {"seconds": 360.0}, {})
    assert fresh.previous_seconds == 0.0 and [kind for kind, _ in fresh.commands] == ["fit", "evaluate"]
    # the preset changed while the row was unfinished: its last.ckpt belongs to the old configuration
    (out / "rows/stage1/config.hash").write_text("0123456789abcdef")
    with pytest.raises(ReproduceError, match="rows/stage1: its last.ckpt comes from another configuration"):
        _plan_row(preset, preset.rows["stage1"], out, {}, {})


def test_summary_skips_tracks_without_separation_scores():
    from scoresep.evaluation.whole_tracks import summarise

    scored = {"track": "a", "separation": {"bass": {"si_sdr": 2.0, "input_si_sdr": -1.0, "si_sdri": 3.0}}}
    summary = summarise([scored, {"track": "b"}], ("bass",))  # b: a score-only track under mixture: full
    assert summary["separation"]["bass"] == {"si_sdr": 2.0, "input_si_sdr": -1.0, "si_sdri": 3.0, "tracks": 1}


def test_evaluate_scores_whole_tracks(tmp_path, minislakh, capsys):
    train_tiny_stages(minislakh, tmp_path, steps=2)
    result = evaluate_checkpoint(tmp_path / "stage2.ckpt", minislakh, "test", tmp_path / "cache", progress=False)
    assert result["reads_score"] is False  # a checkpoint hears only the audio
    folder = next((tmp_path / "cache").iterdir())
    records = [r for r in load_index(folder)["tracks"] if r["split"] == "test"]
    assert [t["track"] for t in result["tracks"]] == [r["track"] for r in records]
    track = CachedTrack(folder / "tracks" / records[0]["track"], records[0], 88)
    sources = torch.from_numpy(track.sources(0, track.n_samples)).double()
    expected = si_sdr(sources.sum(0).expand_as(sources), sources)  # the input mixture's SI-SDR, by hand
    for index, name in enumerate(("bass", "guitar", "piano")):
        got = result["tracks"][0]["separation"][name]["input_si_sdr"]
        assert (got is None and torch.isnan(expected[index])) or got == pytest.approx(float(expected[index]), abs=1e-4)
    assert "transcription" not in result["summary"]  # a stage-2 checkpoint is scored on separation only

    code = 0
    try:
        main(["evaluate", "--ckpt", str(tmp_path / "stage1.ckpt"), "--data", str(minislakh), "--cache",
              str(tmp_path / "cache"), "--out", str(tmp_path / "stage1.json"), "--quiet"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0
    stage1 = json.loads((tmp_path / "stage1.json").read_text())
    assert "separation" not in stage1["summary"]
    mix, iso = stage1["summary"]["transcription"]["mix"], stage1["summary"]["transcription"]["iso"]
    totals = [sum(t["transcription"]["mix"]["piano"][k] for t in stage1["tracks"]) for k in range(3)]
    tp, fp, fn = totals
    assert mix["piano"]["accuracy"] == pytest.approx(tp / (tp + fp + fn)) and "bass" in iso
    assert "note accuracy on mixture" in capsys.readouterr().out


@pytest.mark.parametrize("preset_name", ["mini", "paper"])
def test_every_row_config_of_the_presets_parses_with_the_cli(preset_name, tmp_path, capsys, monkeypatch):
    """A typo in a preset's overrides must fail here, not hours into a reproduction."""
    monkeypatch.setattr(sys, "argv", ["scoresep"])
    preset = load_preset(preset_name)
    for row in preset.rows.values():
        path = tmp_path / f"{row.name}.yaml"
        path.write_text(yaml.safe_dump(lightning_config(row_config(preset, row, tmp_path / "results"))))
        with pytest.raises(SystemExit) as exit_:
            main(["fit", "--config", str(path), "--print_config"])
        assert exit_.value.code in (0, None), f"{preset_name}/{row.name}: {capsys.readouterr().err[-2000:]}"
        printed = yaml.safe_load(capsys.readouterr().out)
        for argument, needed in row.checkpoints.items():
            assert printed["model"]["init_args"][argument].endswith(f"rows/{needed}/checkpoints/best.ckpt")


def test_every_separator_row_of_both_presets_names_a_buildable_network(tmp_path):
    """A row override that switches the network's class replaces its init_args (the paper preset's U-Net over the
    YAMLs' frame separator); merging them key by key would hand the U-Net the frame separator's fields."""
    from scoresep.models import separator_spec

    for name in ("mini", "paper"):
        preset = load_preset(name)
        for row in preset.rows.values():
            if row.reference is not None:  # nothing to train, no network
                continue
            init = row_config(preset, row, tmp_path)["model"]["init_args"]
            if "critic" in init or "supervised" in init:  # a SeparatorStage row
                spec = separator_spec(init["model"])
                expected = ("UNetSeparator" if name == "paper" else
                            "ScoreInformedSeparator" if row.name.endswith("score_informed") else "FrameSeparator")
                assert spec["class_path"] == f"scoresep.models.{expected}", (name, row.name, spec)
    merged = deep_merge({"model": {"class_path": "a.B", "init_args": {"x": 1}}},
                        {"model": {"class_path": "a.C", "init_args": {"y": 2}}})
    assert merged == {"model": {"class_path": "a.C", "init_args": {"y": 2}}}
    assert deep_merge({"model": {"class_path": "a.B", "init_args": {"x": 1}}},
                      {"model": {"init_args": {"y": 2}}}) == {"model": {"class_path": "a.B", "init_args": {"x": 1,
                                                                                                          "y": 2}}}


def test_the_score_mask_reference_row_only_evaluates(tmp_path):
    """The reference row of Table 1 trains nothing: one `scoresep evaluate --score-masks` on the preset's data."""
    from scoresep.reproduce import _plan_row

    preset = load_preset("mini")
    row = preset.rows["score_masks"]
    assert row.reference == "score_masks" and row.config is None and not row.checkpoints
    preset.data = {**preset.data, "root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}
    job = _plan_row(preset, row, tmp_path, {}, {})
    assert [kind for kind, _ in job.commands] == ["evaluate"]
    command = job.commands[0][1]
    assert "--score-masks" in command and "--ckpt" not in command
    assert command[command.index("--out") + 1] == str(tmp_path / "evaluations" / "score_masks.json")
    assert command[command.index("--chunk-seconds") + 1] == str(preset.evaluate["chunk_seconds"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rows": {"a": {"reference": "oracle"}}}))
    with pytest.raises(ReproduceError, match="row a: reference 'oracle' is not one of"):
        load_preset(str(bad))
    bad.write_text(yaml.safe_dump({"rows": {"a": {"reference": "score_masks", "config": "experiments/stage2.yaml"}}}))
    with pytest.raises(ReproduceError, match=r"row a is a reference \(nothing to train\); it takes no \['config'\]"):
        load_preset(str(bad))


def test_the_reference_row_is_evaluated_again_when_its_data_changes(tmp_path):
    from scoresep.reproduce import _plan_row

    preset = load_preset("mini")
    preset.data = {**preset.data, "root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}
    row = preset.rows["score_masks"]
    evaluation = tmp_path / "evaluations" / "score_masks.json"
    assert _plan_row(preset, row, tmp_path, {}, {}).commands
    evaluation.parent.mkdir()
    evaluation.write_text("{}")  # as if the evaluation had run
    kept = _plan_row(preset, row, tmp_path, {"seconds": 14.0}, {})
    assert not kept.commands and kept.previous_seconds == 14.0
    preset.data = {**preset.data, "root": str(tmp_path / "other")}
    again = _plan_row(preset, row, tmp_path, {"seconds": 14.0}, {})
    assert again.commands and not evaluation.exists() and again.previous_seconds == 0.0


# ----------------------------------------------------------------------------------------------- seeds

PINNED_EXPERIMENT = """seed_everything: 0
trainer:
  max_epochs: 1
  callbacks:
  - class_path: pytorch_lightning.callbacks.ModelCheckpoint
    init_args: {monitor: val/loss, mode: min}
model:
  class_path: scoresep.stages.AdversarialStage
  init_args: {aml: true, seed: 0}
"""
# What row_config composed for PINNED_EXPERIMENT before --seed existed (commit c5c186d): config_hash (what done.json
# compares) and a digest of the unsorted JSON (key order: what config.yaml is written in). If these change,
# every trained row of every existing results folder is refused as "trained with another configuration".
PINNED_DIGESTS = {"first": ("1332ebb598295456", "366220f256edbaa6"),
                  "second": ("d252bc72af239e4e", "28dcb5cf16dc32eb")}


def _pinned_preset(tmp_path, extra: dict | None = None) -> tuple[str, object]:
    """A preset of two rows of PINNED_EXPERIMENT whose data lives under the results folder (so that no path of
    this machine enters the hash); returns its path and the results folder."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(PINNED_EXPERIMENT)
    out = tmp_path / "results"
    path = tmp_path / "pinned.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"root": str(out / "data"), "cache_dir": str(out / "cache"), "train_crops_per_track": 2},
        "overrides": {"trainer": {"num_sanity_val_steps": 0}},
        "rows": {"first": {"config": str(experiment)},
                 "second": {"config": str(experiment), "checkpoints": {"separator_checkpoint": "first"},
                            "overrides": {"trainer": {"max_epochs": 2}}}},
        **(extra or {})}))
    return str(path), out


def _digests(config: dict, out) -> tuple[str, str]:
    ordered = json.dumps(config).replace(str(out.resolve()), "<out>")
    return config_hash(config, out), hashlib.sha256(ordered.encode()).hexdigest()[:16]


def test_seed_zero_composes_the_configs_of_runs_from_before_seeds(tmp_path):
    path, out = _pinned_preset(tmp_path)
    preset = load_preset(path)
    assert preset.seed == 0
    assert {name: _digests(row_config(preset, row, out), out) for name, row in preset.rows.items()} == PINNED_DIGESTS
    # The presets' experiment YAMLs all say 0 already: seed 0 sets what is there.
    mini = load_preset("mini")
    for row in mini.rows.values():
        if row.reference is None:
            config = row_config(mini, row, tmp_path)
            assert (config["seed_everything"], config["data"]["seed"]) == (0, 0), row.name


def test_feature_settings_are_hashed_flat_as_results_folders_were(tmp_path):
    """A row's hash reads the feature settings flat (``data.sample_rate``, ...), as every results folder's was
    computed before they became one ``data.features``; a preset may write either form. The row's config.yaml
    holds them as LightningCLI reads them, where ``instruments`` stood."""
    preset = load_preset("mini")
    row = preset.rows["stage1"]
    base, data = row_config(preset, row, tmp_path), preset.data
    configs = []
    for written in ({"sample_rate": 22_050}, {"features": {"sample_rate": 22_050}}):
        preset.data = {**data, **written}
        configs.append(row_config(preset, row, tmp_path))
    flat, nested = configs
    assert flat == nested and "features" not in flat["data"] and flat["data"]["sample_rate"] == 22_050
    assert list(flat["data"]) == list(base["data"])  # each setting where it always stood
    assert config_hash(flat, tmp_path) == config_hash(nested, tmp_path) != config_hash(base, tmp_path)
    cli = lightning_config(flat)["data"]
    assert list(cli).index("features") == list(flat["data"]).index("instruments")
    assert cli["features"]["sample_rate"] == 22_050 and "sample_rate" not in cli


def test_another_seed_sets_every_training_seed_but_not_the_datasets(tmp_path, monkeypatch):
    path, out = _pinned_preset(tmp_path, {"synth": {"tracks": 4, "seconds": 2, "seed": 5}})
    preset = load_preset(path)
    preset.seed = 3
    config = row_config(preset, preset.rows["first"], out)
    assert (config["seed_everything"], config["data"]["seed"], config["model"]["init_args"]["seed"]) == (3, 3, 3)
    assert _digests(config, out)[0] != PINNED_DIGESTS["first"][0]
    mini = load_preset("mini")
    mini.seed = 3
    assert "seed" not in row_config(mini, mini.rows["supervised"], tmp_path)["model"]["init_args"]  # none added
    # The dataset is rendered with the preset's synth seed whatever the training seed: the same test tracks.
    commands = []

    def fake_run(command, log, what):
        commands.append(command)
        raise ReproduceError("stop here")

    monkeypatch.setattr("scoresep.reproduce.jobs._run", fake_run)
    with pytest.raises(ReproduceError, match="stop here"):
        reproduce(path, out, seed=3)
    synth = commands[0]
    assert synth[3] == "synth" and synth[synth.index("--seed") + 1] == "5"


def test_a_results_folder_holds_one_seed(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "reproduce.json").write_text(json.dumps({"preset": "mini", "seed": 1, "rows": {}}))
    assert recorded_seed(out / "reproduce.json") == 1
    with pytest.raises(ReproduceError, match=rf"{out}: holds the results of --seed 1, not 0; give --seed 1 to "
                                             rf"continue it, or another --out for seed 0 \(e.g. --out {out}/seed0\)"):
        reproduce("mini", out)
    # A run from before --seed trained with the YAMLs' seed 0.
    (out / "reproduce.json").write_text(json.dumps({"preset": "mini", "rows": {}}))
    assert recorded_seed(out / "reproduce.json") == 0
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--seed", "1", "--out", str(out)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip().endswith(f"--seed 0 to continue it, or another --out for seed 1 (e.g. "
                                                    f"--out {out}/seed1)")
    second = out / "seed1"
    second.mkdir()
    (second / "reproduce.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(ReproduceError, match=rf"--out {out}/seed2\)"):
        reproduce("mini", second, seed=2)
    with pytest.raises(ReproduceError, match="--seed must be an integer >= 0, got -1"):
        reproduce("mini", tmp_path / "new", seed=-1)
    (second / "reproduce.json").write_text("{broken")
    with pytest.raises(ReproduceError, match="seed1/reproduce.json: unreadable JSON"):
        reproduce("mini", second, seed=1)
    assert not (tmp_path / "new").exists()


def test_the_summary_records_the_seed_and_the_rows_beyond_the_paper(tmp_path):
    from scoresep.reproduce import _write_summary

    path, _ = _pinned_preset(tmp_path)
    preset = load_preset(path)
    preset.seed = 4
    preset.rows["second"].beyond_paper = True
    summary_path = tmp_path / "reproduce.json"
    _write_summary(summary_path, preset, "2026-01-01T00:00:00", time.perf_counter(),
                   {"first": {"status": "done", "seconds": 1.0}},
                   {"second": {"status": "done", "seconds": 2.0}, "gone": {"status": "done", "seconds": 3.0}})
    summary = json.loads(summary_path.read_text())
    assert summary["seed"] == 4 and recorded_seed(summary_path) == 4
    assert summary["rows"] == {"second": {"status": "done", "seconds": 2.0, "beyond_paper": True},
                               "gone": {"status": "done", "seconds": 3.0},  # no longer in the preset: as it was
                               "first": {"status": "done", "seconds": 1.0, "beyond_paper": False}}


def test_beyond_paper_is_a_checked_row_key(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump({"rows": {"mine": {"config": "experiments/stage2.yaml", "beyond_paper": True},
                                             "stage2": {"config": "experiments/stage2.yaml"}}}))
    preset = load_preset(str(path))
    assert preset.rows["mine"].beyond_paper is True and preset.rows["stage2"].beyond_paper is False
    path.write_text(yaml.safe_dump({"rows": {"mine": {"config": "experiments/stage2.yaml", "beyond_paper": "yes"}}}))
    with pytest.raises(ReproduceError, match="preset.yaml: row mine: beyond_paper must be true or false, got 'yes'"):
        load_preset(str(path))
    path.write_text(yaml.safe_dump({"rows": {"stage2": {"config": "experiments/stage2.yaml", "beyond_paper": True}}}))
    with pytest.raises(ReproduceError, match="row stage2 is a row of the paper's tables; it cannot be beyond_paper"):
        load_preset(str(path))


def test_score_mask_evaluations_say_they_read_the_score(tmp_path, minislakh):
    from scoresep.evaluation.whole_tracks import evaluate_score_masks

    result = evaluate_score_masks(minislakh, "test", tmp_path / "cache", progress=False)
    assert result["reads_score"] is True
