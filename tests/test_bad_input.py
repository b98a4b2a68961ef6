"""Every bad input a user can give, in one table: the input, the command, the exit status, the last line the user
reads (a substring naming the file and the problem), and that the command created or changed nothing.

docs/data.md's "Bad input" section lists the same cases (``problem`` is the table row's first cell; a test checks that
the two lists agree). Each case runs the real command in-process (``scoresep.cli.main``) on a tiny mini-Slakh
that the project renders itself, damaged the way the case says.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import torch
import yaml

from scoresep.cli import main
from tests.helpers import last_line, run_cli, snapshot

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
BAD_INPUT_PAGE = ROOT / "docs" / "data.md"  # its "Bad input" table (moved there from README.md)
TINY_TRANSCRIPTOR = ["--model.init_args.model.channels=2", "--model.init_args.model.hidden=8"]
TINY_SEPARATOR = ['--model.init_args.model={"class_path": "scoresep.models.FrameSeparator", '
                  '"init_args": {"hidden": 8, "blocks": 1}}']


@dataclass
class Env:
    """What the cases build on: a pristine tiny dataset, tiny checkpoints of each stage, and the case's own
    working folder (the command's current directory, so the YAMLs' ``checkpoints/`` and ``lightning_logs/``
    land there)."""

    data: Path
    checkpoints: dict[str, Path]
    work: Path
    values: dict[str, str] = field(default_factory=dict)

    def dataset(self) -> Path:
        """A private copy of the dataset to damage."""
        target = self.work / "data"
        if not target.exists():
            shutil.copytree(self.data, target)
        return target

    def track(self, split: str = "train") -> Path:
        track = sorted((self.dataset() / split).glob("Track*"))[0]
        self.values["track"] = str(track)
        return track

    def stem(self, track: Path, inst_class: str) -> str:
        stems = yaml.safe_load((track / "metadata.yaml").read_text())["stems"]
        return next(stem_id for stem_id, stem in stems.items() if stem["inst_class"] == inst_class)

    def file(self, name: str, content: bytes) -> Path:
        """``work/<name>`` (``_`` in ``name`` for a dot) holding ``content``; ``{name}`` in messages."""
        path = self.work / name.replace("_", ".")
        path.write_bytes(content)
        self.values[name] = str(path)
        return path


@dataclass
class Case:
    """One bad input. ``build`` makes it inside ``env.work`` and returns the command line; ``last_line`` are
    substrings of the last line the user reads (``{name}`` fields are filled from ``env.values``); ``check``
    asserts what else must hold (output files, result contents)."""

    problem: str
    build: Callable[[Env], list[str]]
    code: int
    last_line: tuple[str, ...]
    stream: str = "err"
    creates: bool = False  # the command is expected to write something (skips the nothing-changed check)
    check: Callable[[Env, str], None] | None = None
    absent: tuple[str, ...] = ()  # must not appear anywhere in the output

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.problem.lower()).strip("-")[:60]


# ---------------------------------------------------------------------------------------------------- builders

def _prepare(env: Env, *extra: str) -> list[str]:
    return ["prepare", "--root", str(env.dataset()), "--cache", str(env.work / "cache"), "--workers", "1", *extra]


def _strict(damage: Callable[[Env], None]) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        damage(env)
        return _prepare(env, "--strict")
    return build


def _missing_metadata(env: Env) -> None:
    (env.track() / "metadata.yaml").unlink()


def _unparsable_metadata(env: Env) -> None:
    (env.track() / "metadata.yaml").write_text("stems: [unclosed")


def _corrupt_flac(env: Env) -> None:
    (env.track() / "mix.flac").write_bytes(b"fLaC" + bytes(200))


def _truncated_flac(env: Env) -> None:
    flac = env.track() / "mix.flac"
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])


def _truncated_wav_file(path: Path, samples: int = 32_000) -> Path:
    soundfile.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, samples).astype(np.float32), 16_000,
                    subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20_000])  # 10000 samples short of what the header declares
    return path


def _truncated_wav_mix(env: Env) -> None:
    track = env.track()
    (track / "mix.flac").unlink()
    _truncated_wav_file(track / "mix.wav")


def _unparsable_midi(env: Env) -> None:
    track = env.track()
    (track / "MIDI" / f"{env.stem(track, 'Piano')}.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")


def _missing_midi(env: Env) -> None:
    track = env.track()
    (track / "MIDI" / f"{env.stem(track, 'Piano')}.mid").unlink()


def _empty_midi(env: Env) -> None:
    import pretty_midi

    track = env.track()
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(program=0))
    midi.write(str(track / "MIDI" / f"{env.stem(track, 'Piano')}.mid"))


def _missing_stem_audio(env: Env) -> list[str]:
    track = env.track()
    stem = env.stem(track, "Piano")
    (track / "stems" / f"{stem}.flac").unlink()
    env.values["stem"] = f"{stem}.flac"
    return _prepare(env)


def _non_strict_corrupt(env: Env) -> list[str]:
    _corrupt_flac(env)
    return _prepare(env)


def _short_track(env: Env) -> list[str]:
    track = env.track()
    for audio in [track / "mix.flac", *sorted((track / "stems").glob("*.flac"))]:
        waveform, rate = soundfile.read(audio, dtype="float32")
        soundfile.write(audio, waveform[: rate // 2], rate)  # 0.5 s: shorter than a crop
    return _prepare(env)


def _cache_index(env: Env) -> dict:
    (cache,) = [p for p in (env.work / "cache").iterdir() if p.is_dir()]
    return json.loads((cache / "index.json").read_text())


def _check_skipped(env: Env, output: str) -> None:
    tracks = {record["track"] for record in _cache_index(env)["tracks"]}
    assert Path(env.values["track"]).name not in tracks


def _check_kept_without_stem(env: Env, output: str) -> None:
    record = next(r for r in _cache_index(env)["tracks"] if r["track"] == Path(env.values["track"]).name)
    assert record, "the track stays in the index"


def _check_short_track_kept(env: Env, output: str) -> None:
    record = next(r for r in _cache_index(env)["tracks"] if r["track"] == Path(env.values["track"]).name)
    assert record["n_samples"] == 8_000


def _other_settings_cache(env: Env) -> list[str]:
    assert main(_prepare(env)) is None
    (first,) = [p for p in (env.work / "cache").iterdir() if p.is_dir()]
    env.values["first"] = str(first)
    env.values["first_index"] = (first / "index.json").read_text()
    return _prepare(env, "--sample-rate", "8000")


def _check_new_cache_beside(env: Env, output: str) -> None:
    folders = sorted(p.name for p in (env.work / "cache").iterdir() if p.is_dir())
    assert len(folders) == 2 and any("8000hz" in name for name in folders)
    assert (Path(env.values["first"]) / "index.json").read_text() == env.values["first_index"]


# training (LightningCLI)

def _fit(env: Env, config: str, *extra: str, command: str = "fit") -> list[str]:
    # stage 3 rebuilds both networks from its input checkpoints: it has no size of its own
    tiny = (TINY_TRANSCRIPTOR if config.startswith(("stage1", "baseline_classifier")) else
            [] if config.startswith("stage3") else TINY_SEPARATOR)
    return [command, "--config", str(EXPERIMENTS / config), "--data.root", str(env.data), "--data.cache_dir",
            str(env.work / "cache"), "--data.segment_seconds", "1.0", "--data.batch_size", "2",
            "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1",
            *tiny, *extra]


def _resume_stage1_from(name: str) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        _existing_last(env, "stage1")
        env.values["ckpt"] = str(env.checkpoints[name])
        return _fit(env, "stage1.yaml", "--ckpt_path", str(env.checkpoints[name]))
    return build


def _existing_last(env: Env, stage: str) -> None:
    """A last.ckpt of the YAML's own run, which a refused --ckpt_path must leave as it is."""
    folder = env.work / "checkpoints" / stage
    folder.mkdir(parents=True)
    shutil.copy(env.checkpoints["stage1" if stage == "stage1" else "stage2"], folder / "last.ckpt")


def _resume_stage2_from_stage1(env: Env) -> list[str]:
    _existing_last(env, "stage2")
    env.values["ckpt"] = str(env.checkpoints["stage1"])
    return _fit(env, "stage2.yaml", "--ckpt_path", str(env.checkpoints["stage1"]),
                f"--model.init_args.transcriptor_checkpoint={env.checkpoints['stage1']}")


def _truncated_checkpoint(env: Env) -> Path:
    data = env.checkpoints["stage1"].read_bytes()
    return env.file("truncated_ckpt", data[: len(data) // 2])


def _random_checkpoint(env: Env) -> Path:
    return env.file("random_ckpt", np.random.default_rng(1).bytes(5000))


def _resume_from_file(make: Callable[[Env], Path]) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        return _fit(env, "stage1.yaml", "--ckpt_path", str(make(env)))
    return build


def _resume_missing(env: Env) -> list[str]:
    env.values["missing"] = str(env.work / "missing.ckpt")
    return _fit(env, "stage1.yaml", "--ckpt_path", env.values["missing"])


def _test_other_features(env: Env) -> list[str]:
    env.values["ckpt"] = str(env.checkpoints["stage1"])
    return _fit(env, "stage1.yaml", "--data.features.n_fft", "512", "--ckpt_path", str(env.checkpoints["stage1"]),
                command="test")


def _critic(make: Callable[[Env], Path | str]) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        return _fit(env, "stage2.yaml", f"--model.init_args.transcriptor_checkpoint={make(env)}")
    return build


def _missing_path(env: Env) -> str:
    env.values["missing"] = str(env.work / "missing.ckpt")
    return env.values["missing"]


def _critic_other_features(env: Env) -> list[str]:
    env.values["ckpt"] = str(env.checkpoints["stage1"])
    return _fit(env, "stage2.yaml", "--data.features.n_fft", "512",
                f"--model.init_args.transcriptor_checkpoint={env.checkpoints['stage1']}")


def _separator_checkpoint(make: Callable[[Env], Path | str]) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        return _fit(env, "stage3.yaml", f"--model.init_args.separator_checkpoint={make(env)}",
                    f"--model.init_args.transcriptor_checkpoint={env.checkpoints['stage1']}")
    return build


def _unknown_instrument(env: Env) -> list[str]:
    return _fit(env, "stage2.yaml", "--data.features.instruments=[bass,kazoo]",
                f"--model.init_args.transcriptor_checkpoint={env.checkpoints['stage1']}")


def _ctrl_c(env: Env) -> list[str]:
    callback = {"class_path": "tests.helpers.SignalAt", "init_args": {"signum": 2, "at": 1}}
    return _fit(env, "stage1.yaml", "--trainer.logger=false", f"--trainer.callbacks+={json.dumps(callback)}")


def _check_ctrl_c_saved(env: Env, output: str) -> None:
    checkpoint = torch.load(env.work / "checkpoints" / "stage1" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2  # the batch under way when Ctrl-C came was finished, then saved


def _limit_batches(env: Env) -> list[str]:
    return ["fit", "--config", str(EXPERIMENTS / "stage1.yaml"), "--trainer.limit_val_batches=1",
            "--trainer.limit_train_batches=0.5", "--print_config"]


def _check_limits(env: Env, output: str) -> None:
    trainer = yaml.safe_load(output)["trainer"]
    assert trainer["limit_val_batches"] == 1 and isinstance(trainer["limit_val_batches"], int)  # one batch
    assert trainer["limit_train_batches"] == 0.5


def _no_validation_split(env: Env) -> list[str]:
    data = env.dataset()
    shutil.rmtree(data / "validation")
    earlier = env.work / "lightning_logs" / "stage1" / "version_0"  # a user's earlier run: kept
    earlier.mkdir(parents=True)
    (earlier / "metrics.csv").write_text("epoch,step\n0,10\n")
    return [*_fit(env, "stage1.yaml"), "--data.root", str(data)]


def _check_logs_taken_back(env: Env, output: str) -> None:
    logs = env.work / "lightning_logs" / "stage1"
    assert sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*")) == ["version_0", "version_0/metrics.csv"]


def _fixed_version_rerun(env: Env) -> list[str]:
    """A rerun of a finished run's fixed logger version (its logs are there) that fails at the same point."""
    data = env.dataset()
    shutil.rmtree(data / "validation")
    earlier = env.work / "lightning_logs" / "stage1" / "main"
    earlier.mkdir(parents=True)
    for name in ("config.yaml", "hparams.yaml", "notes.md"):
        (earlier / name).write_text(f"the finished run's {name}\n")
    return [*_fit(env, "stage1.yaml"), "--data.root", str(data), "--trainer.logger.init_args.version=main"]


def _check_earlier_logs_kept(env: Env, output: str) -> None:
    # config.yaml and hparams.yaml are this run's (reusing a version reuses its folder, Lightning's CSVLogger
    # replaces its metrics.csv too); the clean-up of a failed run leaves the folder and the user's files
    earlier = env.work / "lightning_logs" / "stage1" / "main"
    assert (earlier / "notes.md").read_text() == "the finished run's notes.md\n"
    assert {"config.yaml", "hparams.yaml", "notes.md"} <= {p.name for p in earlier.iterdir()}
    assert not (env.work / "checkpoints").exists()


# inference: scoresep separate / transcribe / evaluate

def _song(env: Env) -> Path:
    return sorted(env.data.glob("test/Track*/mix.flac"))[0]


def _separate(make: Callable[[Env], Path], *extra: str, command: str = "separate") -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        ckpt = env.checkpoints["stage2" if command == "separate" else "stage1"]
        out = "out" if command == "separate" else "out/song.mid"
        return [command, str(make(env)), "--ckpt", str(ckpt), "--out", out, *extra]
    return build


def _wav(name: str, samples: np.ndarray) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        path = env.work / name
        soundfile.write(path, samples, 16_000)
        env.values[name.replace(".", "_")] = str(path)
        return path
    return make


def _garbage_wav(env: Env) -> Path:
    return env.file("garbage_wav", b"RIFF not really a wave file" * 10)


def _truncated_flac_file(env: Env) -> Path:
    data = _song(env).read_bytes()
    return env.file("truncated_flac", data[: len(data) // 2])


def _truncated_wav_input(env: Env) -> Path:
    path = _truncated_wav_file(env.work / "truncated.wav")
    env.values["truncated_wav"] = str(path)
    return path


def _missing_input(env: Env) -> Path:
    env.values["missing_wav"] = str(env.work / "missing.wav")
    return env.work / "missing.wav"


def _separate_with(ckpt: str, out: str | None = None, device: str | None = None) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        if out == "a file":
            (env.work / "results.txt").write_text("a user's notes")
            env.values["out"] = "results.txt"  # named as the user gave it
        if out == "under a file":
            (env.work / "results.txt").write_text("a user's notes")
        target = {"a file": "results.txt", "under a file": "results.txt/out", None: "out"}[out]
        if device == "cuda" and torch.cuda.is_available():
            pytest.skip("a CUDA device is visible: --device cuda is valid here")
        env.values["ckpt"] = str(env.checkpoints[ckpt])
        return ["separate", str(_song(env)), "--ckpt", str(env.checkpoints[ckpt]), "--out", target, "--quiet",
                *(["--device", device] if device else [])]
    return build


def _evaluate(env: Env, data: Path, *extra: str) -> list[str]:
    return ["evaluate", "--ckpt", str(env.checkpoints["stage2"]), "--data", str(data), "--cache",
            str(env.work / "cache"), "--workers", "1", "--quiet", *extra]


def _evaluate_dropped_track(env: Env) -> list[str]:
    track = env.track("test")
    (track / "mix.flac").write_bytes(np.random.default_rng(2).bytes(3000))
    return _evaluate(env, env.dataset(), "--out", "eval.json")


def _check_dropped_listed(env: Env, output: str) -> None:
    result = json.loads((env.work / "eval.json").read_text())
    (skipped,) = result["skipped"]
    assert skipped["track"] == Path(env.values["track"]).name
    assert f"{env.values['track']}/mix.flac: cannot read audio header" in skipped["reason"]
    assert result["tracks"] == [] or all(t["track"] != skipped["track"] for t in result["tracks"])


def _evaluate_into_folder(env: Env) -> list[str]:
    (env.work / "eval.json").mkdir()
    env.values["out"] = "eval.json"  # named as the user gave it
    return _evaluate(env, env.data, "--out", "eval.json")



# never replace a user's file; a score that does not fit its recording; NaN audio; values refused at the door

def _stage(env: Env, name: str) -> str:
    env.values["ckpt"] = str(env.checkpoints[name])
    return str(env.checkpoints[name])


def _earlier_separation(env: Env) -> list[str]:
    song = _song(env)
    folder = env.work / "out" / song.stem
    folder.mkdir(parents=True)
    for name in ("bass", "guitar", "piano", "residual"):
        (folder / f"{name}.wav").write_bytes(b"a separation the user keeps")
    env.values["folder"] = f"out/{song.stem}"
    return ["separate", str(song), "--ckpt", _stage(env, "stage2"), "--out", "out", "--quiet"]


def _concurrent_separation(env: Env) -> list[str]:
    """Another run (this process stands for it: it is alive) holds the input's output folder."""
    import os
    import socket

    song = _song(env)
    (env.work / "out").mkdir()
    (env.work / "out" / f".{song.stem}.scoresep-lock").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    env.values["folder"] = f"out/{song.stem}"
    env.values["pid"] = str(os.getpid())
    return ["separate", str(song), "--ckpt", _stage(env, "stage2"), "--out", "out", "--quiet"]


def _transcribe_onto_score(env: Env) -> list[str]:
    (env.work / "song.mid").write_bytes(b"MThd the user's own score")
    return ["transcribe", str(_song(env)), "--ckpt", _stage(env, "stage1"), "--out", "song.mid"]


def _evaluate_onto_result(env: Env) -> list[str]:
    (env.work / "eval.json").write_text('{"an earlier": "result"}')
    return _evaluate(env, env.data, "--out", "eval.json")


def _score_of(env: Env, change: Callable[[pretty_midi.PrettyMIDI], pretty_midi.PrettyMIDI],
              track: Path | None = None) -> Path:
    """``work/score.mid``: the test song's score (or ``track``'s), changed by ``change``."""
    from scoresep.data.midi import load_midi

    source = track if track is not None else _song(env).parent
    path = env.work / "score.mid"
    change(load_midi(source / "all_src.mid")).write(str(path))
    env.values["score"] = str(path)
    return path


def _stretched(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    end = midi.get_end_time()
    midi.adjust_times(np.array([0.0, end]), np.array([0.0, 4 * end]))
    return midi


def _first_seconds(seconds: float) -> Callable[[pretty_midi.PrettyMIDI], pretty_midi.PrettyMIDI]:
    def cut(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
        short = pretty_midi.PrettyMIDI()
        for part in midi.instruments:
            kept = pretty_midi.Instrument(part.program, part.is_drum, part.name)
            kept.notes = [note for note in part.notes if note.end <= seconds]
            short.instruments.append(kept)
        return short
    return cut


def _out_of_range(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    for part in midi.instruments:
        for note in part.notes:
            note.pitch = 120  # above C8 (MIDI 108), the top of the rolls
    return midi


def _separate_score(change: Callable[[pretty_midi.PrettyMIDI], pretty_midi.PrettyMIDI], *extra: str,
                    other_song: bool = False) -> Callable[[Env], list[str]]:
    def build(env: Env) -> list[str]:
        track = sorted(env.data.glob("test/Track*"))[1] if other_song else None
        score = _score_of(env, change, track)
        return ["separate", str(_song(env)), "--score", str(score), "--out", "out", "--quiet", *extra]
    return build


def _nan_wav(env: Env) -> Path:
    samples = np.random.default_rng(3).uniform(-0.5, 0.5, 32_000).astype(np.float32)
    samples[8_000] = np.nan
    path = env.work / "nan.wav"
    soundfile.write(path, samples, 16_000, subtype="FLOAT")
    env.values["nan_wav"] = str(path)
    return path


def _pack(env: Env, audio: Path, score: Path, *extra: str) -> list[str]:
    (env.work / "recordings").mkdir(exist_ok=True)
    (env.work / "scores").mkdir(exist_ok=True)
    shutil.copy(audio, env.work / "recordings" / f"song{audio.suffix}")
    shutil.copy(score, env.work / "scores" / "song.mid")
    env.values["pack_score"] = str(env.work / "scores" / "song.mid")
    env.values["pack_audio"] = str(env.work / "recordings" / f"song{audio.suffix}")
    return ["pack", str(env.work / "recordings"), "--midi", str(env.work / "scores"), "--out", "dataset", "--quiet",
            *extra]


def _check_pack_skipped(reason: str) -> Callable[[Env, str], None]:
    def check(env: Env, output: str) -> None:
        index = json.loads((env.work / "dataset" / "pack.json").read_text())
        assert index["tracks"] == [] and len(index["skipped"]) == 1
        assert reason.format(**env.values) in f"{index['skipped'][0]['path']}: {index['skipped'][0]['reason']}"
        assert not any((env.work / "dataset" / split).exists() for split in ("train", "validation", "test"))
    return check


def _earlier_checkpoints(env: Env, *names: str) -> Path:
    folder = env.work / "checkpoints" / "stage1"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(env.checkpoints["stage1"], folder / name)
    return folder


def _fit_over_earlier_run(env: Env) -> list[str]:
    _earlier_checkpoints(env, "best.ckpt", "last.ckpt")
    return _fit(env, "stage1.yaml")


def _fit_without_validation(env: Env) -> list[str]:
    return [*_fit(env, "stage1.yaml"), "--trainer.limit_val_batches=0"]


def _check_no_best(env: Env, output: str) -> None:
    folder = env.work / "checkpoints" / "stage1"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]


def _stage2_after_unvalidated_stage1(env: Env) -> list[str]:
    _earlier_checkpoints(env, "last.ckpt")
    return _fit(env, "stage2.yaml")  # its YAML reads checkpoints/stage1/best.ckpt


def _misspelled_yaml_key(env: Env) -> list[str]:
    text = (EXPERIMENTS / "stage1.yaml").read_text().replace("pos_weight: 20.0", "pos_wieght: 20.0")
    (env.work / "my_stage1.yaml").write_text(text)
    return ["fit", "--config", str(env.work / "my_stage1.yaml"), "--data.root", str(env.data)]


def _empty_validation_split(env: Env) -> list[str]:
    data = env.dataset()
    shutil.rmtree(data / "validation")
    (data / "validation").mkdir()
    env.values["validation"] = str(data / "validation")
    return [*_fit(env, "stage1.yaml"), "--data.root", str(data)]


def _check_no_log_version_left(env: Env, output: str) -> None:
    assert not list((env.work / "lightning_logs").rglob("version_*")), "the failed run's log folder stays"


def _second_wandb_run(env: Env) -> list[str]:
    (env.work / "lightning_logs").mkdir()
    (env.work / "lightning_logs" / "config.yaml").write_text("an earlier run's config\n")
    return [*_fit(env, "stage2.yaml", f"--model.init_args.transcriptor_checkpoint={env.checkpoints['stage1']}"),
            "--trainer.limit_train_batches=1"]


def _check_config_in_its_own_folder(env: Env, output: str) -> None:
    assert (env.work / "lightning_logs" / "config.yaml").read_text() == "an earlier run's config\n"
    (saved,) = (env.work / "lightning_logs").glob("*/version_*/config.yaml")
    assert "SeparatorStage" in saved.read_text()


def _synth_into_dataset(env: Env) -> list[str]:
    data = env.dataset()
    env.values["data"] = str(data)
    return ["synth", "--out", str(data), "--tracks", "2", "--seconds", "1", "--workers", "1"]


def _concurrent_pack(env: Env) -> list[str]:
    import os
    import socket

    (env.work / ".dataset.scoresep-lock").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    env.values["pid"] = str(os.getpid())
    return _pack(env, _song(env), _song(env).parent / "all_src.mid")


def _pack_out_of_range(env: Env) -> list[str]:
    return _pack(env, _song(env), _score_of(env, _out_of_range))


def _pack_nan(env: Env) -> list[str]:
    _nan_wav(env)
    return _pack(env, env.work / "nan.wav", _score_of(env, _first_seconds(2.0)), "--length-tolerance", "0.5")


def _pack_short_score_aligned(env: Env) -> list[str]:
    return _pack(env, _song(env), _score_of(env, _first_seconds(1.5)), "--align", "--min-quality", "0.3")


def _no_active_instrument(env: Env) -> None:
    import pretty_midi as midi_module

    for midi_file in (env.track() / "MIDI").glob("*.mid"):
        midi = midi_module.PrettyMIDI(str(midi_file))
        midi.write(str(midi_file)) if not midi.instruments else _out_of_range(midi).write(str(midi_file))


def _nan_mix(env: Env) -> None:
    track = env.track()
    samples, rate = soundfile.read(track / "mix.flac", dtype="float32")
    samples[rate] = np.inf
    (track / "mix.flac").unlink()
    soundfile.write(track / "mix.wav", samples, rate, subtype="FLOAT")


def _evaluate_without_stems(env: Env) -> list[str]:
    data = env.dataset()
    for stems in (data / "test").glob("Track*/stems"):
        shutil.rmtree(stems)
    env.values["data"] = str(data)
    return _evaluate(env, data, "--mixture", "full", "--out", "eval.json")


def _evaluate_without_out(env: Env) -> list[str]:
    return ["evaluate", "--ckpt", str(env.checkpoints["stage2"]), "--data", str(env.data)]

CASES = [
    # data: scoresep prepare (and every command that reads a dataset; --strict stops at the first problem)
    Case("missing `metadata.yaml`", _strict(_missing_metadata), 1,
         ("{track}/metadata.yaml: metadata.yaml is missing", "stopped (--strict)")),
    Case("unparsable `metadata.yaml`", _strict(_unparsable_metadata), 1,
         ("{track}/metadata.yaml: cannot parse metadata.yaml", "stopped (--strict)")),
    Case("corrupt FLAC", _strict(_corrupt_flac), 1,
         ("{track}/mix.flac: cannot read audio header", "stopped (--strict)")),
    Case("truncated FLAC", _strict(_truncated_flac), 1, ("{track}/mix.flac: cannot decode audio",)),
    Case("truncated WAV (the header declares more samples than the file holds)", _strict(_truncated_wav_mix), 1,
         ("{track}/mix.wav: truncated audio: header declares 32000 samples, file holds 22000",)),
    Case("MIDI file that does not parse", _strict(_unparsable_midi), 1, ("{track}/MIDI/", ": cannot parse MIDI")),
    Case("stem with audio but no MIDI", _strict(_missing_midi), 1,
         ("{track}/MIDI/", "has audio but its MIDI file is missing: the score would be incomplete",
          "stopped (--strict)")),
    Case("stem with audio whose MIDI holds no notes", _strict(_empty_midi), 1,
         ("{track}/MIDI/", "MIDI holds no notes but its stem", "is not silent", "stopped (--strict)")),
    Case("any of these without `--strict`", _non_strict_corrupt, 0, ("cache ready:",), stream="out", creates=True,
         check=_check_skipped),
    Case("stem listed as rendered but missing on disk", _missing_stem_audio, 0, ("cache ready:",), stream="out",
         creates=True, check=_check_kept_without_stem),
    Case("track shorter than a crop", _short_track, 0, ("cache ready:",), stream="out", creates=True,
         check=_check_short_track_kept),
    Case("no track has any requested instrument",
         lambda env: _prepare(env, "--instruments", "organ"), 1,
         ("no track contains any of the requested instruments ['organ']",)),
    Case("unknown instrument", lambda env: _prepare(env, "--instruments", "kazoo"), 1, ("unknown ['kazoo']",)),
    Case("cache built with another sample rate / hop / instruments", _other_settings_cache, 0, ("cache ready:",),
         stream="out", creates=True, check=_check_new_cache_beside),
    # training: scoresep fit / test
    Case("`fit --ckpt_path` of another stage", _resume_stage1_from("stage2"), 1,
         ("{ckpt}: a separator checkpoint", "stage1.yaml trains scoresep.stages.TranscriptorStage")),
    Case("`fit --ckpt_path` of another stage, the other way", _resume_stage2_from_stage1, 1,
         ("{ckpt}: a transcriptor checkpoint", "stage2.yaml trains scoresep.stages.SeparatorStage")),
    Case("`fit --ckpt_path` of another row of the same stage", _resume_stage1_from("classifier"), 1,
         ("{ckpt}: a checkpoint of another transcriptor run: label='activity' (checkpoint) vs label='notes'",)),
    Case("`fit --ckpt_path` truncated", _resume_from_file(_truncated_checkpoint), 1,
         ("{truncated_ckpt}: cannot read checkpoint (truncated or corrupted",)),
    Case("`fit --ckpt_path` of random bytes", _resume_from_file(_random_checkpoint), 1,
         ("{random_ckpt}: cannot read checkpoint (not a PyTorch checkpoint",), absent=("weights_only",)),
    Case("`fit --ckpt_path` missing", _resume_missing, 1, ("{missing}: checkpoint file not found",)),
    Case("`test --ckpt_path` with other feature settings", _test_other_features, 1,
         ("{ckpt}: trained with other feature settings: n_fft=512",)),
    Case("`transcriptor_checkpoint` missing", _critic(_missing_path), 1, ("{missing}: checkpoint file not found",)),
    Case("`transcriptor_checkpoint` truncated", _critic(_truncated_checkpoint), 1,
         ("{truncated_ckpt}: cannot read checkpoint (truncated or corrupted",)),
    Case("`transcriptor_checkpoint` of random bytes", _critic(_random_checkpoint), 1,
         ("{random_ckpt}: cannot read checkpoint (not a PyTorch checkpoint",), absent=("weights_only", "Union")),
    Case("`transcriptor_checkpoint` with other feature settings", _critic_other_features, 1,
         ("{ckpt}: trained with other feature settings: n_fft=512",)),
    Case("`separator_checkpoint` missing", _separator_checkpoint(_missing_path), 1,
         ("{missing}: checkpoint file not found",), absent=("Union",)),
    Case("`separator_checkpoint` of random bytes", _separator_checkpoint(_random_checkpoint), 1,
         ("{random_ckpt}: cannot read checkpoint (not a PyTorch checkpoint",), absent=("weights_only", "Union")),
    Case("unknown instrument in `--data.features.instruments`", _unknown_instrument, 1, ("unknown ['kazoo']",),
         absent=("Union", "Namespace(")),
    Case("`--trainer.limit_val_batches=1`", _limit_batches, 0, (), stream="out", check=_check_limits),
    Case("a run that fails before its first training step", _no_validation_split, 1,
         ("no 'validation' tracks with usable audio",), creates=True, check=_check_logs_taken_back),
    # inference: separate / transcribe / evaluate (a failed command leaves no --out folder behind)
    Case("unreadable audio", _separate(_garbage_wav, "--quiet"), 1, ("{garbage_wav}: cannot read audio header",)),
    Case("truncated FLAC input", _separate(_truncated_flac_file, "--quiet"), 1,
         ("{truncated_flac}: cannot decode audio at sample 0",)),
    Case("truncated WAV input", _separate(_truncated_wav_input, "--quiet"), 1,
         ("{truncated_wav}: truncated audio: header declares 32000 samples, file holds 22000",)),
    Case("truncated WAV input to `transcribe`", _separate(_truncated_wav_input, command="transcribe"), 1,
         ("{truncated_wav}: truncated audio: header declares 32000 samples, file holds 22000",)),
    Case("empty audio file", _separate(_wav("empty.wav", np.zeros(0, np.float32)), "--quiet"), 1,
         ("{empty_wav}: the file holds no audio samples",)),
    Case("silent audio", _separate(_wav("silent.wav", np.zeros(32_000, np.float32)), "--quiet"), 1,
         ("{silent_wav}: the audio is silent",)),
    Case("audio shorter than one STFT window", _separate(_wav("tiny.wav", np.ones(100, np.float32) / 2), "--quiet"),
         1, ("{tiny_wav}: too short to separate",)),
    Case("input file missing", _separate(_missing_input, "--quiet"), 1, ("{missing_wav}: no such file",)),
    Case("checkpoint that cannot do the job", _separate_with("stage1"), 1,
         ("{ckpt}: a 'transcriptor' checkpoint holds no separator",)),
    Case("`--out` an existing file", _separate_with("stage2", out="a file"), 1,
         ("{out}: --out is an existing file, not a folder",)),
    Case("`--out` not writable", _separate_with("stage2", out="under a file"), 1,
         ("output folder is not writable", "results.txt is a file, not a folder")),
    Case("`--device cuda` without a GPU", _separate_with("stage2", device="cuda"), 1,
         ("--device cuda: no CUDA device is visible on this machine",)),
    Case("`--device` not a device name", _separate_with("stage2", device="gpu7"), 1,
         ("--device gpu7: not a device name",)),
    Case("`evaluate` on a split with a track the index dropped", _evaluate_dropped_track, 0,
         ("note: 1 'test' track(s) skipped", "under \"skipped\""), creates=True, check=_check_dropped_listed),
    Case("`evaluate --out` an existing folder", _evaluate_into_folder, 1,
         ("{out}: --out is an existing folder, not a JSON file",)),
    Case("a failing rerun into an earlier run's fixed log version", _fixed_version_rerun, 1,
         ("no 'validation' tracks with usable audio",), creates=True, check=_check_earlier_logs_kept),
    Case("Ctrl-C during `fit`", _ctrl_c, 130, ("stopped by SIGINT before the end of training", "last.ckpt was saved"),
         creates=True, check=_check_ctrl_c_saved),
    # a fit never replaces another run's checkpoints or config, and says when it wrote no best.ckpt
    Case("`fit` into a folder holding an earlier run's checkpoints", _fit_over_earlier_run, 1,
         ("checkpoints/stage1 holds best.ckpt and last.ckpt of an earlier run, which this fit would replace",
          "--ckpt_path last", "--checkpoint_dir DIR", "--overwrite true")),
    Case("a second run of a YAML logged to W&B", _second_wandb_run, 0, (), creates=True,
         check=_check_config_in_its_own_folder),
    Case("`fit` with validation off", _fit_without_validation, 0,
         ("note: validation is off (limit_val_batches=0), so checkpoints/stage1/best.ckpt was not written",
          "checkpoints/stage1/last.ckpt holds this fit's final weights"), creates=True, check=_check_no_best),
    Case("the next stage reads a `best.ckpt` that was never written", _stage2_after_unvalidated_stage1, 1,
         ("checkpoints/stage1/best.ckpt: checkpoint file not found; checkpoints/stage1/last.ckpt is there",)),
    Case("misspelled key in a YAML", _misspelled_yaml_key, 2,
         ("my_stage1.yaml: unknown key 'pos_wieght' in model.init_args (did you mean 'pos_weight'?)",)),
    Case("`nan` loss weight", lambda env: _fit(env, "stage2.yaml", "--model.init_args.clip_mix_weight=nan"), 2,
         ("--model.init_args.clip_mix_weight: must be a finite number, got nan",)),
    Case("empty `validation/` folder", _empty_validation_split, 1,
         ("{validation}: the folder holds no TrackNNNNN track folders",), creates=True,
         check=_check_no_log_version_left),
    # outputs: a command never replaces a user's file unless asked (--overwrite), and two runs never race
    Case("`separate` into a folder holding an earlier separation", _earlier_separation, 1,
         ("{folder}: holds an earlier separation (bass.wav, guitar.wav, piano.wav, residual.wav); give --overwrite",)),
    Case("`separate` while another run writes the same output", _concurrent_separation, 1,
         ("{folder}: another scoresep run (process {pid} on", "is writing it now")),
    Case("`transcribe --out` onto an existing MIDI file (the user's score?)", _transcribe_onto_score, 1,
         ("song.mid: already exists; give --overwrite to replace it, or another --out",)),
    Case("`evaluate --out` onto an earlier result", _evaluate_onto_result, 1,
         ("eval.json: already exists; give --overwrite to replace it, or another --out",)),
    Case("`evaluate` without `--out` (it never writes into a checkpoint's folder)", _evaluate_without_out, 2,
         ("the following arguments are required: --out",)),
    Case("`evaluate --mixture full` on a split without stems", _evaluate_without_stems, 1,
         ("{data}: nothing to score on the 'test' split: no track has stems",)),
    # a score that does not fit its recording (separate --score, pack; with and without --align)
    Case("`separate --score` 4x longer than the recording", _separate_score(_stretched), 1,
         ("{score}: recording and score lengths differ by", "give --align to align the score")),
    Case("`separate --score` covering the first 1.5 s of a 6-s recording", _separate_score(_first_seconds(1.5)), 1,
         ("{score}: recording and score lengths differ by",)),
    Case("`separate --score` of another song", _separate_score(lambda midi: midi, other_song=True), 1,
         ("{score}: the score does not agree with", "above chance", "Is it the score of this recording?")),
    Case("`separate --score` whose notes all lie outside the pitch range", _separate_score(_out_of_range), 1,
         ("{score}: only 0 of its", "notes of bass, guitar, piano lie in the pitch range MIDI 21..108",)),
    Case("`separate --score --align` of a 1.5-s score on a 6-s recording",
         _separate_score(_first_seconds(1.5), "--align", "--min-quality", "0.3"), 1,
         ("{score}: the alignment to", "stretches the score's", "is it the score of this whole recording?")),
    Case("`pack --align` of a 1.5-s score on a 6-s recording", _pack_short_score_aligned, 1,
         ("skipped: {pack_score}: the alignment to song.flac stretches",), creates=True,
         check=_check_pack_skipped("{pack_score}: the alignment to song.flac")),
    Case("`synth --out` an existing dataset", _synth_into_dataset, 1,
         ("{data}: is not empty (it holds test, train, validation); synth writes a new dataset and never mixes",)),
    Case("`pack` while another run packs into the same dataset", _concurrent_pack, 1,
         ("dataset: another scoresep run (process {pid} on", "is writing it now")),
    Case("`pack` of a score whose notes all lie outside the pitch range", _pack_out_of_range, 1,
         ("skipped: {pack_score}: only 0 of its",), creates=True, check=_check_pack_skipped("{pack_score}: only 0 of")),
    Case("a track whose notes all lie outside the pitch range", _strict(_no_active_instrument), 1,
         ("{track}: no note of bass, guitar, piano in the pitch range MIDI 21..108", "no active instrument")),
    # audio that holds NaN or infinity is refused as such, never called silent
    Case("float WAV input with a NaN sample", _separate(_nan_wav, "--quiet"), 1,
         ("{nan_wav}: the audio holds NaN or infinite samples (the first at sample 8000, 0.50 s)",)),
    Case("`pack` of a float WAV with a NaN sample", _pack_nan, 1,
         ("skipped: {pack_audio}: the audio holds NaN or infinite samples",), creates=True,
         check=_check_pack_skipped("{pack_audio}: the audio holds NaN or infinite samples")),
    Case("a mix with an infinite sample", _strict(_nan_mix), 1,
         ("{track}/mix.wav: the audio holds NaN or infinite samples (the first at sample 16000, 1.00 s)",)),
    # values refused at the door (argparse: exit 2, the option named)
    Case("`--n-harmonics 0`", _separate_score(lambda midi: midi, "--n-harmonics", "0"), 2,
         ("argument --n-harmonics: must be at least 1, got 0",)),
    Case("`--min-quality` outside 0..1", _separate_score(lambda midi: midi, "--align", "--min-quality", "1.5"), 2,
         ("argument --min-quality: must be between 0 and 1, got 1.5",)),
    Case("`--harmonic-tolerance nan`", _separate_score(lambda midi: midi, "--harmonic-tolerance", "nan"), 2,
         ("argument --harmonic-tolerance: nan: must be a finite number",)),
]


# ------------------------------------------------------------------------------------------------------- runner

@pytest.fixture(scope="module")
def env_base(minislakh, tiny_checkpoints, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """The session's mini-Slakh (10 tracks of 6 s) and tiny checkpoints of stage 1, stage 2 and the classifier."""
    classifier = tmp_path_factory.mktemp("bad_input_checkpoints") / "classifier.ckpt"
    checkpoint = torch.load(tiny_checkpoints["stage1"], weights_only=True)
    checkpoint["hyper_parameters"]["label"] = "activity"  # what the baseline's activity classifier records
    torch.save(checkpoint, classifier)
    return minislakh, {**tiny_checkpoints, "classifier": classifier}


def run_case(case: Case, env: Env, capsys) -> tuple[int, str]:
    argv = case.build(env)
    before = snapshot(env.work, skip=("cache",))
    code, out, err = run_cli(argv, capsys)
    output = out if case.stream == "out" else err
    assert code == case.code, f"exit {code}, expected {case.code}:\n{err[-3000:]}"
    for expected in case.last_line:
        expected = expected.format(**env.values)
        assert expected in last_line(output), f"last line {last_line(output)!r} lacks {expected!r}"
    for text in case.absent:
        assert text not in err + out, f"{text!r} in the output:\n{err[-3000:]}"
    if not case.creates:
        assert snapshot(env.work, skip=("cache",)) == before, "the command created, changed or removed files"
    if case.check is not None:
        case.check(env, output)
    return code, output


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, env_base, tmp_path, capsys, monkeypatch):
    data, checkpoints = env_base
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    run_case(case, Env(data, checkpoints, work), capsys)


def _readme_problems() -> list[str]:
    text = BAD_INPUT_PAGE.read_text()
    section = text.split("### Bad input", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| command")]
    return [row.split("|")[2].strip() for row in rows]


def test_readme_lists_the_same_cases():
    assert _readme_problems() == [case.problem for case in CASES]
