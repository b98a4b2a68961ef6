"""``scoresep pack`` (score-only datasets from a user's recordings and MIDI scores, aligned), training on them with
``experiments/adapt.yaml``, and the alignment itself on known warps.

The recordings are the project's own mini-Slakh mixtures with their stems left behind; the scores are the songs'
MIDI moved by known amounts (up to 2 s later or earlier, up to 5 % slower or faster), as a MIDI file from the web
would be.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import yaml

from scoresep.cli import main
from scoresep.data.align import align_score, warp_score
from scoresep.data.audio import read_audio
from scoresep.data.cache import load_index, prepare
from scoresep.data.midi import load_midi
from scoresep.data.pack import split_labels
from scoresep.data.slakh import scan
from tests.helpers import run_cli

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
INSTRUMENTS = ("bass", "guitar", "piano")
# (shift s, stretch) per song: later and earlier starts up to 2 s, tempo off by up to 5 %
WARPS = [(0.0, 1.0), (2.0, 1.05), (-1.0, 0.95), (1.5, 1.0), (0.5, 1.03), (-0.5, 1.02), (1.0, 0.97), (0.25, 1.05),
         (-2.0, 1.0), (0.75, 0.96)]


def _tracks(root: Path) -> list[Path]:
    return sorted(path for split in ("train", "validation", "test") if (root / split).is_dir()
                  for path in (root / split).iterdir())


def _warped(midi: pretty_midi.PrettyMIDI, shift: float, stretch: float) -> pretty_midi.PrettyMIDI:
    """``midi`` with every event at ``max(0, t * stretch + shift)`` (a score out of time with the recording)."""
    moved = copy.deepcopy(midi)
    end = midi.get_end_time() + 10.0
    moved.adjust_times(np.array([0.0, end]), np.array([0.0, end * stretch]))
    for instrument in moved.instruments:
        for note in instrument.notes:
            note.start, note.end = max(0.0, note.start + shift), max(0.01, note.end + shift)
        instrument.notes = [note for note in instrument.notes if note.end > note.start]
    return moved


@pytest.fixture(scope="module")
def recordings(minislakh, tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    """``(audio folder, MIDI folder, {song: its track folder})``: the 10 mini-Slakh mixtures as song0..9.flac and
    their scores as song0..9.mid, moved by ``WARPS``; the stems are not copied."""
    folder = tmp_path_factory.mktemp("recordings")
    audio, scores = folder / "audio", folder / "midi"
    audio.mkdir()
    scores.mkdir()
    sources = {}
    for number, (track, (shift, stretch)) in enumerate(zip(_tracks(minislakh), WARPS, strict=True)):
        name = f"song{number}"
        shutil.copy(track / "mix.flac", audio / f"{name}.flac")
        _warped(load_midi(track / "all_src.mid"), shift, stretch).write(str(scores / f"{name}.mid"))
        sources[name] = track
    return audio, scores, sources


@pytest.fixture(scope="module")
def packed(recordings, tmp_path_factory) -> tuple[Path, int, str, str]:
    """``(dataset, exit status, stdout, stderr)`` of ``scoresep pack AUDIO --midi MIDI --out DATASET --align``."""
    audio, scores, _ = recordings
    out = tmp_path_factory.mktemp("packed") / "dataset"
    stdout, stderr = io.StringIO(), io.StringIO()  # capsys is per test; this fixture is per module
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["pack", str(audio), "--midi", str(scores), "--out", str(out), "--align", "--quiet"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return out, code, stdout.getvalue(), stderr.getvalue()


def _onset_errors(truth: pretty_midi.PrettyMIDI, aligned: pretty_midi.PrettyMIDI) -> np.ndarray:
    """|onset difference| of every note of the original score and the aligned one, matched by instrument and
    (onset-sorted) position; notes a warp moved before time 0 are compared where both scores still have them."""
    errors = []
    by_program = {(i.program, i.is_drum): i for i in aligned.instruments}
    for instrument in truth.instruments:
        if instrument.is_drum:
            continue
        other = by_program[(instrument.program, instrument.is_drum)]
        mine = np.sort([note.start for note in instrument.notes])
        theirs = np.sort([note.start for note in other.notes])
        count = min(len(mine), len(theirs))
        errors.append(np.abs(mine[-count:] - theirs[-count:]))
    return np.concatenate(errors)


def test_pack_aligns_every_score_within_50_ms_and_prepare_indexes_a_score_only_dataset(packed, recordings,
                                                                                        tmp_path):
    out, code, stdout, stderr = packed
    assert code == 0, stderr
    assert "packed 10 track(s)" in stdout
    _, _, sources = recordings
    tracks = _tracks(out)
    assert [track.parent.name for track in tracks].count("train") == 8
    assert {track.parent.name for track in tracks} == {"train", "validation", "test"}
    medians = []
    for track in tracks:
        metadata = yaml.safe_load((track / "metadata.yaml").read_text())
        assert not (track / "stems").exists() and (track / "mix.flac").is_file()
        assert metadata["source"]["aligned"] and metadata["source"]["alignment_quality"] >= 0.65
        song = Path(metadata["source"]["audio"]).stem
        original = load_midi(sources[song] / "all_src.mid")
        medians.append(float(np.median(_onset_errors(original, load_midi(track / "all_src.mid")))))
        programs = {stem["program_num"] for stem in metadata["stems"].values()}
        assert programs == {inst.program for inst in original.instruments if inst.notes}
    assert max(medians) < 0.050, medians  # every track, not only on average
    entries, problems = scan(out, INSTRUMENTS)
    assert len(entries) == 10 and not problems and not any(entry.has_sources for entry in entries)
    cache = prepare(out, tmp_path / "cache", INSTRUMENTS, 16_000, 256, 21, 108, workers=1, progress=False)
    records = load_index(cache)["tracks"]
    assert len(records) == 10 and not any(record["has_sources"] for record in records)
    index = (out / "pack.json").read_text()
    assert '"aligned": true' in index and '"skipped": []' in index


def test_pack_again_reuses_every_finished_track(packed, recordings, capsys):
    out, _, _, _ = packed
    audio, scores, _ = recordings
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file() and path.name != "pack.json"}
    code, stdout, stderr = run_cli(["pack", str(audio), "--midi", str(scores), "--out", str(out), "--align",
                                    "--quiet"], capsys)
    assert code == 0, stderr
    assert "10 already there, 0 new" in stdout
    after = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file() and path.name != "pack.json"}
    assert after == before


def test_adapt_yaml_trains_on_the_packed_score_only_dataset(packed, recordings, tiny_checkpoints, tmp_path,
                                                           monkeypatch):
    """The run trains on score-only tracks; validation reports the losses (no stems: no SI-SDR); on validation
    tracks that have stems (the original mini-Slakh) it reports SI-SDR too."""
    out, _, _, _ = packed
    monkeypatch.setattr("sys.argv", ["scoresep"])

    def fit(root: Path, name: str) -> dict[str, str]:
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)  # checkpoints/adapt/ of this run
        main(["fit", "--config", str(EXPERIMENTS / "adapt.yaml"), "--data.root", str(root),
              "--data.cache_dir", str(tmp_path / "cache"), "--data.segment_seconds", "1.0", "--data.batch_size", "2",
              "--model.init_args.separator_checkpoint", str(tiny_checkpoints["stage2"]),
              "--model.init_args.log_media=false", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
              "--trainer.limit_train_batches=2", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
              "--trainer.logger=pytorch_lightning.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path / name}"])
        rows = list(csv.DictReader(next((tmp_path / name).rglob("metrics.csv")).open()))
        return {key: value for row in rows for key, value in row.items() if value}

    score_only = fit(out, "score_only")
    assert "train/separator/score" in score_only and "train/transcriptor/transcription" in score_only
    assert float(score_only["val/loss"]) > 0 and "val/transcriptor_loss" in score_only
    assert "val/si_sdr" not in score_only
    assert (tmp_path / "score_only" / "checkpoints" / "adapt" / "best.ckpt").is_file()
    with_stems = fit(packed_with_stems(out, tmp_path, recordings[2]), "with_stems")
    assert "val/loss" in with_stems and "val/si_sdr" in with_stems


def packed_with_stems(packed_root: Path, tmp_path: Path, sources: dict[str, Path]) -> Path:
    """The packed dataset with its validation track's stems put back from the mini-Slakh track it was made of."""
    root = tmp_path / "mixed"
    shutil.copytree(packed_root, root)
    for track in (root / "validation").iterdir():
        metadata = yaml.safe_load((track / "metadata.yaml").read_text())
        original = sources[Path(metadata["source"]["audio"]).stem]
        shutil.copytree(original / "stems", track / "stems")
        shutil.rmtree(track / "MIDI")
        shutil.copytree(original / "MIDI", track / "MIDI")
        metadata["stems"] = yaml.safe_load((original / "metadata.yaml").read_text())["stems"]
        (track / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    return root


def test_bad_pairs_get_one_line_each_and_the_others_are_still_packed(minislakh, tmp_path, capsys):
    audio, scores = tmp_path / "audio", tmp_path / "midi"
    audio.mkdir()
    scores.mkdir()
    tracks = _tracks(minislakh)
    shutil.copy(tracks[0] / "mix.flac", audio / "good.flac")
    shutil.copy(tracks[0] / "all_src.mid", scores / "good.mid")
    shutil.copy(tracks[1] / "mix.flac", audio / "unreadable.flac")
    (scores / "unreadable.mid").write_bytes(b"MThd this is not MIDI")
    shutil.copy(tracks[2] / "mix.flac", audio / "no_notes.flac")
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(program=0))
    empty.write(str(scores / "no_notes.mid"))
    soundfile.write(audio / "short.wav", np.zeros(200, dtype=np.float32), 16_000)
    shutil.copy(tracks[3] / "all_src.mid", scores / "short.mid")
    shutil.copy(tracks[4] / "mix.flac", audio / "no_score.flac")
    shutil.copy(tracks[5] / "mix.flac", audio / "wrong_score.flac")
    shutil.copy(tracks[6] / "all_src.mid", scores / "wrong_score.mid")  # another song's score: alignment is poor
    soundfile.write(audio / "silent.wav", np.zeros(3 * 16_000, dtype=np.float32), 16_000)
    shutil.copy(tracks[7] / "all_src.mid", scores / "silent.mid")
    out = tmp_path / "dataset"
    code, stdout, stderr = run_cli(["pack", str(audio), "--midi", str(scores), "--out", str(out), "--align",
                                    "--quiet"], capsys)
    assert code != 0
    assert "packed 1 track(s)" in stdout
    lines = [line for line in stderr.splitlines() if line.startswith("scoresep pack: skipped: ")]
    assert len(lines) == 6, stderr
    expected = {"unreadable.mid": "cannot parse MIDI", "no_notes.mid": "holds no (pitched) notes",
                "short.wav": "shorter than one analysis window", "no_score.flac": "no MIDI file no_score.mid",
                "wrong_score.mid": "alignment to wrong_score.flac is poor", "silent.mid": "silent"}
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in lines), (name, stderr)
    assert len(_tracks(out)) == 1 and not (out / ".incoming").exists()


def test_without_align_a_score_of_another_length_is_skipped_and_a_matching_one_packed(minislakh, tmp_path, capsys):
    audio, scores = tmp_path / "audio", tmp_path / "midi"
    audio.mkdir()
    scores.mkdir()
    tracks = _tracks(minislakh)
    for name, track, stretch in (("same", tracks[0], 1.0), ("slower", tracks[1], 1.5)):
        shutil.copy(track / "mix.flac", audio / f"{name}.flac")
        _warped(load_midi(track / "all_src.mid"), 0.0, stretch).write(str(scores / f"{name}.mid"))
    code, stdout, stderr = run_cli(["pack", str(audio), "--midi", str(scores), "--out", str(tmp_path / "ds"),
                                    "--quiet"], capsys)
    assert code != 0 and "packed 1 track(s)" in stdout
    assert "slower.mid: recording and score lengths differ by" in stderr and "give --align" in stderr


def test_alignment_undoes_a_known_warp(minislakh):
    track = _tracks(minislakh)[0]
    waveform, rate = read_audio(track / "mix.flac")
    truth = load_midi(track / "all_src.mid")
    alignment = align_score(waveform, rate, _warped(truth, 1.2, 1.04))
    assert alignment.quality > 0.65
    aligned = warp_score(_warped(truth, 1.2, 1.04), alignment)
    assert np.median(_onset_errors(truth, aligned)) < 0.05


def test_split_labels_follow_the_fractions_and_the_seed():
    labels = split_labels(10, (0.8, 0.1, 0.1), seed=0)
    assert labels.count("train") == 8 and labels.count("validation") == 1 and labels.count("test") == 1
    assert labels == split_labels(10, (0.8, 0.1, 0.1), seed=0) != split_labels(10, (0.8, 0.1, 0.1), seed=1)
    assert split_labels(2, (0.8, 0.1, 0.1), seed=0) == ["train", "train"]
    assert split_labels(5, (1.0, 0.0, 0.0), seed=0) == ["train"] * 5


def _four_songs(minislakh: Path, folder: Path) -> tuple[Path, Path]:
    """Four mini-Slakh mixtures and their own (unmoved) scores as song0..3."""
    audio, scores = folder / "audio", folder / "midi"
    audio.mkdir(parents=True)
    scores.mkdir()
    for number, track in enumerate(_tracks(minislakh)[:4]):
        shutil.copy(track / "mix.flac", audio / f"song{number}.flac")
        shutil.copy(track / "all_src.mid", scores / f"song{number}.mid")
    return audio, scores


def _layout(out: Path) -> dict[str, str]:
    """Track name -> split of a dataset."""
    return {track.name: track.parent.name for track in _tracks(out)}


def test_repacking_follows_the_inputs_keeps_names_and_never_leaves_half_tracks(minislakh, tmp_path, monkeypatch):
    from scoresep.data import pack as pack_module

    audio, scores = _four_songs(minislakh, tmp_path)
    out = tmp_path / "dataset"
    real_pack_pair, calls = pack_module.pack_pair, []

    def interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third track is being packed
        return real_pack_pair(*args, **kwargs)

    monkeypatch.setattr(pack_module, "pack_pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack_module.pack([audio], scores, out, progress=False)
    assert _tracks(out) == []  # nothing half-done among the tracks: the two finished ones wait in .incoming
    monkeypatch.setattr(pack_module, "pack_pair", real_pack_pair)
    result = pack_module.pack([audio], scores, out, progress=False)
    assert result.reused == 2 and len(result.packed) == 4 and not result.skipped
    assert not (out / ".incoming").exists()
    layout = _layout(out)
    assert sorted(layout) == ["Track00001", "Track00002", "Track00003", "Track00004"]

    # Moved recordings are the same tracks; a changed score is packed again under its name and split.
    moved = tmp_path / "moved"
    shutil.copytree(audio, moved)
    changed = load_midi(scores / "song1.mid")
    changed.instruments = changed.instruments[:1]
    changed.write(str(scores / "song1.mid"))
    result = pack_module.pack([moved], scores, out, progress=False)
    assert result.reused == 3 and len(result.packed) == 4 and _layout(out) == layout
    record = next(r for r in result.packed if r["audio"].endswith("song1.flac"))
    metadata = yaml.safe_load((out / record["split"] / record["track"] / "metadata.yaml").read_text())
    assert len(metadata["stems"]) == 1 and record["audio"] == str((moved / "song1.flac").resolve())

    # A packed track that no longer passes this run's checks is removed, with the reason.
    result = pack_module.pack([moved], scores, out, instruments=("strings",), progress=False)
    assert not result.packed and len(result.skipped) == 4 and _tracks(out) == []
    assert all("holds none of the configured instruments ['strings']" in s.reason and "removed" in s.reason
               for s in result.skipped)


def test_packing_into_a_dataset_made_otherwise_takes_new_names(minislakh_copy, tmp_path, capsys):
    before = _layout(minislakh_copy)
    audio, scores = _four_songs(minislakh_copy, tmp_path)
    code, stdout, stderr = run_cli(["pack", str(audio), "--midi", str(scores), "--out", str(minislakh_copy),
                                    "--quiet"], capsys)
    assert code == 0, stderr
    after = _layout(minislakh_copy)
    assert {name: after[name] for name in before} == before and len(after) == len(before) + 4
    assert min(int(name[5:]) for name in set(after) - set(before)) > max(int(name[5:]) for name in before)
    entries, problems = scan(minislakh_copy, INSTRUMENTS)
    assert not problems and sum(not entry.has_sources for entry in entries) == 4


def test_score_masks_cannot_be_scored_on_score_only_tracks(packed, tmp_path, capsys):
    out, _, _, _ = packed
    code, _, stderr = run_cli(["evaluate", "--score-masks", "--data", str(out), "--cache", str(tmp_path / "cache"),
                               "--mixture", "full", "--split", "train", "--out", str(tmp_path / "x.json"), "--quiet"],
                              capsys)
    assert code != 0 and "no 'train' track has stems to score the score masks against" in stderr
    assert not (tmp_path / "x.json").exists()
