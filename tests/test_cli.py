import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCORESEP = [str(Path(sys.executable).parent / "scoresep")]


def _run(*args, cwd=None):
    return subprocess.run(SCORESEP + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_env_reports_versions_and_gpu():
    result = _run("env")
    assert result.returncode == 0, result.stderr
    assert f"torch              {torch.__version__.split('+')[0]}" in result.stdout
    for name in ("torchaudio", "nnAudio2", "pytorch-lightning", "jsonargparse", "pretty_midi", "mir_eval"):
        assert name in result.stdout
    (gpu,) = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
    if torch.cuda.is_available():
        assert gpu.split()[1] == "yes:" and f"{torch.cuda.device_count()} visible" in gpu
    else:
        assert gpu.split(None, 1)[1] == "no CUDA device visible (training runs on the CPU)"


def test_synth_then_prepare_from_the_command_line(tmp_path):
    result = _run("synth", "--out", str(tmp_path / "ms"), "--tracks", "3", "--seconds", "2", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "[synth    3/3]" in result.stderr and "wrote 3 tracks" in result.stdout
    assert len(list((tmp_path / "ms").glob("*/Track*/mix.flac"))) == 3
    result = _run("prepare", "--root", str(tmp_path / "ms"), "--cache", str(tmp_path / "cache"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "cache ready:" in result.stdout
    assert len(list((tmp_path / "cache").glob("*/index.json"))) == 1


def test_bad_input_gives_a_message_and_nonzero_exit(tmp_path):
    result = _run("prepare", "--root", str(tmp_path / "missing"), "--cache", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert f"{tmp_path / 'missing'}: dataset folder not found" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run("prepare", "--root", str(tmp_path), "--instruments", "kazoo")
    assert result.returncode == 1 and "unknown ['kazoo']" in result.stderr and "Traceback" not in result.stderr
    result = _run("synth", "--out", str(tmp_path / "x"), "--soundfont", str(tmp_path / "none.sf2"))
    assert result.returncode == 1 and "none.sf2: soundfont not found" in result.stderr


def test_fit_with_a_missing_critic_checkpoint_stops_with_a_message(tmp_path):
    config = Path(__file__).resolve().parent.parent / "experiments" / "stage2.yaml"
    result = _run("fit", "--config", str(config), "--model.transcriptor_checkpoint", str(tmp_path / "none.ckpt"),
                  "--data.root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'none.ckpt'}: checkpoint file not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_ctrl_c_at_any_moment_of_separate_is_one_line_and_exit_130(delay, tiny_checkpoints, minislakh, tmp_path):
    """Ctrl-C while the modules load, the command line is read or the checkpoint is loaded: never a traceback."""
    import signal
    import time

    song = sorted(minislakh.glob("test/Track*/mix.flac"))[0]
    process = subprocess.Popen([sys.executable, "-m", "scoresep", "separate", str(song), "--ckpt",
                                str(tiny_checkpoints["stage2"]), "--out", str(tmp_path / "out"), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip(f"the separation finished within {delay} s")
    assert "Traceback" not in err, err
    if process.returncode == -signal.SIGINT and not err.strip():
        return  # it had finished and was shutting down: the shell shows 130 too, and every file was complete
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].endswith("interrupted (Ctrl-C)"), err
    assert not (tmp_path / "out").exists()


def test_a_users_error_is_one_line_and_an_internal_error_keeps_its_traceback(monkeypatch, capsys):
    from scoresep.cli import main
    from scoresep.data.audio import AudioError

    def broken(*_):
        raise ValueError("an internal bug")

    monkeypatch.setattr("scoresep.cli.data_commands._versions", broken)
    with pytest.raises(ValueError, match="an internal bug"):  # not "error: an internal bug" and exit 1
        main(["env"])

    def users(*_):
        raise AudioError("song.wav: the audio holds NaN or infinite samples")

    monkeypatch.setattr("scoresep.cli.data_commands._versions", users)
    with pytest.raises(SystemExit) as stopped:
        main(["env"])
    assert stopped.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == "scoresep env: error: song.wav: the audio holds NaN or " \
                                                       "infinite samples"
