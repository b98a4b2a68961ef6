import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import yaml

from scoresep.cli import main
from scoresep.data.midi import load_midi, midi_notes, piano_roll
from scoresep.data.synth import (
    SYSTEM_SOUNDFONTS,
    Song,
    StemPart,
    available_soundfonts,
    compose_song,
    default_soundfont,
    resolve_soundfonts,
    synthesise,
    write_track,
)

STEM_KEYS = {"inst_class", "program_num", "midi_program_name", "is_drum", "audio_rendered", "midi_saved",
             "plugin_name", "integrated_loudness"}


def _tracks(root):
    return sorted(p for split in ("train", "validation", "test") for p in (root / split).glob("Track*"))


def test_layout_and_metadata_follow_slakh(minislakh):
    tracks = _tracks(minislakh)
    assert len(tracks) == 10
    assert {t.parent.name for t in tracks} == {"train", "validation", "test"}
    for track in tracks:
        metadata = yaml.safe_load((track / "metadata.yaml").read_text())
        assert {"UUID", "audio_dir", "midi_dir", "stems"} <= set(metadata)
        assert (track / "mix.flac").is_file() and (track / "all_src.mid").is_file()
        for stem_id, stem in metadata["stems"].items():
            assert STEM_KEYS <= set(stem), stem_id
            assert (track / "stems" / f"{stem_id}.flac").is_file()
            assert (track / "MIDI" / f"{stem_id}.mid").is_file()
            if stem["inst_class"] == "Bass":
                assert 32 <= stem["program_num"] <= 39
            if stem["inst_class"] == "Guitar":
                assert 24 <= stem["program_num"] <= 31
            if stem["inst_class"] == "Piano":
                assert 0 <= stem["program_num"] <= 7


def test_mixture_is_exactly_the_sum_of_stems(minislakh):
    for track in _tracks(minislakh):
        mix, rate = soundfile.read(track / "mix.flac", dtype="int16")
        stems = [soundfile.read(p, dtype="int16")[0].astype(np.int32) for p in sorted((track / "stems").glob("*"))]
        assert rate == 16_000 and mix.shape == (6 * 16_000,)
        assert np.array_equal(mix.astype(np.int32), np.sum(stems, axis=0))
        assert 0.5 < np.abs(mix).max() / 32767 <= 0.91


def test_rolls_line_up_with_the_rendered_audio_energy(tmp_path):
    """Each note's roll onset is the frame where its rendered audio's energy rises (within one frame)."""
    hop, rate = 256, 16_000
    parts = []
    for program, pitch, inst_class in ((33, 40, "Bass"), (25, 60, "Guitar"), (0, 72, "Piano")):
        instrument = pretty_midi.Instrument(program=program)
        for k in range(5):  # 0.4 s notes every 1.0 s (0.6 s of silence before each onset), odd offsets
            onset = 0.3 + k * 1.0 + 0.013 * k
            instrument.notes.append(pretty_midi.Note(100, pitch + k, onset, onset + 0.4))
        parts.append(StemPart(instrument, inst_class))
    write_track(tmp_path / "Track00001", Song(parts, 120.0, 6.0), rate, default_soundfont())
    for stem_id in ("S00", "S01", "S02"):
        audio, _ = soundfile.read(tmp_path / "Track00001" / "stems" / f"{stem_id}.flac", dtype="float32")
        frames = 1 + audio.size // hop
        roll = piano_roll(midi_notes(load_midi(tmp_path / "Track00001" / "MIDI" / f"{stem_id}.mid")), frames,
                          rate / hop)
        padded = np.pad(audio, (hop, hop))
        energy = np.array([np.mean(padded[n * hop : n * hop + 2 * hop] ** 2) for n in range(frames)])
        sounding = roll.any(axis=0)
        onsets = np.flatnonzero(sounding[1:] & ~sounding[:-1]) + 1
        assert len(onsets) == 5
        for onset in onsets:
            before, during = energy[onset - 12 : onset - 2].mean(), energy[onset + 1 : onset + 5].mean()
            assert during > 10 * before, (stem_id, onset)
            peak = energy[onset : onset + 10].max()
            rise = onset - 4 + int(np.argmax(energy[onset - 4 : onset + 10] > 0.1 * peak))
            assert abs(rise - onset) <= 1, (stem_id, onset, rise)


def test_same_seed_same_dataset(tmp_path):
    first = synthesise(tmp_path / "a", tracks=3, seconds=3.0, seed=7, workers=1, progress=False)
    second = synthesise(tmp_path / "b", tracks=3, seconds=3.0, seed=7, workers=2, progress=False)
    assert first == second
    for track_a in _tracks(tmp_path / "a"):
        track_b = tmp_path / "b" / track_a.relative_to(tmp_path / "a")
        assert np.array_equal(soundfile.read(track_a / "mix.flac")[0], soundfile.read(track_b / "mix.flac")[0])
        assert (track_a / "metadata.yaml").read_text() == (track_b / "metadata.yaml").read_text()


def test_composition_has_overlapping_parts_absent_targets_and_distractors():
    songs = [compose_song(seed=0, index=i, seconds=20.0) for i in range(40)]
    classes = [[part.inst_class for part in song.parts] for song in songs]
    assert any(len({"Bass", "Guitar", "Piano"} - set(c)) == 1 for c in classes), "some track lacks one target"
    assert any("Drums" in c for c in classes) and any("Strings (continued)" in c for c in classes)
    assert any("Synth Lead" in c for c in classes)
    ranges = {}
    for song in songs:
        for part in song.parts:
            pitches = [n.pitch for n in part.instrument.notes]
            if pitches and not part.instrument.is_drum:
                low, high = ranges.get(part.inst_class, (127, 0))
                ranges[part.inst_class] = (min(low, *pitches), max(high, *pitches))
    assert ranges["Guitar"][0] < ranges["Piano"][1] and ranges["Piano"][0] < ranges["Guitar"][1]
    assert ranges["Bass"][1] > ranges["Guitar"][0] - 12  # bass reaches up near the guitar
    tempos = {song.tempo for song in songs}
    assert len(tempos) > 10


def test_midi_dir_renders_user_files(tmp_path):
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    for index in range(3):
        midi = pretty_midi.PrettyMIDI()
        bass = pretty_midi.Instrument(program=33)
        piano = pretty_midi.Instrument(program=0)
        for k in range(8):
            bass.notes.append(pretty_midi.Note(90, 40 + index, k * 0.5, k * 0.5 + 0.4))
            piano.notes.append(pretty_midi.Note(80, 64 + k, k * 0.5, k * 0.5 + 0.45))
        midi.instruments += [bass, piano]
        midi.write(str(midi_dir / f"song{index}.mid"))
    synthesise(tmp_path / "out", tracks=10, seconds=None, seed=0, midi_dir=midi_dir, workers=1, progress=False)
    tracks = _tracks(tmp_path / "out")
    assert len(tracks) == 3
    metadata = yaml.safe_load((tracks[0] / "metadata.yaml").read_text())
    assert [s["inst_class"] for s in metadata["stems"].values()] == ["Bass", "Piano"]
    assert metadata["lmd_midi_dir"].endswith(".mid")
    mix, _ = soundfile.read(tracks[0] / "mix.flac")
    assert mix.size == round(3.95 * 16_000)  # the whole file: its last note ends at 3.95 s


def test_midi_dir_with_a_broken_file_names_it(tmp_path):
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    (midi_dir / "broken.mid").write_bytes(b"MThd not really a midi file")
    with pytest.raises(Exception, match="broken.mid"):
        synthesise(tmp_path / "out", tracks=1, seconds=None, midi_dir=midi_dir, workers=1, progress=False)


# ----------------------------------------------------------------------------------------------- soundfonts
FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
DEBIAN_SOUNDFONTS = [
    pytest.param(FLUID_R3, marks=pytest.mark.skipif(not FLUID_R3.is_file(), reason=f"{FLUID_R3} absent "
                 "(apt-get install --no-install-recommends fluid-soundfont-gm, or make install as root)")),
    pytest.param(MUSESCORE, marks=pytest.mark.skipif(not MUSESCORE.is_file(), reason=f"{MUSESCORE} absent "
                 "(apt-get install --no-install-recommends musescore-general-soundfont, or make install as root)")),
]


def _copies_of_timgm(folder: Path, *names: str) -> list[Path]:
    """Distinct soundfont files without the Debian packages: copies of TimGM6mb under other names."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = [folder / name for name in names]
    for copy in copies:
        shutil.copyfile(default_soundfont(), copy)
    return copies


def _metadata(track: Path) -> dict:
    return yaml.safe_load((track / "metadata.yaml").read_text())


@pytest.mark.parametrize("other", DEBIAN_SOUNDFONTS, ids=lambda path: path.name)
def test_another_soundfont_renders_the_same_score_differently(tmp_path, other):
    """Same notes, another timbre: the stems differ from TimGM6mb's, the render repeats and the mix stays exact."""
    parts = []
    for program, pitch, inst_class in ((33, 40, "Bass"), (0, 67, "Piano")):
        instrument = pretty_midi.Instrument(program=program)
        instrument.notes += [pretty_midi.Note(100, pitch + k, 0.1 + 0.5 * k, 0.5 + 0.5 * k) for k in range(3)]
        parts.append(StemPart(instrument, inst_class))
    song = Song(parts, 120.0, 2.0)
    audio = {}
    for name, soundfont in (("timgm", default_soundfont()), ("other", other), ("again", other)):
        write_track(tmp_path / name, song, 16_000, soundfont)
        stems = [soundfile.read(p, dtype="int16")[0] for p in sorted((tmp_path / name / "stems").glob("*.flac"))]
        mix, _ = soundfile.read(tmp_path / name / "mix.flac", dtype="int16")
        assert np.array_equal(mix.astype(np.int32), np.sum([s.astype(np.int32) for s in stems], axis=0))
        assert all(np.sqrt(np.mean(s.astype(np.float64) ** 2)) > 100 for s in stems), name  # not silent
        audio[name] = np.stack(stems)
        metadata = _metadata(tmp_path / name)
        assert metadata["soundfont"] == soundfont.name and soundfont.name in metadata["synthesizer"]
        assert {stem["plugin_name"] for stem in metadata["stems"].values()} == {soundfont.name}
    assert np.array_equal(audio["other"], audio["again"])
    for timgm, other_stem in zip(audio["timgm"], audio["other"], strict=True):
        correlation = np.corrcoef(timgm.astype(np.float64), other_stem.astype(np.float64))[0, 1]
        assert correlation < 0.9, correlation


def test_per_song_soundfont_draw_is_seeded_and_recorded(tmp_path):
    fonts = _copies_of_timgm(tmp_path / "sf", "Alpha.sf2", "Beta.sf2", "Gamma.sf2")
    first = synthesise(tmp_path / "a", tracks=6, seconds=1.0, seed=3, soundfonts=fonts, workers=1, progress=False)
    second = synthesise(tmp_path / "b", tracks=6, seconds=1.0, seed=3, soundfonts=fonts, workers=2, progress=False)
    assert first == second
    plan = resolve_soundfonts(fonts)
    used = set()
    for track in _tracks(tmp_path / "a"):
        metadata = _metadata(track)
        expected = plan.pick(3, int(track.name[5:]) - 1, track.parent.name)
        assert metadata["soundfont"] == expected.name and metadata["soundfont_path"] == str(expected)
        assert metadata["synthesizer"].endswith(f"(FluidSynth, {expected.name})")
        assert {stem["plugin_name"] for stem in metadata["stems"].values()} == {expected.name}
        assert metadata["soundfont_held_out"] is False
        used.add(metadata["soundfont"])
        twin = tmp_path / "b" / track.relative_to(tmp_path / "a")
        assert (track / "metadata.yaml").read_text() == (twin / "metadata.yaml").read_text()
    assert len(used) >= 2, used  # seed 3 draws more than one of the three for 6 tracks
    recorded = {t.name: _metadata(t)["soundfont"] for t in _tracks(tmp_path / "a")}
    assert {summary["track"]: summary["soundfont"] for summary in first} == recorded


def test_one_soundfont_keeps_the_single_soundfont_dataset(tmp_path):
    """The old call (soundfont=PATH) and the list with only that file give the same bytes."""
    synthesise(tmp_path / "old", tracks=3, seconds=1.0, seed=5, soundfont=default_soundfont(), workers=1,
               progress=False)
    synthesise(tmp_path / "new", tracks=3, seconds=1.0, seed=5, soundfonts=["default"], workers=1, progress=False)
    for track in _tracks(tmp_path / "old"):
        twin = tmp_path / "new" / track.relative_to(tmp_path / "old")
        assert np.array_equal(soundfile.read(track / "mix.flac")[0], soundfile.read(twin / "mix.flac")[0])
        assert _metadata(track)["soundfont"] == "TimGM6mb.sf2"


def test_a_missing_soundfont_is_one_error_naming_it_before_any_render(tmp_path):
    missing = tmp_path / "nowhere" / "Missing.sf2"
    with pytest.raises(FileNotFoundError, match=r"Missing\.sf2: soundfont not found") as caught:
        synthesise(tmp_path / "out", tracks=3, seconds=1.0, soundfonts=["default", missing], workers=1,
                   progress=False)
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match=r"Held\.sf2: soundfont not found"):
        synthesise(tmp_path / "out", tracks=3, seconds=1.0, test_soundfont=tmp_path / "Held.sf2", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_file_fluidsynth_cannot_render_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "Broken.sf2"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00sfbk not a soundfont")
    with pytest.raises(ValueError, match=r"Broken\.sf2: renders silence"):
        resolve_soundfonts([broken])


def test_held_out_test_soundfont_is_used_by_test_tracks_only(tmp_path):
    train_a, train_b, held = _copies_of_timgm(tmp_path / "sf", "TrainA.sf2", "TrainB.sf2", "Held.sf2")
    # the held-out one listed among the training ones too: it is left out of train/validation
    synthesise(tmp_path / "out", tracks=10, seconds=1.0, seed=0, soundfonts=[train_a, train_b, held],
               test_soundfont=held, workers=1, progress=False)
    by_split: dict[str, set[str]] = {}
    for track in _tracks(tmp_path / "out"):
        metadata = _metadata(track)
        by_split.setdefault(track.parent.name, set()).add(metadata["soundfont"])
        assert metadata["soundfont_held_out"] is (track.parent.name == "test")
    assert by_split["test"] == {"Held.sf2"}
    assert "Held.sf2" not in by_split["train"] | by_split["validation"]
    assert by_split["train"] <= {"TrainA.sf2", "TrainB.sf2"}
    with pytest.raises(ValueError, match="only training soundfont"):
        resolve_soundfonts([held], test_soundfont=held)


def test_synth_command_takes_repeated_and_held_out_soundfonts(tmp_path, capsys):
    train_a, train_b, held = _copies_of_timgm(tmp_path / "sf", "TrainA.sf2", "TrainB.sf2", "Held.sf2")
    out = tmp_path / "out"
    main(["synth", "--out", str(out), "--tracks", "4", "--seconds", "1", "--seed", "1", "--workers", "1",
          "--soundfont", str(train_a), "--soundfont", str(train_b), "--test-soundfont", str(held)])
    splits = {t.parent.name: _metadata(t)["soundfont"] for t in _tracks(out) if t.parent.name == "test"}
    assert splits == {"test": "Held.sf2"}
    assert {_metadata(t)["soundfont"] for t in _tracks(out) if t.parent.name != "test"} <= {"TrainA.sf2",
                                                                                             "TrainB.sf2"}
    with pytest.raises(SystemExit) as caught:
        main(["synth", "--out", str(tmp_path / "x"), "--soundfonts", "all", "--test-soundfont",
              str(tmp_path / "Gone.sf3")])
    assert caught.value.code == 1
    assert "Gone.sf3: soundfont not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_available_soundfonts_lists_timgm_first_and_installed_gm_soundfonts():
    found = available_soundfonts()
    assert found[0] == default_soundfont()
    assert [p for p in found[1:]] == [p for p in SYSTEM_SOUNDFONTS if p.is_file() and p in found]
    for path in (FLUID_R3, MUSESCORE):
        if path.is_file():  # Debian's libfluidsynth3 reads .sf3 (libsndfile + Vorbis): both must be listed
            assert path in found
    assert list(resolve_soundfonts("all").train) == found
