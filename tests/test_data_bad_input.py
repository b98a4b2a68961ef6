"""Bad input on the data side stops or skips with one clear line naming the file, and data files are readable.

Covers: truncated audio of any soundfile format (the header declares more samples than the file holds), a stem
whose MIDI holds no notes while its audio sounds (an incomplete score), ``--strict`` saying that it stopped, and
the permissions of the files that ``scoresep synth`` and ``scoresep prepare`` write. Every dataset here is
rendered by the project's own mini-Slakh synthesiser.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat

import numpy as np
import pretty_midi
import pytest
import soundfile
import yaml

from scoresep.data.audio import AudioError, audio_info, load_audio, read_audio
from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.slakh import DatasetError
from scoresep.data.synth import synthesise
from tests.helpers import last_line, run_cli

INSTRUMENTS = ("bass", "guitar", "piano")
TARGET_CLASSES = {"Bass", "Guitar", "Piano"}
SECONDS, RATE = 2.0, 16_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """4 composed tracks of 2 s at 16 kHz: a mini-Slakh small enough to prepare in well under a second."""
    root = tmp_path_factory.mktemp("tiny") / "minislakh"
    synthesise(root, tracks=4, seconds=SECONDS, seed=0, workers=1, progress=False)
    return root


@pytest.fixture
def dataset(tiny, tmp_path):
    """A private copy of ``tiny`` that a test may damage."""
    target = tmp_path / "minislakh"
    shutil.copytree(tiny, target)
    return target


def _cli(args: list[str], capsys) -> tuple[int, str]:
    """Run ``scoresep ARGS`` in-process: ``(exit status, stderr)``."""
    code, _, err = run_cli(args, capsys)
    return code, err


_last_line = last_line


def _prepare_args(root, cache, *extra: str) -> list[str]:
    return ["prepare", "--root", str(root), "--cache", str(cache), "--workers", "1", *extra]


def _tracks(root):
    return sorted(root.glob("*/Track*"))


def _target_stem(root):
    """``(track folder, stem id)`` of the first stem of a configured instrument."""
    for track in _tracks(root):
        stems = yaml.safe_load((track / "metadata.yaml").read_text())["stems"]
        for stem_id, stem in sorted(stems.items()):
            if stem["inst_class"] in TARGET_CLASSES:
                return track, stem_id
    raise AssertionError("no track with a bass, guitar or piano stem")


def _index(cache_dir) -> dict:
    (index,) = cache_dir.glob("*/index.json")
    return json.loads(index.read_text())


def _truncated_wav(path, frames: int, cut_frames: int, channels: int = 1, subtype: str = "PCM_16",
                   audio_format: str = "WAV"):
    """A real file written by soundfile, with the last ``cut_frames`` frames' bytes cut off its end."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, size=(frames, channels)).astype(np.float32)
    soundfile.write(path, noise, RATE, subtype=subtype, format=audio_format)
    data = path.read_bytes()
    frame_bytes = channels * {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
    path.write_bytes(data[: len(data) - cut_frames * frame_bytes])
    return path


# ----------------------------------------------------------------------------------------- 1. truncated audio
def test_truncated_wav_is_refused_naming_the_file_and_both_lengths(tmp_path):
    path = tmp_path / "song.wav"
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, size=80_000).astype(np.float32)
    soundfile.write(path, noise, RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:100_000])  # the report's file: 80000 samples declared, 49978 present
    expected = f"{path}: truncated audio: header declares 80000 samples, file holds 49978"
    for reader in (audio_info, read_audio, lambda p: load_audio(p, 8_000)):
        with pytest.raises(AudioError) as error:
            reader(path)
        assert str(error.value) == expected


@pytest.mark.parametrize(("audio_format", "subtype", "channels", "suffix"), [
    ("WAV", "FLOAT", 2, ".wav"), ("WAV", "PCM_24", 1, ".wav"), ("WAVEX", "PCM_16", 2, ".wav"),
    ("AIFF", "PCM_16", 1, ".aiff"), ("AU", "PCM_16", 1, ".au"), ("RF64", "PCM_16", 1, ".rf64")])
def test_truncated_audio_of_other_formats_is_refused(tmp_path, audio_format, subtype, channels, suffix):
    path = _truncated_wav(tmp_path / f"song{suffix}", 32_000, 12_345, channels, subtype, audio_format)
    with pytest.raises(AudioError, match=rf"song{suffix}: truncated audio: header declares 32000 samples, "
                                         r"file holds 19655$"):
        load_audio(path, RATE)


def test_truncated_flac_is_still_refused_and_whole_files_still_read(tmp_path):
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, size=32_000).astype(np.float32)
    flac = tmp_path / "song.flac"
    soundfile.write(flac, noise, RATE, subtype="PCM_16")
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="song.flac: "):
        load_audio(flac, RATE)
    for suffix in (".wav", ".flac"):
        whole = tmp_path / f"whole{suffix}"
        soundfile.write(whole, noise, RATE, subtype="PCM_16")
        waveform = load_audio(whole, RATE)
        assert waveform.shape == (32_000,) and np.abs(waveform - noise).max() < 1e-4


def test_prepare_skips_a_track_whose_wav_is_truncated_and_strict_stops(dataset, tmp_path, capsys, caplog):
    track = _tracks(dataset)[0]
    mix, rate = soundfile.read(track / "mix.flac", dtype="int16")
    (track / "mix.flac").unlink()
    wav = track / "mix.wav"
    soundfile.write(wav, mix, rate, subtype="PCM_16")
    wav.write_bytes(wav.read_bytes()[: -2 * 10_000])
    problem = f"{wav}: truncated audio: header declares {mix.size} samples, file holds {mix.size - 10_000}"
    with caplog.at_level(logging.WARNING):
        code, err = _cli(_prepare_args(dataset, tmp_path / "cache"), capsys)
    assert code == 0, err
    index = _index(tmp_path / "cache")
    assert track.name not in {record["track"] for record in index["tracks"]}
    assert index["problems"] == [f"{problem}; track {track.name} skipped"]
    assert f"{problem}; track {track.name} skipped" in caplog.text and "1 problems" in err
    code, err = _cli(_prepare_args(dataset, tmp_path / "strict", "--strict"), capsys)
    assert code == 1
    assert _last_line(err) == f"scoresep prepare: error: {problem}; stopped (--strict)"


# ------------------------------------------------------------------------------ 2. MIDI without notes, sound
def _empty_midi(path, program: int) -> None:
    """Replace a stem's MIDI by one with the same instrument and no notes (what a broken export leaves)."""
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(program=program))
    midi.write(str(path))


def test_stem_that_sounds_but_whose_midi_has_no_notes_skips_its_track(dataset, tmp_path, capsys, caplog):
    track, stem_id = _target_stem(dataset)
    midi, flac = track / "MIDI" / f"{stem_id}.mid", track / "stems" / f"{stem_id}.flac"
    _empty_midi(midi, pretty_midi.PrettyMIDI(str(midi)).instruments[0].program)
    with caplog.at_level(logging.WARNING):
        code, err = _cli(_prepare_args(dataset, tmp_path / "cache"), capsys)
    assert code == 0, err
    index = _index(tmp_path / "cache")
    assert track.name not in {record["track"] for record in index["tracks"]}
    assert len(index["tracks"]) == len(_tracks(dataset)) - 1 and "1 problems" in err
    (problem,) = index["problems"]
    assert problem.startswith(f"{midi}: MIDI holds no notes but its stem {flac} is not silent (peak ")
    assert problem.endswith(f"dBFS): the score would be incomplete; track {track.name} skipped")
    assert problem in caplog.text
    code, err = _cli(_prepare_args(dataset, tmp_path / "strict", "--strict"), capsys)
    assert code == 1
    assert _last_line(err) == f"scoresep prepare: error: {problem.rsplit('; ', 1)[0]}; stopped (--strict)"


def test_silent_stem_whose_midi_has_no_notes_is_an_absent_instrument(dataset, tmp_path, capsys):
    track, stem_id = _target_stem(dataset)
    midi, flac = track / "MIDI" / f"{stem_id}.mid", track / "stems" / f"{stem_id}.flac"
    _empty_midi(midi, pretty_midi.PrettyMIDI(str(midi)).instruments[0].program)
    audio, rate = soundfile.read(flac, dtype="int16")
    quiet = np.zeros_like(audio)
    quiet[::50] = 8  # dither-like ticks, about -72 dBFS: below the -60 dBFS silence threshold
    soundfile.write(flac, quiet, rate, subtype="PCM_16")
    code, err = _cli(_prepare_args(dataset, tmp_path / "cache", "--strict"), capsys)
    assert code == 0, err
    index = _index(tmp_path / "cache")
    assert index["problems"] == []
    record = next(record for record in index["tracks"] if record["track"] == track.name)
    name = next(name for name, stems in record["stems"].items() if stem_id in stems)
    if record["stems"][name] == [stem_id]:  # the instrument's only stem: it is absent from the labels
        assert record["active"][name] is False and record["active_frames"][name] == 0


# ---------------------------------------------------------------------------------- 3. --strict says it stopped
def _remove_midi_of_target_stem(root):
    track, stem_id = _target_stem(root)
    midi = track / "MIDI" / f"{stem_id}.mid"
    midi.unlink()
    return track, stem_id, midi


def test_strict_prepare_says_it_stopped_not_that_it_skipped(dataset, tmp_path, capsys):
    track, stem_id, midi = _remove_midi_of_target_stem(dataset)
    code, err = _cli(_prepare_args(dataset, tmp_path / "cache"), capsys)
    assert code == 0, err
    (problem,) = _index(tmp_path / "cache")["problems"]
    assert problem.startswith(f"{midi}: stem {stem_id} (") and problem.endswith("; track skipped")
    code, err = _cli(_prepare_args(dataset, tmp_path / "strict", "--strict"), capsys)
    assert code == 1
    last = _last_line(err)
    assert last == f"scoresep prepare: error: {problem.removesuffix('; track skipped')}; stopped (--strict)"
    assert "skipped" not in last
    assert not list((tmp_path / "strict").glob("*/index.json"))


def test_strict_datamodule_says_it_stopped(dataset, tmp_path):
    _, _, midi = _remove_midi_of_target_stem(dataset)
    module = SlakhDataModule(root=str(dataset), cache_dir=str(tmp_path / "cache"), segment_seconds=1.0, strict=True)
    with pytest.raises(DatasetError) as error:
        module.prepare_data()
    assert str(error.value).startswith(f"{midi}: ") and str(error.value).endswith("; stopped (--strict)")
    assert "skipped" not in str(error.value)


def test_strict_stops_at_a_bad_track_it_would_otherwise_skip_during_the_build(dataset, tmp_path):
    track = _tracks(dataset)[0]
    (track / "mix.flac").write_bytes(b"fLaC" + bytes(200))
    module = SlakhDataModule(root=str(dataset), cache_dir=str(tmp_path / "cache"), segment_seconds=1.0, strict=True)
    with pytest.raises(DatasetError, match=rf"^{track / 'mix.flac'}: cannot .*; stopped \(--strict\)$"):
        module.prepare_data()


# ------------------------------------------------------------------------------ 4. files readable by everyone
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_synth_and_prepare_write_files_with_the_umask_mode(tmp_path, capsys, umask, mode):
    previous = os.umask(umask)
    try:
        code, err = _cli(["synth", "--out", str(tmp_path / "data"), "--tracks", "2", "--seconds", "1",
                          "--workers", "1"], capsys)
        assert code == 0, err
        code, err = _cli(_prepare_args(tmp_path / "data", tmp_path / "cache"), capsys)
        assert code == 0, err
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    written = {p.relative_to(tmp_path).as_posix().split("/")[-1].split(".")[-1] for p in files}
    assert {"flac", "mid", "yaml", "npy", "json"} <= written
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != mode}
    assert wrong == {}, f"expected {oct(mode)}"
