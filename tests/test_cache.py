import json
import logging
import shutil

import numpy as np
import pytest
import soundfile
import yaml

from scoresep.data.cache import CacheSettings, load_index, prepare, unpack_roll
from scoresep.data.midi import load_midi, midi_notes, piano_roll
from scoresep.data.slakh import DatasetError

INSTRUMENTS = ("bass", "guitar", "piano")


def _prepare(root, cache_dir, sample_rate=16_000, **kwargs):
    return prepare(root, cache_dir, INSTRUMENTS, sample_rate, 256, 21, 108, workers=1, progress=False, **kwargs)


def _track_dir(root, name):
    return next(root.glob(f"*/{name}"))


def test_cache_holds_the_decoded_audio_and_aligned_rolls(minislakh, cache):
    index = load_index(cache)
    assert len(index["tracks"]) == 10 and index["problems"] == []
    record = index["tracks"][0]
    track = _track_dir(minislakh, record["track"])
    folder = cache / "tracks" / record["track"]
    mixture = np.load(folder / "mixture.npy", mmap_mode="r").astype(np.float32) * record["scale"]
    decoded, _ = soundfile.read(track / "mix.flac", dtype="float32")
    assert mixture.shape == decoded.shape and record["n_samples"] == decoded.size
    assert np.abs(mixture - decoded).max() < 2 * record["scale"]  # int16 quantisation only
    rolls = unpack_roll(np.load(folder / "rolls.npy"), 88)
    assert rolls.shape == (3, 88, 1 + decoded.size // 256) == (3, 88, record["n_frames"])
    for row, name in enumerate(INSTRUMENTS):
        expected = np.zeros((88, record["n_frames"]), dtype=bool)
        for stem_id in record["stems"][name]:
            notes = midi_notes(load_midi(track / "MIDI" / f"{stem_id}.mid"))
            expected |= piano_roll(notes, record["n_frames"], 16_000 / 256)
        assert np.array_equal(rolls[row], expected)
        assert record["active"][name] == bool(expected.any())


def test_rerun_does_nothing_and_a_changed_track_is_rebuilt(minislakh_copy, tmp_path):
    cache = _prepare(minislakh_copy, tmp_path / "cache")
    entries = {p.parent.name: p.stat().st_mtime_ns for p in cache.glob("tracks/*/entry.json")}
    assert _prepare(minislakh_copy, tmp_path / "cache") == cache
    assert {p.parent.name: p.stat().st_mtime_ns for p in cache.glob("tracks/*/entry.json")} == entries
    changed = sorted(entries)[0]
    track = _track_dir(minislakh_copy, changed)
    audio, rate = soundfile.read(track / "mix.flac", dtype="int16")
    soundfile.write(track / "mix.flac", audio // 2, rate, subtype="PCM_16")
    (cache / "tracks" / sorted(entries)[1] / "entry.json").unlink()  # as if a run died mid-track
    _prepare(minislakh_copy, tmp_path / "cache")
    after = {p.parent.name: p.stat().st_mtime_ns for p in cache.glob("tracks/*/entry.json")}
    rebuilt = {name for name in after if after[name] != entries.get(name)}
    assert rebuilt == {changed, sorted(entries)[1]}
    assert not list(cache.rglob("*.tmp")), "no temporary files are left behind"


def test_sample_rate_mismatch_rebuilds_or_refuses_never_mixes(minislakh, cache, tmp_path):
    index = load_index(cache)
    settings = CacheSettings(**{**index["settings"], "sample_rate": 22_050, "instruments": tuple(INSTRUMENTS)})
    with pytest.raises(DatasetError, match=r"sample_rate=16000 but the configuration asks for sample_rate=22050"):
        load_index(cache, expected=settings)
    other = _prepare(minislakh, cache.parent, sample_rate=8_000)
    assert other != cache and "8000hz" in other.name
    record = load_index(other)["tracks"][0]
    assert record["n_samples"] == 6 * 8_000 and record["n_frames"] == 1 + 6 * 8_000 // 256
    assert load_index(cache)["settings"]["sample_rate"] == 16_000  # the first cache is untouched


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_or_truncated_flac_is_named_and_its_track_skipped(minislakh_copy, tmp_path, caplog, damage):
    track = sorted((minislakh_copy / "train").glob("Track*"))[1]
    flac = track / "mix.flac"
    data = flac.read_bytes()
    flac.write_bytes(b"fLaC" + bytes(200) if damage == "garbage" else data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        cache = _prepare(minislakh_copy, tmp_path / "cache")
    assert track.name not in {r["track"] for r in load_index(cache)["tracks"]}
    assert f"{flac}: cannot" in caplog.text and f"track {track.name} skipped" in caplog.text
    with pytest.raises(DatasetError, match=f"{flac}: cannot"):
        _prepare(minislakh_copy, tmp_path / "strict", strict=True)


def test_unparsable_midi_is_named(minislakh_copy, tmp_path, caplog):
    track = sorted((minislakh_copy / "train").glob("Track*"))[0]
    stems = yaml.safe_load((track / "metadata.yaml").read_text())["stems"]
    piano = next(stem_id for stem_id, stem in stems.items() if stem["inst_class"] == "Piano")
    midi = track / "MIDI" / f"{piano}.mid"
    midi.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with caplog.at_level(logging.WARNING):
        cache = _prepare(minislakh_copy, tmp_path / "cache")
    assert f"{midi}: cannot parse MIDI" in caplog.text
    assert track.name not in {r["track"] for r in load_index(cache)["tracks"]}


def test_short_track_is_cached_and_padded_in_crops(tmp_path, minislakh):
    from scoresep.data.dataset import SlakhCrops

    root = tmp_path / "short"
    source = sorted((minislakh / "train").glob("Track*"))[0]
    shutil.copytree(source, root / "train" / source.name)
    for flac in (root / "train" / source.name).rglob("*.flac"):
        audio, rate = soundfile.read(flac, dtype="int16")
        soundfile.write(flac, audio[: rate // 2], rate, subtype="PCM_16")  # 0.5 s, shorter than a crop
    cache = _prepare(root, tmp_path / "cache")
    record = load_index(cache)["tracks"][0]
    assert record["n_samples"] == 8_000
    assert json.loads((cache / "index.json").read_text())["settings"]["hop_length"] == 256
    crops = SlakhCrops(cache, [record], 88, 256, segment_frames=250, train=False)
    item = crops[0]
    assert len(crops) == 1 and item["mixture"].shape == (64_000,) and item["rolls"].shape == (3, 88, 251)
    assert item["mixture"][8_000:].abs().max() == 0 and item["mixture"][:8_000].abs().max() > 0
    assert item["rolls"][..., 1 + 8_000 // 256 :].sum() == 0
