"""Clips per second: (a) crops from the cache vs (b) decoding FLAC + resampling + parsing MIDI per item.

Renders a small Slakh-like dataset at 44.1 kHz (the rate of real Slakh2100), prepares its 16 kHz cache, then
times one process (one worker) drawing random 4-s training crops both ways. Prints both rates and the ratio.

    python benchmarks/data_throughput.py [--tracks 8] [--seconds 60] [--items 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from scoresep.data.audio import resample
from scoresep.data.cache import load_index, prepare
from scoresep.data.dataset import SlakhCrops
from scoresep.data.midi import load_midi, midi_notes, piano_roll
from scoresep.data.slakh import scan
from scoresep.data.synth import synthesise

INSTRUMENTS = ("bass", "guitar", "piano")
RATE, HOP, SEGMENT_FRAMES = 16_000, 256, 250


def decode_item(entry, rng: np.random.Generator) -> dict:
    """What a loader without a cache does: partial FLAC reads of mix + stems, resample, MIDI to roll."""
    info = soundfile.info(str(entry.mixture))
    seconds = SEGMENT_FRAMES * HOP / RATE
    start_s = rng.uniform(0, info.duration - seconds)
    start, stop = int(start_s * info.samplerate), int((start_s + seconds) * info.samplerate) + 1
    mixture = resample(soundfile.read(str(entry.mixture), start=start, stop=stop, dtype="float32")[0],
                       info.samplerate, RATE)
    sources, rolls = [], []
    for name in INSTRUMENTS:
        source = np.zeros_like(mixture)
        roll = np.zeros((88, SEGMENT_FRAMES + 1), dtype=bool)
        for stem in entry.sources[name]:
            audio = soundfile.read(str(stem.audio), start=start, stop=stop, dtype="float32")[0]
            source += resample(audio, info.samplerate, RATE)[: source.size]
            roll |= piano_roll(midi_notes(load_midi(stem.midi)), SEGMENT_FRAMES + 1, RATE / HOP,
                               offset_seconds=start_s)
        sources.append(source)
        rolls.append(roll)
    return {"mixture": mixture, "sources": np.stack(sources), "rolls": np.stack(rolls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker means one core, for the resampler too
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "slakh44k"
        synthesise(root, tracks=args.tracks, seconds=args.seconds, seed=0, sample_rate=44_100, progress=False)
        cache = prepare(root, Path(folder) / "cache", INSTRUMENTS, RATE, HOP, 21, 108, progress=False)
        records = load_index(cache)["tracks"]
        crops = SlakhCrops(cache, records, 88, HOP, SEGMENT_FRAMES, train=True)
        entries, _ = scan(root, INSTRUMENTS)
        crops[(0, 0)]  # open the memory maps once, as a long-lived worker has
        started = time.perf_counter()
        for slot in range(args.items):
            crops[(1, slot)]
        cached_rate = args.items / (time.perf_counter() - started)
        rng = np.random.default_rng(0)
        n_decode = max(20, args.items // 10)
        started = time.perf_counter()
        for slot in range(n_decode):
            decode_item(entries[slot % len(entries)], rng)
        decode_rate = n_decode / (time.perf_counter() - started)
    print(f"clip: {SEGMENT_FRAMES * HOP / RATE:.1f} s, {len(INSTRUMENTS)} instruments, 88 pitches; "
          f"source audio 44.1 kHz FLAC -> {RATE} Hz; one worker")
    print(f"(a) cached dataset:          {cached_rate:9.1f} clips/s")
    print(f"(b) decode FLAC + resample:  {decode_rate:9.1f} clips/s")
    print(f"ratio (a)/(b):               {cached_rate / decode_rate:9.1f}x  (goal >= 50x)")


if __name__ == "__main__":
    main()
