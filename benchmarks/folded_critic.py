"""A stage-2 step with the frozen critic as stage 1 saved it against the folded copy the loss terms run.

``SeparatorStage.loss_critic`` folds the critic's BatchNorm into its convolutions
(``models.transcriptor.folded_for_inference``). This script builds the stage-2 row of the mini preset (its
separator and critic sizes, a random 8 x 4-s batch, as ``benchmarks/train_step.py`` does), then times separator
forward + loss terms + backward with each critic, interleaved, and prints the medians and the largest difference
between the two critics' logits on the batch.

    .venv/bin/python benchmarks/folded_critic.py [--threads 1] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step  # noqa: E402  (the stage and batch builders of the step benchmark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per critic (after one warm-up each)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stage = train_step.build_stage("stage2", train_step._current("stage2"), Path(tempfile.mkdtemp()))
    stage.train()
    batch = train_step.random_batch(8, 4.0)
    stage.spectrogram.analyse(batch)
    critics = {"as saved": stage.critic, "folded": stage.loss_critic()}

    def step(critic: torch.nn.Module) -> float:
        started = time.perf_counter()
        _, separated = stage.separate(batch)
        loss = stage.total(stage.separator_losses(batch, separated, critic, batch["rolls"]))
        loss.backward()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in critics}
    for critic in critics.values():
        step(critic)  # warm-up
    for _ in range(args.steps):
        for name, critic in critics.items():
            times[name].append(step(critic))
    with torch.no_grad():
        difference = (critics["folded"](batch["mixture_mag"]) - stage.critic(batch["mixture_mag"])).abs().max()
    for name, values in times.items():
        print(f"stage-2 step, critic {name}: {1000 * statistics.median(values):.0f} ms (median of {args.steps}, "
              f"{args.threads} thread(s))")
    print(f"largest logit difference, folded vs as saved: {float(difference):.1e}")


if __name__ == "__main__":
    main()
