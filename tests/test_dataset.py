import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from scoresep.data.cache import load_index, unpack_roll
from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.dataset import SlakhCrops
from scoresep.data.samplers import EvalShardSampler, TrainCropSampler
from scoresep.data.slakh import DatasetError
from scoresep.features import FeatureSettings

HOP, SEGMENT = 256, 125  # 2 s crops


def _split(cache, split):
    return [r for r in load_index(cache)["tracks"] if r["split"] == split]


def _crops(cache, split="train", **kwargs):
    return SlakhCrops(cache, _split(cache, split), 88, HOP, SEGMENT, train=split == "train", **kwargs)


def _cached(cache, record):
    folder = cache / "tracks" / record["track"]
    mixture = np.load(folder / "mixture.npy").astype(np.float32) * record["scale"]
    sources = np.load(folder / "sources.npy").astype(np.float32) * record["scale"]
    return mixture, sources, unpack_roll(np.load(folder / "rolls.npy"), 88)


def test_training_crops_are_hop_aligned_and_audio_and_rolls_stay_in_step(cache):
    crops, full_crops = _crops(cache), _crops(cache, mixture="full")
    for key in [(0, 0), (0, 3), (1, 5), (4, 2)]:
        item = crops[key]
        index, frame = crops.crop_position(key)
        record = crops.tracks[index].record
        mixture, sources, rolls = _cached(cache, record)
        start = frame * HOP
        assert item["track"] == record["track"]
        # default (the paper's data): the mixture holds the selected instruments only; "full": the mix file
        assert torch.equal(item["mixture"], torch.from_numpy(sources[:, start : start + SEGMENT * HOP].sum(0)))
        assert torch.equal(full_crops[key]["mixture"], torch.from_numpy(mixture[start : start + SEGMENT * HOP]))
        assert torch.equal(item["sources"], torch.from_numpy(sources[:, start : start + SEGMENT * HOP]))
        assert torch.equal(item["rolls"], torch.from_numpy(rolls[:, :, frame : frame + SEGMENT + 1]).float())
        assert item["rolls"].shape == (3, 88, SEGMENT + 1)
        assert torch.equal(item["active"], item["rolls"].flatten(1).any(1))


def test_instrument_mixtures_leave_other_parts_out_and_need_stems(cache):
    crops, full_crops = _crops(cache, "validation"), _crops(cache, "validation", mixture="full")
    differs = [not torch.equal(crops[k]["mixture"], full_crops[k]["mixture"]) for k in range(len(crops))]
    assert any(differs), "the mini-Slakh has distractor parts, so some full mixtures must differ"
    records = [dict(r, has_sources=False) if i == 0 else r for i, r in enumerate(_split(cache, "train"))]
    with pytest.raises(ValueError, match="mixture: full"):
        SlakhCrops(cache, records, 88, HOP, SEGMENT, train=True)
    with pytest.raises(ValueError, match="'instruments' or 'full'"):
        _crops(cache, mixture="stems")


def test_training_crops_depend_on_seed_epoch_and_slot_only(cache):
    crops = _crops(cache)
    assert torch.equal(crops[(0, 1)]["mixture"], _crops(cache)[(0, 1)]["mixture"])
    assert crops.crop_position((0, 1)) != crops.crop_position((1, 1)) or crops.crop_position(
        (0, 7)) != crops.crop_position((1, 7))
    assert _crops(cache, seed=1).crop_position((0, 1)) != crops.crop_position((0, 1)) or _crops(
        cache, seed=1).crop_position((0, 2)) != crops.crop_position((0, 2))
    sampler = TrainCropSampler(len(crops) * 2, seed=0)
    sampler.set_epoch(3)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(crops, batch_size=4, sampler=sampler, num_workers=workers)
        batches[workers] = [batch["mixture"] for batch in loader]
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[2], strict=True))


def test_train_sampler_splits_ranks_evenly_and_changes_with_epoch():
    whole = list(TrainCropSampler(10, seed=0))
    shards = [list(TrainCropSampler(10, seed=0, rank=r, world_size=3)) for r in range(3)]
    assert {len(s) for s in shards} == {4}  # equal shares, wrapped around
    assert sorted({slot for shard in shards for _, slot in shard}) == list(range(10))
    assert sorted(slot for _, slot in whole) == list(range(10))
    sampler = TrainCropSampler(10, seed=0)
    sampler.set_epoch(1)
    assert [slot for _, slot in sampler] != [slot for _, slot in whole]
    assert {epoch for epoch, _ in sampler} == {1}


def test_validation_crops_are_fixed_and_shared_across_processes(cache):
    first, second = _crops(cache, "validation"), _crops(cache, "validation")
    assert len(first) == 2 * 3  # 2 tracks of 6 s: 3 evenly spaced 2-s crops each
    for k in range(len(first)):
        assert torch.equal(first[k]["mixture"], second[k]["mixture"])
    for world in (2, 3, 4):
        seen = [i for r in range(world) for i in EvalShardSampler(len(first), rank=r, world_size=world)]
        assert sorted(seen) == list(range(len(first)))  # no item dropped, none duplicated


def test_remix_keeps_audio_and_rolls_consistent(cache):
    crops = _crops(cache, remix_probability=1.0)
    item = crops[(0, 0)]
    assert "+" in item["track"] and item["has_sources"]
    assert torch.allclose(item["mixture"], item["sources"].sum(0), atol=1e-6)
    names = item["track"].split("+")
    assert len(set(names)) == 3  # each instrument from a different song
    records = {r["track"]: r for r in _split(cache, "train")}
    for row, name in enumerate(names):
        mixture, sources, rolls = _cached(cache, records[name])
        source = item["sources"][row].numpy()
        if not np.abs(source).max() > 0:
            continue
        starts = [f for f in range(rolls.shape[-1]) if np.array_equal(sources[row, f * HOP : f * HOP + source.size],
                                                                         source)]
        assert starts, f"remixed source {row} is not a hop-aligned crop of {name}"
        frame = starts[0]
        assert torch.equal(item["rolls"][row], torch.from_numpy(rolls[row, :, frame : frame + SEGMENT + 1]).float())
    assert all(crops.is_remix((0, k)) for k in range(8))
    assert not any(_crops(cache).is_remix((0, k)) for k in range(8))


def test_datamodule_adds_fp32_spectrograms_with_roll_frame_count(minislakh, tmp_path):
    datamodule = SlakhDataModule(root=str(minislakh), cache_dir=str(tmp_path), segment_seconds=2.0, batch_size=3)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    batch = datamodule.on_after_batch_transfer(batch, 0)
    assert batch["mixture"].shape == (3, 2 * 16_000)
    assert batch["mixture_mag"].shape == (3, 513, 126) and batch["mixture_mag"].dtype == torch.float32
    assert "sources_mag" not in batch  # computed only when a stage reads it
    sources_mag = datamodule.spectrogram.source_magnitudes(batch)
    assert sources_mag.shape == (3, 3, 513, 126) and batch["sources_mag"] is sources_mag
    assert batch["rolls"].shape[-1] == batch["mixture_mag"].shape[-1]
    assert batch["mixture_stft"].dtype == torch.complex64
    validation = [b["mixture"] for b in datamodule.val_dataloader()]
    assert sum(len(b) for b in validation) == 6
    datamodule.setup("test")
    assert len(datamodule.test_dataloader().dataset) == 6


def test_missing_split_is_named(minislakh, tmp_path):
    import shutil

    root = tmp_path / "only-train"
    shutil.copytree(minislakh / "train", root / "train")
    datamodule = SlakhDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), segment_seconds=2.0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.train_dataloader()) > 0
    with pytest.raises(DatasetError, match="no 'validation' tracks"):
        datamodule.val_dataloader()


def test_datamodule_bad_settings_are_named(minislakh, tmp_path):
    with pytest.raises(ValueError, match="segment_seconds=0.01 is shorter than one STFT window"):
        SlakhDataModule(root=str(minislakh), cache_dir=str(tmp_path), segment_seconds=0.01)
    datamodule = SlakhDataModule(root=str(minislakh), cache_dir=str(tmp_path), features=FeatureSettings(("organ",)))
    with pytest.raises(DatasetError, match=r"no track contains any of the requested instruments \['organ'\]"):
        datamodule.prepare_data()
