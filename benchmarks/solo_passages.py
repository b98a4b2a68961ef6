"""Does stem-free supervision from the score's solo passages teach the separator? (docs/results.md, "Solo
passages": it did not.)

Artificial mixtures of solo passages (``solo_mixtures.py``) have exact targets without a stem. Variants (the same
FrameSeparator 512, AdamW 1e-3 cosine, bf16 autocast, gradient clip 1, STEPS steps of 8 4-s crops):
  target: L_score-target on real training crops (the stage2_score_target row's loss)
  solo:   the same + L1 magnitude supervision on one artificial batch per step (weight W, default 1)
Evaluated on whole validation tracks (SI-SDRi). Needs `make reproduce`'s data (data/minislakh300, data/cache).
usage: OMP_NUM_THREADS=1 python benchmarks/solo_passages.py {target,solo} STEPS OUT.json [W]
"""

import json
import sys
import time
from pathlib import Path

import torch
from solo_mixtures import prepare, training_batches, update

from scoresep.evaluation.whole_tracks import _evaluate_split, summarise
from scoresep.features import Spectrogram
from scoresep.inference.separation import Separator
from scoresep.losses import score_target_loss, supervised_loss
from scoresep.models import FrameSeparator
from scoresep.models.frame_separator import FrameSeparatorConfig
from scoresep.score import bin_frequencies, harmonic_mask, harmonic_templates


def main() -> None:
    variant, steps, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    weight = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    features, datamodule, solo = prepare()
    spectrogram = Spectrogram.of(features, inverse=False)
    templates = harmonic_templates(bin_frequencies(features.sample_rate, features.n_fft), features.n_pitches,
                                   features.min_midi, 8, 0.5)
    network = FrameSeparator(features.n_bins, 3, FrameSeparatorConfig(hidden=512))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    started = time.perf_counter()
    network.train()
    for step, batch in enumerate(training_batches(datamodule, steps), start=1):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            masks = network(batch["mixture_mag"])
        separated = masks.float() * batch["mixture_mag"][:, None]
        loss = score_target_loss(separated, batch["mixture_mag"], harmonic_mask(batch["rolls"], templates)).mean()
        if variant == "solo":
            sources, _ = solo.batch(8, 4.0)
            source_mag = spectrogram.stft(sources).abs()  # (8, 3, F, N)
            mixture_mag = spectrogram.stft(sources.sum(1)).abs()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                solo_masks = network(mixture_mag)
            loss = loss + weight * supervised_loss(solo_masks.float() * mixture_mag[:, None], source_mag, "l1").mean()
        update(network, optimizer, scheduler, loss, step, started, clip=1.0)
    train_seconds = time.perf_counter() - started
    network.eval()
    tracks, _, _ = _evaluate_split("data/minislakh300", "validation", "data/cache", "instruments", features,
                                   Separator(network, features, 4.0, "cpu"), None, 1, False, False)
    summary = summarise(tracks, features.instruments)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variant": variant, "steps": steps, "weight": weight, "train_seconds": train_seconds,
                               "summary": summary, "tracks": tracks, "instruments": list(features.instruments)}))
    print(variant, steps, round(train_seconds), {name: round(value["si_sdri"], 2)
                                                 for name, value in summary["separation"].items()
                                                 if value.get("si_sdri") is not None})


if __name__ == "__main__":
    main()
