"""Do the score's solo passages teach the critic (stage 1's transcriptor) to tell the instruments apart?

Artificial mixtures of solo passages (``solo_mixtures.py``) with their exact piano rolls. Variants (stage 1's
small transcriptor, AdamW 3e-3 cosine, weight decay 1e-4, BCE with note weight 20, bf16 autocast, STEPS steps):
  mixture: 8 real training crops per step (stage 1's recipe)
  solo:    the same + 8 artificial mixtures per step
Evaluated on whole validation tracks at threshold 0.5: note accuracy on mixtures and on isolated stems, and the
wrong-channel rate (share of an isolated stem's notes put in another instrument's channel).
Needs `make reproduce`'s data (data/minislakh300, data/cache).
usage: OMP_NUM_THREADS=1 python benchmarks/solo_passages_critic.py {mixture,solo} STEPS OUT.json
"""

import json
import sys
import time
from pathlib import Path

import torch
from solo_mixtures import prepare, training_batches, update

from scoresep.evaluation.whole_tracks import _evaluate_split, summarise
from scoresep.features import Spectrogram
from scoresep.inference.transcription import Transcriber
from scoresep.losses import note_bce
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig


def main() -> None:
    variant, steps, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    features, datamodule, solo = prepare()
    spectrogram = Spectrogram.of(features, inverse=False)
    config = TranscriptorConfig(channels=8, conv_blocks=1, hidden=256, rnn_layers=1, dropout=0.1,
                                bands_per_semitone=2, log_eps=0.001, harmonics=[0.5, 1, 2, 3, 4, 5])
    network = Transcriptor(features.n_bins, 3, features.n_pitches, config, features.sample_rate, features.min_midi)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    started = time.perf_counter()
    network.train()
    for step, batch in enumerate(training_batches(datamodule, steps), start=1):
        magnitude, target = batch["mixture_mag"], batch["rolls"]
        if variant == "solo":
            sources, rolls = solo.batch(8, 4.0)
            magnitude = torch.cat([magnitude, spectrogram.stft(sources.sum(1)).abs()])
            target = torch.cat([target, rolls])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = network(magnitude)
        loss = note_bce(logits, target, 20.0, reduction="all")
        update(network, optimizer, scheduler, loss, step, started)
    train_seconds = time.perf_counter() - started
    network.eval()
    tracks, _, _ = _evaluate_split("data/minislakh300", "validation", "data/cache", "instruments", features, None,
                                   Transcriber(network, features, 0.5, 30.0, device="cpu"), 1, False, False)
    transcription = summarise(tracks, features.instruments)["transcription"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variant": variant, "steps": steps, "train_seconds": train_seconds,
                               "transcription": transcription}))
    print(variant, steps, round(train_seconds),
          "mix", {k: round(v["accuracy"], 3) for k, v in transcription["mix"].items() if k != "average"},
          "iso", {k: round(v["accuracy"], 3) for k, v in transcription["iso"].items() if k != "average"},
          "wrong channel", {k: round(v, 3) for k, v in transcription["wrong_channel"].items()})


if __name__ == "__main__":
    main()
