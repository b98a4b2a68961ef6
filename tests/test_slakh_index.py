import logging
import shutil

import pytest
import soundfile
import yaml

from scoresep.data.slakh import DatasetError, known_issues, scan
from scoresep.instruments import instrument_of

INSTRUMENTS = ("bass", "guitar", "piano")


def _metadata(track):
    return yaml.safe_load((track / "metadata.yaml").read_text())


def _write_metadata(track, metadata):
    (track / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))


def _first_track(root, split="train"):
    return sorted((root / split).glob("Track*"))[0]


def _stem_of(track, inst_class):
    return next(sid for sid, s in _metadata(track)["stems"].items() if s["inst_class"] == inst_class)


def test_minislakh_index_groups_stems_by_class(minislakh):
    tracks, problems = scan(minislakh, INSTRUMENTS)
    assert problems == [] and len(tracks) == 10
    for entry in tracks:
        metadata = _metadata(entry.directory)
        assert entry.has_sources
        for name in INSTRUMENTS:
            expected = sorted(sid for sid, s in metadata["stems"].items() if s["inst_class"].lower() == name)
            assert [s.stem_id for s in entry.sources[name]] == expected
        assert all(not s.is_drum for stems in entry.sources.values() for s in stems)


@pytest.mark.parametrize(
    ("inst_class", "program", "is_drum", "expected"),
    [
        ("Bass", 33, False, "bass"),
        (" guitar ", 25, False, "guitar"),
        ("Strings (continued)", 52, False, "ensemble"),
        ("Sound effects", 120, False, "sound_effects"),
        ("Sound Effects", 100, False, "sound_effects"),
        (None, 34, False, "bass"),  # no class: GM program decides
        ("Made-up class", 2, False, "piano"),
        ("Drums", 128, True, "drums"),
        ("Piano", 0, True, "drums"),
    ],
)
def test_inst_class_spellings_and_program_fallback(inst_class, program, is_drum, expected):
    assert instrument_of(inst_class, program, is_drum) == expected


def test_babyslakh_flat_wav_layout_with_false_flags(minislakh, tmp_path):
    """BabySlakh: flat TrackNNNNN folders, WAV files, every audio_rendered/midi_saved flag false."""
    root = tmp_path / "babyslakh_16k"
    sources = sorted((minislakh / "train").glob("Track*"))[:4]
    for source in sources:
        target = root / source.name
        shutil.copytree(source, target)
        for flac in list(target.rglob("*.flac")):
            audio, rate = soundfile.read(flac, dtype="int16")
            soundfile.write(flac.with_suffix(".wav"), audio, rate, subtype="PCM_16")
            flac.unlink()
        metadata = _metadata(target)
        for stem in metadata["stems"].values():
            stem["audio_rendered"] = stem["midi_saved"] = False
        _write_metadata(target, metadata)
    tracks, problems = scan(root, INSTRUMENTS)
    assert problems == [] and len(tracks) == 4
    assert {t.split for t in tracks} <= {"train", "validation", "test"}
    assert all(t.has_sources and t.mixture.suffix == ".wav" for t in tracks)
    assert sum(len(s) for t in tracks for s in t.sources.values()) > 8


def test_several_stems_of_one_class_form_one_source(minislakh_copy):
    track = _first_track(minislakh_copy)
    metadata = _metadata(track)
    guitar = _stem_of(track, "Guitar")
    shutil.copy(track / "stems" / f"{guitar}.flac", track / "stems" / "S09.flac")
    shutil.copy(track / "MIDI" / f"{guitar}.mid", track / "MIDI" / "S09.mid")
    metadata["stems"]["S09"] = dict(metadata["stems"][guitar], inst_class="Guitar")
    _write_metadata(track, metadata)
    entry = next(t for t in scan(minislakh_copy, INSTRUMENTS)[0] if t.track == track.name)
    assert [s.stem_id for s in entry.sources["guitar"]] == sorted([guitar, "S09"])


def test_score_only_track_is_valid_without_sources(minislakh_copy):
    track = _first_track(minislakh_copy)
    shutil.rmtree(track / "stems")
    tracks, problems = scan(minislakh_copy, INSTRUMENTS)
    entry = next(t for t in tracks if t.track == track.name)
    assert problems == []
    assert not entry.has_sources
    assert entry.instruments and all(s.audio is None for stems in entry.sources.values() for s in stems)


def test_missing_metadata_is_named(minislakh_copy, caplog):
    track = _first_track(minislakh_copy)
    (track / "metadata.yaml").unlink()
    with caplog.at_level(logging.WARNING):
        tracks, problems = scan(minislakh_copy, INSTRUMENTS)
    assert track.name not in {t.track for t in tracks}
    assert f"{track / 'metadata.yaml'}: metadata.yaml is missing" in caplog.text
    with pytest.raises(DatasetError, match=f"{track.name}/metadata.yaml: metadata.yaml is missing"):
        scan(minislakh_copy, INSTRUMENTS, strict=True)


def test_unparsable_metadata_is_named(minislakh_copy):
    track = _first_track(minislakh_copy)
    (track / "metadata.yaml").write_text("stems: [unclosed")
    with pytest.raises(DatasetError, match=f"{track.name}/metadata.yaml: cannot parse metadata.yaml"):
        scan(minislakh_copy, INSTRUMENTS, strict=True)


def test_stem_listed_but_missing_on_disk_is_reported_and_left_out(minislakh_copy, caplog):
    track = _first_track(minislakh_copy)
    piano = _stem_of(track, "Piano")
    (track / "stems" / f"{piano}.flac").unlink()
    with caplog.at_level(logging.WARNING):
        tracks, problems = scan(minislakh_copy, INSTRUMENTS)
    entry = next(t for t in tracks if t.track == track.name)
    assert entry.sources["piano"] == []
    assert len(problems) == 1 and f"{piano}.flac" in str(problems[0].path)
    assert "listed as rendered in metadata.yaml but missing on disk" in caplog.text


def test_stem_audio_without_midi_skips_the_track(minislakh_copy):
    track = _first_track(minislakh_copy)
    bass = _stem_of(track, "Bass") if "Bass" in str(_metadata(track)) else _stem_of(track, "Guitar")
    (track / "MIDI" / f"{bass}.mid").unlink()
    tracks, problems = scan(minislakh_copy, INSTRUMENTS)
    assert track.name not in {t.track for t in tracks}
    assert "MIDI file is missing" in str(problems[0]) and f"{bass}.mid" in str(problems[0])


@pytest.mark.parametrize(("inst_class", "track_kept"), [("Piano", False), ("Organ", True)])
def test_known_bad_slakh_stems_are_skipped_with_their_reason(minislakh_copy, caplog, inst_class, track_kept):
    assert known_issues()[("Track01931", "S01")].startswith("wrong pitch")
    # Turn a mini-Slakh track into Track01931 of real Slakh, whose stem S01 is on the list.
    track = _first_track(minislakh_copy)
    renamed = track.parent / "Track01931"
    track.rename(renamed)
    metadata = _metadata(renamed)
    metadata["stems"]["S01"]["inst_class"] = inst_class
    _write_metadata(renamed, metadata)
    assert "Track01931" in {t.track for t in scan(minislakh_copy, INSTRUMENTS)[0]}  # rendered by scoresep: kept
    del metadata["synthesizer"]  # as in Slakh2100's own metadata
    _write_metadata(renamed, metadata)
    with caplog.at_level(logging.INFO):
        tracks, problems = scan(minislakh_copy, INSTRUMENTS)
    assert "wrong pitch" in caplog.text
    kept = {t.track: t for t in tracks}
    assert ("Track01931" in kept) == track_kept
    if track_kept:  # a bad stem of another instrument is only dropped
        assert problems == [] and all(s.stem_id != "S01" for ss in kept["Track01931"].sources.values() for s in ss)
    else:  # a bad stem of a target instrument would give wrong labels: the whole track goes
        assert "known-bad Slakh stem (piano)" in str(problems[0])


def test_no_track_with_requested_instruments_is_an_error(minislakh):
    with pytest.raises(DatasetError, match=r"no track contains any of the requested instruments \['organ'\]"):
        scan(minislakh, ["organ"])


def test_bad_configuration_is_named(minislakh, tmp_path):
    with pytest.raises(ValueError, match="unknown \\['basss'\\]"):
        scan(minislakh, ["basss"])
    with pytest.raises(ValueError, match="drums cannot be separated"):
        scan(minislakh, ["drums", "bass"])
    with pytest.raises(DatasetError, match="dataset folder not found"):
        scan(tmp_path / "nowhere", INSTRUMENTS)
    with pytest.raises(DatasetError, match="no TrackNNNNN folders"):
        scan(tmp_path, INSTRUMENTS)
