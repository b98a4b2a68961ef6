"""Bad input to ``scoresep separate``, ``transcribe`` and ``evaluate``: one clear error line, exit status 1, and
nothing created or changed; tracks that ``evaluate`` leaves out are listed, with the reason, in its JSON.

Every test runs the real command in-process on data and checkpoints the project made itself.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import INSTRUMENTS

from scoresep.data.slakh import scan
from tests.helpers import last_line, run_cli, snapshot

NO_CUDA = "no CUDA device is visible on this machine (torch.cuda.is_available() is False); use --device cpu"


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints) -> dict[str, Path]:
    """The session's tiny stage-1 and stage-2 checkpoints (only their loading matters here)."""
    return tiny_checkpoints


@pytest.fixture(scope="module")
def song(minislakh) -> Path:
    """A good input: a test track's mixture (6 s, 16 kHz)."""
    return sorted(minislakh.glob("test/Track*/mix.flac"))[0]


@pytest.fixture
def silent(tmp_path) -> Path:
    """An input that every command refuses (2 s of digital silence)."""
    path = tmp_path / "inputs" / "silent.wav"
    path.parent.mkdir()
    soundfile.write(path, np.zeros(32_000, dtype=np.float32), 16_000)
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the command; ``(exit status, stdout, last stderr line)``."""
    code, out, err = run_cli(argv, capsys)
    return code, out, last_line(err)


_snapshot = snapshot


def _separate(inputs: list[Path], ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["separate", *map(str, inputs), "--ckpt", str(ckpt), "--out", str(out), "--quiet", *extra]


def _transcribe(inputs: list[Path], ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["transcribe", *map(str, inputs), "--ckpt", str(ckpt), "--out", str(out), *extra]


def _evaluate(ckpt: Path, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["evaluate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--cache", str(cache),
            "--workers", "1", "--quiet", *extra]


# --- 1. evaluate lists every track of the split that it did not evaluate, with the reason -----------------------


def _first_counted_stem(track: Path) -> Path:
    """The audio of a stem that makes up one of the instruments (its decoding matters for the track)."""
    entries, _ = scan(track.parent.parent, INSTRUMENTS)
    entry = next(e for e in entries if e.directory == track)
    return next(stem.audio for stems in entry.sources.values() for stem in stems if stem.audio is not None)


@pytest.mark.parametrize("damage", ["mix", "stem", "metadata"])
def test_evaluate_lists_a_track_the_index_dropped_with_its_reason(damage, checkpoints, minislakh_copy, tmp_path,
                                                                  capsys):
    test_tracks = sorted((minislakh_copy / "test").glob("Track*"))
    bad, good = test_tracks[0], test_tracks[1]
    rng = np.random.default_rng(0)
    if damage == "metadata":
        (bad / "metadata.yaml").unlink()
        broken, reason = bad / "metadata.yaml", "metadata.yaml is missing"
    else:
        broken = bad / "mix.flac" if damage == "mix" else _first_counted_stem(bad)
        broken.write_bytes(rng.bytes(4000))
        reason = "cannot read audio"
    train_bad = sorted((minislakh_copy / "train").glob("Track*"))[0]
    (train_bad / "mix.flac").write_bytes(rng.bytes(4000))  # another split's problem is not this split's skip
    out = tmp_path / "eval.json"
    code, stdout, err = _run(_evaluate(checkpoints["stage2"], minislakh_copy, out, tmp_path / "cache"), capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert [t["track"] for t in result["tracks"]] == [good.name]
    assert [s["track"] for s in result["skipped"]] == [bad.name], result["skipped"]
    assert str(broken.relative_to(minislakh_copy)) in result["skipped"][0]["reason"]
    assert reason in result["skipped"][0]["reason"]
    assert f"wrote {out}" in stdout
    assert "1 'test' track(s) skipped" in err and str(out) in err


# --- 2. --device names a device this machine does not have, or no device at all ---------------------------------


def _device_cases() -> list:
    cases = [pytest.param("gpu7", "--device gpu7: not a device name (use cpu, cuda or cuda:N)", id="gpu7")]
    if not torch.cuda.is_available():
        cases.append(pytest.param("cuda", f"--device cuda: {NO_CUDA}", id="cuda-without-gpu"))
    else:
        count = torch.cuda.device_count()
        cases.append(pytest.param(f"cuda:{count}", f"--device cuda:{count}: only {count} CUDA device(s) are visible",
                                  id="cuda-index-too-high"))
    return cases


@pytest.mark.parametrize(("device", "message"), _device_cases())
def test_an_unusable_device_is_one_error_line_and_creates_nothing(device, message, checkpoints, song, minislakh,
                                                                 tmp_path, capsys):
    out = tmp_path / "out"
    for argv in (_separate([song], checkpoints["stage2"], out, "--device", device),
                 _transcribe([song], checkpoints["stage1"], out, "--device", device),
                 _transcribe([song], checkpoints["stage1"], out / "song.mid", "--device", device),
                 _evaluate(checkpoints["stage2"], minislakh, out / "eval.json", out / "cache", "--device", device)):
        code, _, last = _run(argv, capsys)
        assert code == 1 and last == f"scoresep {argv[0]}: error: {message}", last
        assert not out.exists()


# --- 3. a failed run leaves no --out folder behind that it created ----------------------------------------------


def test_a_failed_separate_or_transcribe_removes_the_out_folders_it_created(checkpoints, song, silent, tmp_path,
                                                                           capsys):
    out = tmp_path / "new" / "deeper" / "out"
    for argv in (_separate([silent], checkpoints["stage2"], out),
                 _transcribe([silent], checkpoints["stage1"], out),
                 _transcribe([silent], checkpoints["stage1"], out / "song.mid")):
        code, _, last = _run(argv, capsys)
        assert code == 1 and f"{silent}: the audio is silent" in last, last
        assert not (tmp_path / "new").exists()
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    code, _, last = _run(_separate([song], garbage, out), capsys)
    assert code == 1 and "garbage.ckpt: cannot read checkpoint" in last, last
    code, _, last = _run(_separate([song], checkpoints["stage1"], out), capsys)  # holds no separator
    assert code == 1 and "stage1.ckpt: a 'transcriptor' checkpoint holds no separator" in last, last
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_a_users_existing_folder_and_its_files(checkpoints, silent, tmp_path, capsys):
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    (used / "silent").mkdir(parents=True)  # what an earlier run of the same input left: the user's
    (used / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    for out in (empty, used):
        code, _, last = _run(_separate([silent], checkpoints["stage2"], out), capsys)
        assert code == 1 and "silent.wav: the audio is silent" in last, last
        code, _, last = _run(_transcribe([silent], checkpoints["stage1"], out), capsys)
        assert code == 1 and "silent.wav: the audio is silent" in last, last
    assert _snapshot(tmp_path) == before


# --- 4. --out names a file where a folder is needed, or a folder where a file is needed -------------------------


def test_out_naming_an_existing_file_or_folder_of_the_wrong_kind_says_so(checkpoints, song, minislakh, tmp_path,
                                                                         capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("the user's file")
    folder = tmp_path / "folder.mid"
    (folder / "eval.json").mkdir(parents=True)
    before = _snapshot(tmp_path)
    cases = [
        (_separate([song], checkpoints["stage2"], blocker), f"{blocker}: --out is an existing file, not a folder"),
        (_transcribe([song], checkpoints["stage1"], blocker),
         f"{blocker}: --out is an existing file, not a folder"),
        (_transcribe([song], checkpoints["stage1"], folder), f"{folder}: --out is an existing folder, not a MIDI file"),
        (_evaluate(checkpoints["stage2"], minislakh, folder / "eval.json", tmp_path / "cache"),
         f"{folder / 'eval.json'}: --out is an existing folder, not a JSON file"),
        (_separate([song], checkpoints["stage2"], blocker / "out"),
         f"{blocker / 'out'}: output folder is not writable ({blocker} is a file, not a folder)"),
    ]
    for argv, message in cases:
        code, _, last = _run(argv, capsys)
        assert code == 1 and last == f"scoresep {argv[0]}: error: {message}", last
    assert _snapshot(tmp_path) == before  # nothing written, not even the evaluation's cache
    assert not os.path.exists(tmp_path / "cache")
