"""Separation and transcription of users' files: chunking exactness, the Python API, the commands, bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import torch
import torchaudio.functional as audio_functional

import scoresep
from scoresep.data.audio import AudioError
from scoresep.inference.chunks import plan_chunks
from scoresep.inference.midi_out import rolls_to_midi
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource, FileSource
from scoresep.inference.transcription import Transcriber
from scoresep.inference.writers import StemWriter
from scoresep.instruments import INSTRUMENTS
from scoresep.metrics import roll_note_frames
from scoresep.models.unet import UNetConfig
from scoresep.models.unet import UNetSeparator as SeparatorNetwork
from scoresep.stages.adversarial import AdversarialStage
from tests.helpers import last_line, quiet_trainer, run_cli, tiny_datamodule


@pytest.fixture(scope="module")
def checkpoints(minislakh, tiny_checkpoints, tmp_path_factory):
    """The session's tiny stage-1 and stage-2 checkpoints, and a tiny stage 3 trained from them."""
    folder = tmp_path_factory.mktemp("inference")
    stage3 = AdversarialStage(separator_checkpoint=str(tiny_checkpoints["stage2"]),
                              transcriptor_checkpoint=str(tiny_checkpoints["stage1"]), log_media=False)
    trainer = quiet_trainer(folder, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(stage3, tiny_datamodule(minislakh, folder))
    trainer.save_checkpoint(folder / "stage3.ckpt")
    return {**tiny_checkpoints, "stage3": folder / "stage3.ckpt"}


@pytest.fixture(scope="module")
def song(minislakh) -> Path:
    """A test track's mixture file (6 s, 16 kHz)."""
    return sorted(minislakh.glob("test/Track*/mix.flac"))[0]


_run = run_cli


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_chunks_tile_the_signal_with_aligned_context():
    chunks = plan_chunks(1000, 150, 40, align=8)
    assert chunks[0].start == 0 and chunks[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(c.outer_start % 8 == 0 and c.start % 8 == 0 for c in chunks)
    assert chunks[1].outer_start == chunks[1].start - 40 and chunks[1].outer_stop == chunks[1].stop + 40
    assert chunks[-1].outer_stop == 1000 and chunks[0].outer_start == 0
    with pytest.raises(ValueError, match="at least one frame"):
        plan_chunks(0, 10, 2)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_receptive_field_bound_covers_every_frame_that_can_change(depth):
    torch.manual_seed(depth)
    network = SeparatorNetwork(65, 2, UNetConfig(channels=2, depth=depth)).eval()
    magnitude = torch.rand(1, 65, 300)
    with torch.no_grad():
        for position in (150, 151, 153):
            changed = magnitude.clone()
            changed[..., position] += 3.0
            difference = (network(changed) - network(magnitude)).abs().amax(dim=(0, 1, 2))
            reached = difference.nonzero().flatten() - position
            assert reached.abs().max() <= network.receptive_field_frames


def test_chunked_separation_equals_one_pass_and_sums_to_the_mixture(checkpoints, song):
    mixture, rate = soundfile.read(song, dtype="float32")
    one_pass = Separator.from_checkpoint(checkpoints["stage2"], chunk_seconds=1000.0, device="cpu")
    chunked = Separator.from_checkpoint(checkpoints["stage2"], chunk_seconds=0.7, device="cpu")
    assert len(chunked.chunks(len(mixture))) >= 8 and len(one_pass.chunks(len(mixture))) == 1
    whole = one_pass.separate_source(ArraySource(mixture, rate))
    pieces = chunked.separate_source(ArraySource(mixture, rate))
    assert whole.shape == (4, len(mixture))
    np.testing.assert_allclose(pieces, whole, atol=1e-5 * np.abs(whole).max())
    np.testing.assert_allclose(pieces.sum(axis=0), mixture, atol=1e-5)  # stems + residual = mixture
    assert np.abs(pieces[:3]).max() > 1e-3  # the stems are not silent


def test_file_source_downmixes_and_resamples_piecewise_like_the_whole_file(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (rng.standard_normal((44_100 * 3 + 17, 2)) * 0.1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 44_100, subtype="FLOAT")
    source = FileSource(path, 16_000)
    whole = audio_functional.resample(torch.from_numpy(stereo.mean(axis=1)), 44_100, 16_000).numpy()
    assert source.n_samples == len(whole)
    assert source.notes == ["2 channels averaged to mono", "resampled from 44100 Hz to 16000 Hz"]
    for start, stop in ((0, 5000), (7001, 20_000), (30_000, source.n_samples), (5, 6)):
        np.testing.assert_allclose(source.read(start, stop), whole[start:stop], atol=1e-5)


def test_python_api_separates_and_transcribes_a_stereo_tensor_at_another_rate(checkpoints, song):
    mixture, _ = soundfile.read(song, dtype="float32")
    stereo = torch.from_numpy(audio_functional.resample(torch.from_numpy(mixture), 16_000, 22_050).numpy())
    stereo = torch.stack([stereo, 0.5 * stereo])
    separator = scoresep.Separator.from_checkpoint(checkpoints["stage2"])
    stems = separator(stereo, 22_050)
    assert list(stems) == ["bass", "guitar", "piano", "residual"]
    expected = -(-stereo.shape[1] * 16_000 // 22_050)
    assert all(stem.shape == (expected,) and stem.dtype == torch.float32 for stem in stems.values())
    transcriber = scoresep.Transcriber.from_checkpoint(checkpoints["stage1"])
    rolls = transcriber(mixture, 16_000)
    assert list(rolls) == ["bass", "guitar", "piano"]
    assert rolls["bass"].shape == (88, 1 + len(mixture) // 256) and rolls["bass"].dtype == torch.bool


def test_rolls_to_midi_writes_known_notes_with_gm_programs():
    rolls = np.zeros((3, 88, 100), dtype=bool)
    rolls[0, 69 - 21, 10:30] = True  # bass A4 from frame 10 to 30
    rolls[2, 60 - 21, 50:51] = True  # piano C4, one frame
    midi = rolls_to_midi(rolls, ("bass", "guitar", "piano"), frame_rate=62.5, min_midi=21)
    assert [(t.name, t.program) for t in midi.instruments] == [("bass", 33), ("guitar", 25), ("piano", 0)]
    bass, guitar, piano = midi.instruments
    assert [(n.pitch, n.start, n.end) for n in bass.notes] == [(69, 0.16, 0.48)]
    assert guitar.notes == [] and [(n.pitch, n.start, n.end) for n in piano.notes] == [(60, 0.8, 0.816)]


def test_separate_command_writes_one_file_per_instrument_and_a_residual(checkpoints, minislakh, tmp_path, capsys):
    inputs = tmp_path / "songs"
    inputs.mkdir()
    for track in sorted(minislakh.glob("test/Track*"))[:2]:
        (inputs / f"{track.name}.flac").write_bytes((track / "mix.flac").read_bytes())
    code, out, err = _run(["separate", str(inputs), "--ckpt", str(checkpoints["stage2"]), "--out",
                           str(tmp_path / "out"), "--quiet", "--format", "wav32"], capsys)
    assert code == 0, err
    for song in sorted(inputs.iterdir()):
        mixture, _ = soundfile.read(song, dtype="float32")
        stems = [soundfile.read(tmp_path / "out" / song.stem / f"{name}.wav", dtype="float32")
                 for name in ("bass", "guitar", "piano", "residual")]
        assert all(rate == 16_000 and len(audio) == len(mixture) for audio, rate in stems)
        np.testing.assert_allclose(sum(audio for audio, _ in stems), mixture, atol=1e-5)
        assert f"{song} ->" in out
    assert not [p for p in _files(tmp_path / "out") if p.name.startswith(".")]  # no temp file left


def test_transcribe_command_writes_midi_that_pretty_midi_reads_back(checkpoints, song, tmp_path, capsys):
    target = tmp_path / "song.mid"
    code, out, err = _run(["transcribe", str(song), "--ckpt", str(checkpoints["stage1"]), "--out", str(target)],
                          capsys)
    assert code == 0, err
    midi = pretty_midi.PrettyMIDI(str(target))
    assert [(t.name, t.program, t.is_drum) for t in midi.instruments] == [
        (name, INSTRUMENTS[name].default_program, False) for name in ("bass", "guitar", "piano")]
    mixture, _ = soundfile.read(song, dtype="float32")
    rolls = Transcriber.from_checkpoint(checkpoints["stage1"])(mixture, 16_000)
    for track, name in zip(midi.instruments, ("bass", "guitar", "piano"), strict=True):
        expected = [(21 + p, a, b) for p, a, b in roll_note_frames(rolls[name])]
        got = sorted((n.pitch, round(n.start * 62.5), round(n.end * 62.5)) for n in track.notes)
        assert got == sorted(expected)
    assert sum(len(t.notes) for t in midi.instruments) > 0
    # --from-separated with a stage-2 checkpoint: its critic transcribes each separated source
    code, out, err = _run(["transcribe", str(song), "--ckpt", str(checkpoints["stage2"]), "--from-separated",
                           "--out", str(tmp_path / "separated.mid")], capsys)
    assert code == 0, err
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "separated.mid")).instruments) == 3


def test_bad_inputs_give_clear_errors_and_leave_no_output(checkpoints, song, tmp_path, capsys):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16_000 * 2, dtype=np.float32), 16_000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16_000)
    out = tmp_path / "out"
    for bad, message in ((garbage, "garbage.wav: cannot read audio"), (silent, "silent.wav: the audio is silent"),
                         (empty, "empty.wav: the file holds no audio samples")):
        code, _, err = _run(["separate", str(bad), "--ckpt", str(checkpoints["stage2"]), "--out", str(out),
                             "--quiet"], capsys)
        assert code != 0 and message in err, err
        code, _, err = _run(["transcribe", str(bad), "--ckpt", str(checkpoints["stage1"]), "--out",
                             str(out / "x.mid")], capsys)
        assert code != 0 and message in err, err
    assert _files(out) == []
    code, _, err = _run(["separate", str(song), "--ckpt", str(checkpoints["stage1"]), "--out", str(out)], capsys)
    assert code != 0 and "holds no separator" in err and "stage-2 or stage-3" in err
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    code, _, err = _run(["separate", str(song), "--ckpt", str(checkpoints["stage2"]), "--out",
                         str(blocked / "out")], capsys)
    assert code != 0 and "output folder is not writable" in err
    code, _, err = _run(["evaluate", "--ckpt", str(checkpoints["stage2"]), "--data", str(tmp_path), "--out",
                         str(blocked / "eval.json")], capsys)
    assert code != 0 and "a_file: output folder is not writable" in err
    code, _, err = _run(["evaluate", "--ckpt", str(checkpoints["stage2"]), "--data", str(tmp_path / "nowhere"),
                         "--out", str(tmp_path / "eval.json")], capsys)
    assert code != 0 and "nowhere" in err
    code, _, err = _run(["separate", str(tmp_path / "missing.wav"), "--ckpt", str(checkpoints["stage2"]), "--out",
                         str(out)], capsys)
    assert code != 0 and "missing.wav: no such file" in err
    assert _files(out) == [] and not (tmp_path / "eval.json").exists()


def test_a_failing_input_in_a_batch_does_not_stop_the_others(checkpoints, song, tmp_path):
    garbage = tmp_path / "broken.flac"
    garbage.write_bytes(b"fLaC" + bytes(100))
    result = subprocess.run([sys.executable, "-m", "scoresep", "separate", str(garbage), str(song), "--ckpt",
                             str(checkpoints["stage2"]), "--out", str(tmp_path / "out"), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "broken.flac" in result.stderr and "1 of 2 input(s) failed" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "mix").iterdir()) == ["bass.wav", "guitar.wav", "piano.wav",
                                                                            "residual.wav"]
    assert not (tmp_path / "out" / "broken").exists()


def test_transcriber_refuses_an_activity_classifier(minislakh, tmp_path):
    from scoresep.checkpoints import CheckpointError
    from scoresep.models.transcriptor import TranscriptorConfig
    from scoresep.stages.transcriptor import TranscriptorStage
    from tests.helpers import TINY_T, quiet_trainer, tiny_datamodule

    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(TranscriptorStage(model=TranscriptorConfig(**TINY_T), label="activity"),
                tiny_datamodule(minislakh, tmp_path))
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    with pytest.raises(CheckpointError, match="classifier.ckpt: .*activity.*cannot write notes"):
        Transcriber.from_checkpoint(tmp_path / "classifier.ckpt")


def test_too_short_input_is_refused_with_its_name():
    network = SeparatorNetwork(513, 3, UNetConfig(channels=2, depth=2))
    from scoresep.features import FeatureSettings

    separator = Separator(network, FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024, 256, 21, 108),
                          device="cpu")
    with pytest.raises(AudioError, match="tiny.wav: too short to separate"):
        separator.separate_source(ArraySource(np.ones(100, dtype=np.float32), 16_000, name="tiny.wav"))


def test_a_stage3_checkpoint_hands_on_both_models(checkpoints, song, tmp_path, capsys):
    """Stage 3 fine-tunes both models: separate uses its separator, transcribe its transcriptor (not stage 1's)."""
    mixture, _ = soundfile.read(song, dtype="float32")
    stage3 = Transcriber.from_checkpoint(checkpoints["stage3"])
    stage1 = Transcriber.from_checkpoint(checkpoints["stage1"])
    source = ArraySource(mixture, 16_000)
    assert not np.array_equal(stage3.probabilities(source), stage1.probabilities(source))
    code, _, err = _run(["separate", str(song), "--ckpt", str(checkpoints["stage3"]), "--out", str(tmp_path),
                         "--quiet"], capsys)
    assert code == 0, err
    code, _, err = _run(["transcribe", str(song), "--ckpt", str(checkpoints["stage3"]), "--from-separated",
                         "--out", str(tmp_path / "song.mid")], capsys)
    assert code == 0, err
    assert (tmp_path / "mix" / "piano.wav").is_file() and (tmp_path / "song.mid").is_file()


def test_chunked_separation_is_exact_with_a_window_longer_than_four_hops():
    """The default settings have n_fft = 4 hops; with 8 hops the reflect padding at a piece's edge reaches further
    and the context must still cover it (and the U-Net's receptive field, and the inverse STFT's window)."""
    from scoresep.features import FeatureSettings

    torch.manual_seed(0)
    network = SeparatorNetwork(1025, 2, UNetConfig(channels=2, depth=1)).eval()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    features = FeatureSettings(("bass", "piano"), 16_000, 2048, 256, 21, 108)
    waveform = np.random.default_rng(1).standard_normal(16_000 * 5).astype(np.float32) * 0.1
    whole = Separator(network, features, chunk_seconds=100.0, device="cpu").separate_source(
        ArraySource(waveform, 16_000))
    pieces = Separator(network, features, chunk_seconds=0.4, device="cpu").separate_source(
        ArraySource(waveform, 16_000))
    assert np.abs(pieces - whole).max() < 1e-5 * np.abs(whole).max()


def test_a_failed_stem_write_names_the_output_file_and_leaves_nothing_behind(tmp_path):
    paths = [tmp_path / "bass.wav", tmp_path / "guitar.wav"]
    writer = StemWriter(paths, 16_000)
    writer.handles[1].close()  # the guitar file can no longer be written, as after a disk error
    with pytest.raises(AudioError, match=r"guitar\.wav: cannot write audio"):
        writer.write(np.zeros((2, 100), dtype=np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_python_api_takes_soundfile_arrays_refuses_nan_and_warns_on_silence(checkpoints, song):
    mixture, _ = soundfile.read(song, dtype="float32", always_2d=True)  # (time, channel), as soundfile gives it
    stereo = np.concatenate([mixture, 0.5 * mixture], axis=1)
    separator = scoresep.Separator.from_checkpoint(checkpoints["stage2"])
    by_rows = separator(stereo.T, 16_000)  # (channel, time)
    by_columns = separator(stereo, 16_000)
    for name, stem in by_rows.items():
        torch.testing.assert_close(by_columns[name], stem)
    with pytest.raises(AudioError, match=r"cannot tell time from channels in shape \(20, 30\)"):
        separator(np.ones((20, 30), np.float32), 16_000)
    broken = mixture[:, 0].copy()
    broken[1234] = np.nan
    nan_at = r"waveform: the audio holds NaN or infinite samples \(the first at sample 1234, 0.08 s\)"
    with pytest.raises(AudioError, match=nan_at):
        separator(broken, 16_000)
    with pytest.raises(AudioError, match="NaN or infinite"):
        scoresep.Transcriber.from_checkpoint(checkpoints["stage1"])(np.full(16_000, np.inf, np.float32), 16_000)
    with pytest.warns(UserWarning, match="the waveform is silent"):
        stems = separator(np.zeros(16_000, np.float32), 16_000)
    assert all(float(stem.abs().max()) == 0.0 for stem in stems.values())


def test_separate_replaces_an_earlier_separation_only_with_overwrite(checkpoints, song, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["separate", str(song), "--ckpt", str(checkpoints["stage2"]), "--out", str(out)]
    code, _, err = _run(argv, capsys)  # not --quiet: the progress bar counts seconds of audio
    assert code == 0, err
    assert "s of audio" in err and "sample" not in err.replace("samples clipped", "")
    (out / song.stem / "notes.txt").write_text("the user's notes")  # a file of the user's in the folder
    earlier = {path.name: path.read_bytes() for path in (out / song.stem).iterdir()}
    stage3 = [*argv[:3], str(checkpoints["stage3"]), *argv[4:], "--quiet"]
    code, _, err = _run(stage3, capsys)
    assert code == 1 and "holds an earlier separation" in last_line(err)
    assert {path.name: path.read_bytes() for path in (out / song.stem).iterdir()} == earlier
    code, _, err = _run([*stage3, "--overwrite"], capsys)
    assert code == 0, err
    now = {path.name: path.read_bytes() for path in (out / song.stem).iterdir()}
    assert now["notes.txt"] == earlier["notes.txt"] and now["bass.wav"] != earlier["bass.wav"]
    assert not [p for p in _files(out) if p.name.startswith(".")]  # no lock or temp file left


def test_a_lock_left_by_a_killed_run_is_taken_over(checkpoints, song, tmp_path, capsys):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{song.stem}.scoresep-lock").write_text(f"{socket.gethostname()} {int(dead.stdout)}\n")
    code, _, err = _run(["separate", str(song), "--ckpt", str(checkpoints["stage2"]), "--out", str(out), "--quiet"],
                        capsys)
    assert code == 0, err
    assert sorted(p.name for p in _files(out)) == ["bass.wav", "guitar.wav", "piano.wav", "residual.wav"]


def test_two_concurrent_writers_one_wins_and_the_other_says_so(tmp_path):
    import threading

    from scoresep.fileio import OutputExistsError, output_lock

    target, results, inside = tmp_path / "result.json", [], threading.Event()
    release = threading.Event()

    def writer() -> None:
        try:
            with output_lock(target):
                inside.set()
                release.wait(5)
                results.append("won")
        except OutputExistsError as error:
            results.append(str(error))

    first = threading.Thread(target=writer)
    first.start()
    assert inside.wait(5)
    writer()  # the second writer, while the first holds the output
    release.set()
    first.join()
    assert results[0].startswith(f"{target}: another scoresep run (process") and results[1] == "won"
    assert not list(tmp_path.iterdir())  # the lock is gone with its run
