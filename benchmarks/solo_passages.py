"""Does stem-free supervision from the score's solo passages teach the separator? (docs/results.md, "Solo
passages": it did not; kept so the measurement can be repeated.)

Solo passage: frames where the score has exactly one instrument sounding and no other instrument had a note in the
0.5 s before (release tails); there the mixture IS that instrument's stem (36-58 dB SNR measured on mini-Slakh).
Artificial mixture: per instrument, with probability 0.8, one random piece of a random solo passage (0.5-4 s) of a
random training song, placed at a random offset in a 4-s crop; their sum is the mixture, the pieces are the targets.

Variants (same FrameSeparator 512, AdamW 1e-3 cosine, bf16 autocast, grad clip 1, STEPS steps, batch 8):
  target: L_score-target on real training crops (the stage2_score_target row's loss)
  solo:   the same + L1 magnitude supervision on one artificial batch per step (weight W)
Evaluated on whole validation tracks (SI-SDRi).
Needs `make reproduce`'s data (data/minislakh300, data/cache). One thread: OMP_NUM_THREADS=1.
usage: python benchmarks/solo_passages.py {target,solo} STEPS OUT.json [W]
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scoresep.data.datamodule import SlakhDataModule
from scoresep.evaluation.whole_tracks import _evaluate_split, summarise
from scoresep.features import FeatureSettings, Spectrogram
from scoresep.inference.separation import Separator
from scoresep.losses import score_target_loss, supervised_loss
from scoresep.models import FrameSeparator
from scoresep.models.frame_separator import FrameSeparatorConfig
from scoresep.score import bin_frequencies, harmonic_mask, harmonic_templates

variant, steps, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
weight = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
torch.manual_seed(1)
rng = np.random.default_rng(1)
features = FeatureSettings.defaults()
hop, sr = features.hop_length, features.sample_rate
CROP = 4 * sr


def solo_passages(margin_s=0.5, min_s=0.5):
    entries = json.load(open(CACHE / "index.json"))["tracks"]
    margin, shortest = int(margin_s * sr / hop), int(min_s * sr / hop)
    passages = {i: [] for i in range(3)}
    for e in entries:
        if e["split"] != "train":
            continue
        rolls = np.unpackbits(np.load(CACHE / "tracks" / e["track"] / "rolls.npy"), axis=1)
        active = rolls.any(1)
        extended = active.copy()
        for k in range(1, margin + 1):
            extended[:, k:] |= active[:, :-k]
        for i in range(3):
            solo = active[i] & ~extended[np.arange(3) != i].any(0)
            edges = np.diff(np.concatenate([[0], solo.astype(np.int8), [0]]))
            for start, end in zip(np.where(edges == 1)[0], np.where(edges == -1)[0], strict=True):
                if end - start >= shortest:
                    passages[i].append((e["track"], e["scale"], int(start), int(end)))
    return passages


datamodule = SlakhDataModule(root="data/minislakh300", cache_dir="data/cache", train_crops_per_track=2,
                             eval_crops_per_track=1, seed=1, batch_size=8, segment_seconds=4.0)
datamodule.prepare_data()
datamodule.setup("fit")
CACHE = datamodule.cache
passages = solo_passages()
print({i: (len(p), round(sum(e - s for _, _, s, e in p) * hop / sr / 60, 1)) for i, p in passages.items()},
      flush=True)
mixtures = {}


def audio(track):
    if track not in mixtures:
        mixtures[track] = np.load(CACHE / "tracks" / track / "mixture.npy", mmap_mode="r")
    return mixtures[track]


def solo_batch(size=8):
    sources = np.zeros((size, 3, CROP), np.float32)
    for b in range(size):
        for i in range(3):
            if rng.random() > 0.8:
                continue
            track, scale, start, end = passages[i][rng.integers(len(passages[i]))]
            length_frames = min(end - start, int(rng.uniform(0.5, 4.0) * sr / hop))
            first = start + rng.integers(0, end - start - length_frames + 1)
            piece = np.asarray(audio(track)[first * hop:(first + length_frames) * hop], np.float32) * scale
            offset = rng.integers(0, CROP - len(piece) + 1)
            sources[b, i, offset:offset + len(piece)] = piece
    return torch.from_numpy(sources)


spectrogram = Spectrogram.of(features, inverse=False)
templates = harmonic_templates(bin_frequencies(sr, features.n_fft), features.n_pitches, features.min_midi, 8, 0.5)
network = FrameSeparator(features.n_bins, 3, FrameSeparatorConfig(hidden=512))
optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.0)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
step, started = 0, time.perf_counter()
network.train()
epoch = 0
while step < steps:
    loader = datamodule.train_dataloader()
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    epoch += 1
    for batch in loader:
        if step >= steps:
            break
        batch = datamodule.on_after_batch_transfer(batch, 0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            masks = network(batch["mixture_mag"])
        separated = masks.float() * batch["mixture_mag"][:, None]
        loss = score_target_loss(separated, batch["mixture_mag"], harmonic_mask(batch["rolls"], templates)).mean()
        if variant == "solo":
            sources = solo_batch()
            source_mag = spectrogram.stft(sources).abs()  # (8, 3, F, N)
            mixture_mag = spectrogram.stft(sources.sum(1)).abs()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                solo_masks = network(mixture_mag)
            loss = loss + weight * supervised_loss(solo_masks.float() * mixture_mag[:, None], source_mag, "l1").mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.perf_counter() - started:.0f} s", flush=True)
train_seconds = time.perf_counter() - started
network.eval()
separator = Separator(network, features, 4.0, "cpu")
tracks, skipped, seconds = _evaluate_split("data/minislakh300", "validation", "data/cache", "instruments", features,
                                           separator, None, 1, False)
summary = summarise(tracks, features.instruments)
result = {"variant": variant, "steps": steps, "weight": weight, "train_seconds": train_seconds,
          "summary": summary, "tracks": tracks, "instruments": list(features.instruments)}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result))
print(variant, steps, round(train_seconds), {k: round(v["si_sdri"], 2) for k, v in summary["separation"].items()
                                             if v.get("si_sdri") is not None})
torch.save(network.state_dict(), out.with_suffix(".pt"))
