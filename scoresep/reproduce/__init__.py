"""``scoresep reproduce``: train and evaluate every row of the paper's Tables 1 and 2, then render the report.

A preset (``experiments/reproduce/<name>.yaml``) lists the rows: each names an experiment YAML, overrides merged
into it (training length, model size) and which other rows' ``best.ckpt`` it takes as input checkpoints. Each
row gets its own folder ``<out>/rows/<row>/`` with the exact ``config.yaml`` it was trained with, its
checkpoints and logs; ``<out>/evaluations/<row>.json`` is its whole-track test evaluation.

Rows run as ``scoresep fit`` then ``scoresep evaluate`` subprocesses, ``parallel`` at a time (each with
``cores / parallel`` threads), as soon as the rows they need are done. Interrupted or crashed runs resume: a
row with ``done.json`` (and the same configuration) is not retrained, one with ``last.ckpt`` continues from
it, an evaluation that exists is not recomputed. A failed row is reported and the rows that need it are
skipped; the others still run.

``seed`` (``--seed``, default 0) is every row's training seed: ``seed_everything``, ``data.seed`` (crop order)
and, where the stage has one, ``model.init_args.seed`` (AML pairing). It does not change the rendered dataset
(the preset's ``synth.seed``), so every seed is scored on the same test tracks. Seed 0 is what the experiment
YAMLs already say, so its rows' configurations (and hashes) are the ones of runs made before ``--seed`` existed.
A results folder holds one seed: ``reproduce.json`` records it and another seed is refused there.

One module per job, each importing only modules listed before it: ``hardware`` (bf16 in hardware, ``auto``
precision, the machine's description), ``preset`` (reading and checking a preset; ``ReproduceError``),
``records`` (``reproduce.json``: the run's summary, the seed a folder holds), ``jobs`` (the subprocesses: the
data step and each row's fit and evaluate), ``planning`` (a row's configuration and hash, and the commands it
still needs), ``run`` (``reproduce``: the rows scheduled, then the report). This file only re-exports what other
code imports.
"""

from scoresep.reproduce.hardware import native_bf16, resolve_precision
from scoresep.reproduce.planning import _plan_row as _plan_row  # the tests plan a row without running it
from scoresep.reproduce.planning import best_checkpoint, config_hash, lightning_config, row_config
from scoresep.reproduce.preset import ReproduceError, load_preset, order_rows
from scoresep.reproduce.records import _write_summary as _write_summary  # the tests write a summary directly
from scoresep.reproduce.records import recorded_seed
from scoresep.reproduce.run import reproduce

__all__ = ["ReproduceError", "best_checkpoint", "config_hash", "lightning_config", "load_preset", "native_bf16",
           "order_rows", "recorded_seed", "reproduce", "resolve_precision", "row_config"]
