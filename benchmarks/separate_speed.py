"""Real-time factor and peak memory of ``scoresep separate`` on CPU, for a 4-minute file and a longer one.

Writes a 44.1 kHz stereo WAV of the requested lengths (music-like noise: the speed of a separator does not depend
on what it hears), then separates each in a fresh process exactly as the command does (streamed decoding,
resampling and down-mix, chunked separation, four 16-bit WAV outputs) and prints wall time, real-time factor
(audio seconds per wall second) and peak resident memory. Equal peaks for both lengths show that memory does
not grow with the file. Goal: faster than 20x real time on 2 cores.

    python benchmarks/separate_speed.py [--ckpt results/rows/stage2/checkpoints/best.ckpt] [--minutes 4 12]
                                        [--chunk-seconds 30] [--threads N]

Without a checkpoint the separator of ``experiments/stage2.yaml`` (the ``small`` size) with random weights is
timed; the weights do not change the speed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile


def write_test_file(path: Path, minutes: float, rate: int = 44_100) -> None:
    """Stereo pink-ish noise with a beat, written block by block (the benchmark itself stays small)."""
    rng = np.random.default_rng(0)
    total, block = int(minutes * 60 * rate), rate * 10
    with soundfile.SoundFile(path, "w", rate, 2, subtype="PCM_16") as handle:
        for start in range(0, total, block):
            n = min(block, total - start)
            noise = np.cumsum(rng.standard_normal((n, 2)), axis=0) * 0.002
            noise -= noise.mean(axis=0)
            beat = 0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * (start + np.arange(n)) / rate)[:, None]
            handle.write(np.clip(noise * beat, -0.9, 0.9).astype(np.float32))


def measure(path: Path, ckpt: str | None, chunk_seconds: float, threads: int | None) -> dict:
    """Separate one file in this process; returns timings and the peak RSS (MiB)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from scoresep.cli.separate import separate_file
    from scoresep.features import FeatureSettings
    from scoresep.inference.separation import Separator
    from scoresep.models.unet import UNetConfig
    from scoresep.models.unet import UNetSeparator as SeparatorNetwork

    if ckpt:
        separator = Separator.from_checkpoint(ckpt, chunk_seconds=chunk_seconds, device="cpu")
    else:
        features = FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024, 256, 21, 108)
        network = SeparatorNetwork(features.n_bins, 3, UNetConfig(channels=12, depth=3))
        separator = Separator(network, features, chunk_seconds=chunk_seconds, device="cpu")
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        separate_file(separator, path, Path(out), "wav", show_progress=False)
        seconds = time.perf_counter() - started
    audio_seconds = soundfile.info(str(path)).duration
    return {"audio_seconds": audio_seconds, "wall_seconds": seconds, "realtime_factor": audio_seconds / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_loading_mib": loaded, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="a stage-2/3 checkpoint (default: random small separator)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[4.0, 12.0], help="file lengths to time")
    parser.add_argument("--chunk-seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one measurement in a fresh process, so peak memory is this file's alone
        print(json.dumps(measure(Path(args.worker), args.ckpt, args.chunk_seconds, args.threads)))
        return
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'file':>10} {'wall s':>8} {'x real time':>12} {'peak RSS MiB':>13} {'after load MiB':>15} threads")
        for minutes in args.minutes:
            path = Path(folder) / f"song_{minutes:g}min.wav"
            write_test_file(path, minutes)
            command = [sys.executable, __file__, "--worker", str(path), "--chunk-seconds", str(args.chunk_seconds)]
            command += ["--ckpt", args.ckpt] if args.ckpt else []
            command += ["--threads", str(args.threads)] if args.threads else []
            result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            print(f"{minutes:>7g} min {result['wall_seconds']:>8.1f} {result['realtime_factor']:>11.1f}x "
                  f"{result['peak_rss_mib']:>13.0f} {result['rss_after_loading_mib']:>15.0f} {result['threads']:>7}")


if __name__ == "__main__":
    main()
