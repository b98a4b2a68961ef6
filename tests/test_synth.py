import numpy as np
import pretty_midi
import pytest
import soundfile
import yaml

from scoresep.data.midi import load_midi, midi_notes, piano_roll
from scoresep.data.synth import Song, StemPart, compose_song, default_soundfont, synthesise, write_track

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
