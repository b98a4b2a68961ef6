"""Score-informed separation: the score's harmonic masks as a training-free separator (``separate --score``,
``evaluate --score-masks``, the report's reference row) and as a restriction of a learned separator's masks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pretty_midi
import pytest
import soundfile
import torch

from scoresep.data.slakh import scan
from scoresep.features import FeatureSettings
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource
from scoresep.metrics import si_sdr
from scoresep.score import bin_frequencies, combined_masks, harmonic_templates, score_masks, score_rolls
from tests.helpers import last_line, run_cli

INSTRUMENTS = ("bass", "guitar", "piano")
FEATURES = FeatureSettings(INSTRUMENTS, 16_000, 1024, 256, 21, 108)


def _templates() -> torch.Tensor:
    return harmonic_templates(bin_frequencies(16_000, 1024), 88, 21)


def test_shared_bins_are_split_equally_and_uncovered_bins_go_to_the_residual():
    rolls = torch.zeros(3, 88, 2)
    rolls[0, 48, :] = 1  # bass and guitar on the same pitch in frame 0, bass alone in frame 1
    rolls[1, 48, 0] = 1
    masks = score_masks(rolls, _templates())
    covered = _templates()[48].bool()
    assert torch.allclose(masks[0, covered, 0], torch.full_like(masks[0, covered, 0], 0.5))
    assert torch.allclose(masks[1, covered, 0], torch.full_like(masks[1, covered, 0], 0.5))
    assert torch.all(masks[0, covered, 1] == 1) and torch.all(masks[1:, :, 1] == 0)
    assert torch.all(masks[:, ~covered] == 0) and torch.all(masks[2] == 0)
    with pytest.raises(ValueError, match="score_masks rolls"):
        score_masks(rolls[0], _templates())


def test_an_audio_only_separator_only_splits_the_bins_the_score_shares():
    """With learned masks the score still decides which instruments a bin may go to: a bin one instrument covers
    stays whole, a bin none covers stays empty, and only a shared bin follows the learned masks, by
    ``learned_weight`` against the equal split."""
    rolls = torch.zeros(3, 88, 2)
    rolls[0, 48, :] = 1  # bass and guitar on the same pitch in frame 0, bass alone in frame 1
    rolls[1, 48, 0] = 1
    covered = _templates()[48].bool()
    learned = torch.zeros(3, 513, 2)
    learned[0], learned[1], learned[2] = 0.6, 0.2, 0.9  # the separator hears bass louder; piano is not in the score
    split = score_masks(rolls, _templates(), learned, learned_weight=1.0)
    assert torch.allclose(split[0, covered, 0], torch.tensor(0.75)) and torch.allclose(split[1, covered, 0],
                                                                                       torch.tensor(0.25))
    assert torch.all(split[0, covered, 1] == 1) and torch.all(split[1:, :, 1] == 0)  # bass alone keeps its bins
    assert torch.all(split[:, ~covered] == 0) and torch.all(split[2] == 0)  # no note, no instrument
    half = score_masks(rolls, _templates(), learned, learned_weight=0.5)
    assert torch.allclose(half[0, covered, 0], torch.tensor(0.625)) and torch.allclose(half[1, covered, 0],
                                                                                      torch.tensor(0.375))
    assert torch.equal(score_masks(rolls, _templates(), learned, learned_weight=0.0), score_masks(rolls, _templates()))
    silent = score_masks(rolls, _templates(), torch.zeros(3, 513, 2), learned_weight=1.0)
    assert torch.allclose(silent, score_masks(rolls, _templates()))  # masks all 0 in a shared bin: an equal split
    for weight in (0.0, 0.3, 1.0):
        total = score_masks(rolls, _templates(), learned, learned_weight=weight).sum(0)
        assert torch.allclose(total[covered], torch.tensor(1.0)) and torch.all(total[~covered] == 0)
    with pytest.raises(ValueError, match=r"learned_weight must be in \[0, 1\], got 1.5"):
        score_masks(rolls, _templates(), learned, learned_weight=1.5)
    with pytest.raises(ValueError, match="learned_split: learned"):
        combined_masks(torch.ones(3, 4, 2), torch.ones(3, 4, 1))


def test_a_recording_whose_length_is_a_multiple_of_the_hop_is_separated_whole():
    """The last chunk then keeps one frame and no sample: it must be skipped, not written as an empty piece."""
    n_samples = 250 * 256
    waveform = np.random.default_rng(0).standard_normal(n_samples).astype(np.float32) * 0.1
    rolls = np.zeros((3, 88, 251), dtype=bool)
    rolls[0, 30] = True
    with pytest.raises(ValueError, match=r"needs a network; .* is Separator.from_score"):
        Separator(None, FEATURES)  # no network is never a silent switch to the score's masks
    separator = Separator.from_score(FEATURES, chunk_seconds=4.0, device="cpu")
    pieces = list(separator.stream(ArraySource(waveform, 16_000), rolls))
    assert sum(piece.shape[1] for _, piece in pieces) == n_samples
    assert all(piece.shape[1] > 0 for _, piece in pieces)
    result = separator.separate_source(ArraySource(waveform, 16_000), score=rolls)
    assert np.allclose(result.sum(axis=0), waveform, atol=1e-5)  # instruments + residual add up to the input


def _sources(entry) -> dict[str, np.ndarray]:
    """The true source of each instrument of a mini-Slakh track (its stems summed)."""
    sources = {}
    for name, stems in entry.sources.items():
        if stems:
            sources[name] = sum(soundfile.read(stem.audio, dtype="float32")[0] for stem in stems)
    return sources


def test_separate_with_the_score_alone_beats_the_input_for_every_instrument(minislakh, tmp_path, capsys):
    entries, _ = scan(minislakh, INSTRUMENTS)
    test = [entry for entry in entries if entry.split == "test"]
    gains = {name: [] for name in INSTRUMENTS}
    for entry in test:
        out = tmp_path / entry.track
        code, stdout, stderr = run_cli(["separate", str(entry.mixture), "--score", str(entry.directory /
                                        "all_src.mid"), "--out", str(out), "--quiet"], capsys)
        assert code == 0, stderr
        mixture = soundfile.read(entry.mixture, dtype="float32")[0]
        for name, reference in _sources(entry).items():
            estimate = soundfile.read(out / "mix" / f"{name}.wav", dtype="float32")[0]
            reference_t = torch.from_numpy(reference)[None].double()
            gain = si_sdr(torch.from_numpy(estimate)[None].double(), reference_t) - si_sdr(
                torch.from_numpy(mixture)[None].double(), reference_t)
            gains[name].append(float(gain))
    assert all(values and min(values) > 0 for values in gains.values()), gains  # whole tracks, each instrument


def test_evaluate_score_masks_writes_a_reference_row_that_the_report_shows(minislakh, tmp_path, capsys):
    out = tmp_path / "results" / "evaluations" / "score_masks.json"
    code, stdout, stderr = run_cli(["evaluate", "--score-masks", "--data", str(minislakh), "--cache",
                                    str(tmp_path / "cache"), "--split", "test", "--out", str(out), "--quiet"], capsys)
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["stage"] == "score_masks" and result["checkpoint"] is None
    assert result["harmonics"] == {"n_harmonics": 8, "tolerance": 0.5}
    for name in INSTRUMENTS:
        assert result["summary"]["separation"][name]["si_sdri"] > 0, name
    code, stdout, stderr = run_cli(["report", str(tmp_path / "results")], capsys)
    assert code == 0, stderr
    report = (tmp_path / "results" / "report.md").read_text()
    line = next(line for line in report.splitlines() if "score harmonic masks" in line)
    assert "no training; uses the test score" in line
    assert f"{result['summary']['separation']['bass']['si_sdr']:.2f}" in line


def test_the_score_restricts_a_trained_separator(minislakh, tiny_checkpoints, tmp_path, capsys):
    """With --ckpt and --score, an instrument the score does not play comes out silent."""
    entries, _ = scan(minislakh, INSTRUMENTS)
    entry = next(entry for entry in entries if entry.split == "test")
    full = pretty_midi.PrettyMIDI(str(entry.directory / "all_src.mid"))
    full.instruments = [part for part in full.instruments if part.program in range(32, 40)]  # bass only
    score = tmp_path / "bass_only.mid"
    full.write(str(score))
    for name, extra in (("learned", []), ("restricted", ["--score", str(score)])):
        code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", str(tiny_checkpoints["stage2"]), "--out",
                                   str(tmp_path / name), "--quiet", *extra], capsys)
        assert code == 0, stderr
    learned = soundfile.read(tmp_path / "learned" / "mix" / "piano.wav")[0]
    restricted = soundfile.read(tmp_path / "restricted" / "mix" / "piano.wav")[0]
    assert np.abs(learned).max() > 1e-3 and np.abs(restricted).max() == 0
    assert np.abs(soundfile.read(tmp_path / "restricted" / "mix" / "bass.wav")[0]).max() > 1e-3


def test_separate_score_errors_name_the_file(minislakh, tmp_path, capsys):
    entries, _ = scan(minislakh, INSTRUMENTS)
    entry = entries[0]
    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=0.0, end=0.5))
    drums.instruments.append(kit)
    drums_only = tmp_path / "drums.mid"
    drums.write(str(drums_only))
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--score", str(drums_only), "--out",
                               str(tmp_path / "a"), "--quiet"], capsys)
    assert code != 0 and f"{drums_only}: the score has no note of bass, guitar, piano" in last_line(stderr)
    folder = tmp_path / "scores"
    folder.mkdir()
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--score", str(folder), "--out", str(tmp_path / "b"),
                               "--quiet"], capsys)
    assert code != 0 and "no score mix.mid in --score folder" in last_line(stderr)
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--out", str(tmp_path / "c")], capsys)
    assert code != 0 and "give --ckpt" in last_line(stderr)
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", "x.ckpt", "--align", "--out",
                               str(tmp_path / "d")], capsys)
    assert code != 0 and "--align aligns a score: give --score as well" in last_line(stderr)
    other = tmp_path / "other.flac"
    shutil.copy(entry.mixture, other)
    code, _, stderr = run_cli(["separate", str(entry.mixture), str(other), "--score", str(drums_only), "--out",
                               str(tmp_path / "e")], capsys)
    assert code != 0 and "is one MIDI file but 2 inputs were given" in last_line(stderr)
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--score", str(drums_only), "--instruments", "bass",
                               "drums", "--out", str(tmp_path / "f")], capsys)
    assert code != 0 and "drums cannot be separated by score" in last_line(stderr)
    code, _, stderr = run_cli(["separate", str(entry.mixture), "--ckpt", "x.ckpt", "--instruments", "bass",
                               "--out", str(tmp_path / "g")], capsys)
    assert code != 0 and "--instruments is for separating without --ckpt" in last_line(stderr)
    assert not any((tmp_path / name).exists() for name in "abcdefg")


def test_separate_aligns_a_shifted_score_before_using_it(minislakh, tmp_path, capsys):
    entries, _ = scan(minislakh, INSTRUMENTS)
    entry = next(entry for entry in entries if entry.split == "test")
    score = pretty_midi.PrettyMIDI(str(entry.directory / "all_src.mid"))
    end = score.get_end_time() + 5
    score.adjust_times(np.array([0.0, end]), np.array([1.5, end * 1.04 + 1.5]))  # late and slow
    shifted = tmp_path / "shifted.mid"
    score.write(str(shifted))
    results = {}
    for name, extra in (("as_given", []), ("aligned", ["--align"])):
        code, _, stderr = run_cli(["separate", str(entry.mixture), "--score", str(shifted), "--out",
                                   str(tmp_path / name), "--quiet", *extra], capsys)
        assert code == 0, stderr
        reference = _sources(entry)["bass"]
        estimate = soundfile.read(tmp_path / name / "mix" / "bass.wav", dtype="float32")[0]
        results[name] = float(si_sdr(torch.from_numpy(estimate)[None].double(),
                                     torch.from_numpy(reference)[None].double()))
        if extra:
            assert "score aligned (quality" in stderr
    assert results["aligned"] > results["as_given"] + 3, results


def test_chunked_separation_with_a_score_equals_one_pass(minislakh):
    entries, _ = scan(minislakh, INSTRUMENTS)
    entry = entries[0]
    waveform = soundfile.read(entry.mixture, dtype="float32")[0]
    midi = pretty_midi.PrettyMIDI(str(entry.directory / "all_src.mid"))
    frames = 1 + len(waveform) // 256
    rolls, counts = score_rolls(midi, INSTRUMENTS, frames, 16_000 / 256, 21, 108)
    assert sum(counts.values()) > 0
    whole = Separator.from_score(FEATURES, chunk_seconds=100.0, device="cpu").separate_source(
        ArraySource(waveform, 16_000), score=rolls)
    chunked = Separator.from_score(FEATURES, chunk_seconds=0.37, device="cpu").separate_source(
        ArraySource(waveform, 16_000), score=rolls)
    assert np.abs(whole - chunked).max() < 1e-5
