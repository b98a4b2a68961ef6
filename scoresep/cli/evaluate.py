"""``scoresep evaluate``: a checkpoint, or the training-free score masks, on the whole tracks of a split; the
result JSON goes where ``--out`` says (never beside the checkpoint) and replaces an earlier one only with
``--overwrite``; a split with nothing to score is an error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scoresep.cli.options import add_compute_options, at_least_one, positive, unit_interval
from scoresep.constants import (
    DEFAULT_INSTRUMENTS,
    HARMONIC_TOLERANCE,
    HOP_LENGTH,
    LEARNED_WEIGHT,
    MAX_MIDI,
    MIN_MIDI,
    N_FFT,
    N_HARMONICS,
    SAMPLE_RATE,
)
from scoresep.errors import SettingsError
from scoresep.fileio import output_lock, refuse_existing
from scoresep.inference.writers import output_folder


def score_perturbation(text: str):
    """``KEY=VALUE,...`` -> ``ScorePerturbation`` (argparse type: a bad key or value is a usage error)."""
    from dataclasses import fields

    from scoresep.score import ScorePerturbation

    keys = [field.name for field in fields(ScorePerturbation)]
    values = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in keys:
            raise argparse.ArgumentTypeError(f"unknown key {key.strip()!r} in {text!r}; the keys are {', '.join(keys)}")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: {key.strip()} needs a number") from None
    try:
        return ScorePerturbation(**values)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command_evaluate(args: argparse.Namespace) -> None:
    from scoresep.evaluation.result_file import write_json
    from scoresep.evaluation.whole_tracks import evaluate_checkpoint, evaluate_score_masks
    from scoresep.features import FeatureSettings
    from scoresep.inference.separation import pick_device
    from scoresep.instruments import check_instruments
    from scoresep.score import HarmonicSettings

    if args.score and args.score_masks:
        raise SettingsError("--score goes with --ckpt (a checkpoint that separates with the score); --score-masks "
                            "already reads the score")
    if args.learned_weight is not None and not args.score:
        raise SettingsError("--learned-weight weighs an audio-only checkpoint's masks against the score's: give "
                            "--ckpt and --score")
    if (args.ckpt is None) == (not args.score_masks):
        raise SettingsError("give either --ckpt (a stage checkpoint) or --score-masks (the training-free "
                            "score-informed reference), not both")
    device = pick_device(args.device, "--device")
    out = Path(args.out)
    if out.is_dir():
        raise SettingsError(f"{out}: --out is an existing folder, not a JSON file")
    refuse_existing([out], args.overwrite)
    with output_folder(out.parent), output_lock(out):
        refuse_existing([out], args.overwrite)  # again: another run may have written it since
        if args.score_masks:
            features = FeatureSettings(check_instruments(args.instruments), args.sample_rate, args.n_fft,
                                       args.hop_length, args.min_midi, args.max_midi)
            result = evaluate_score_masks(args.data, args.split, args.cache, args.mixture, args.chunk_seconds,
                                          features, HarmonicSettings(args.n_harmonics, args.harmonic_tolerance),
                                          device, args.workers, progress=not args.quiet,
                                          perturbation=args.perturb_score)
        else:
            result = evaluate_checkpoint(args.ckpt, args.data, args.split, args.cache, args.mixture,
                                         args.chunk_seconds, args.threshold, device, args.workers,
                                         progress=not args.quiet, score=args.score,
                                         perturbation=args.perturb_score, learned_weight=args.learned_weight)
        write_json(out, result)
    if result["skipped"]:
        print(f"scoresep evaluate: note: {len(result['skipped'])} '{args.split}' track(s) skipped; each is listed "
              f"with the reason under \"skipped\" in {out}", file=sys.stderr)
    summary = result["summary"]
    for name, scores in summary.get("separation", {}).items():
        if scores["si_sdr"] is not None:
            print(f"{name:>8}: SI-SDR {scores['si_sdr']:6.2f} dB  input {scores['input_si_sdr']:6.2f} dB  "
                  f"SI-SDRi {scores['si_sdri']:+6.2f} dB")
    for kind, label in (("mix", "mixture"), ("iso", "isolated")):
        for name, scores in summary.get("transcription", {}).get(kind, {}).items():
            if name != "average" and scores["accuracy"] is not None:
                print(f"{name:>8}: note accuracy on {label} {scores['accuracy']:.3f}")
    print(f"wrote {out}")


def add_evaluate_command(commands) -> None:
    """Register ``evaluate`` on the CLI's sub-parsers."""
    evaluate = commands.add_parser("evaluate", help="score a checkpoint on whole tracks of a split (JSON)")
    evaluate.add_argument("--ckpt", default=None, help="a stage checkpoint")
    evaluate.add_argument("--score-masks", action="store_true",
                          help="instead of a checkpoint: the score's harmonic masks (no training; reads each test "
                               "track's score)")
    evaluate.add_argument("--score", action="store_true",
                          help="--ckpt: separate each track together with its score, as `separate --score` does "
                               "(a separator that reads the score always does); the JSON records reads_score")
    evaluate.add_argument("--learned-weight", type=unit_interval, default=None, metavar="W",
                          help="--score with an audio-only checkpoint: the weight of its split of the bins several "
                               f"instruments' harmonics cover, against an equal split (default {LEARNED_WEIGHT:g}, "
                               "as in `separate`); the JSON records learned_weight")
    evaluate.add_argument("--perturb-score", type=score_perturbation, default=None, metavar="KEY=VALUE,...",
                          help="give the separation a score with a real score's errors: offset_s (whole score "
                               "later by this many seconds), jitter_s (each note by up to this many), drop and add "
                               "(shares of notes), stretch (tempo off by up to this share); e.g. "
                               "offset_s=0.05,drop=0.05. Each track's draw is fixed, so every evaluation reads the "
                               "same perturbed scores")
    evaluate.add_argument("--instruments", nargs="+", default=list(DEFAULT_INSTRUMENTS),
                          help="--score-masks: instruments (default bass guitar piano)")
    evaluate.add_argument("--sample-rate", type=at_least_one, default=SAMPLE_RATE, help="--score-masks: sample rate")
    evaluate.add_argument("--n-fft", type=at_least_one, default=N_FFT, help="--score-masks: STFT size")
    evaluate.add_argument("--hop-length", type=at_least_one, default=HOP_LENGTH, help="--score-masks: STFT hop")
    evaluate.add_argument("--min-midi", type=int, default=MIN_MIDI, help="--score-masks: lowest pitch of the rolls")
    evaluate.add_argument("--max-midi", type=int, default=MAX_MIDI, help="--score-masks: highest pitch of the rolls")
    evaluate.add_argument("--n-harmonics", type=at_least_one, default=N_HARMONICS,
                          help=f"--score-masks: harmonics per note (default {N_HARMONICS})")
    evaluate.add_argument("--harmonic-tolerance", type=positive, default=HARMONIC_TOLERANCE,
                          help=f"--score-masks: half-width in semitones (default {HARMONIC_TOLERANCE:g})")
    evaluate.add_argument("--data", required=True, help="Slakh-layout dataset folder")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--out", required=True,
                          help="the result's JSON path (never beside the checkpoint: that folder is a training run's)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    evaluate.add_argument("--cache", default="data/cache", help="cache folder (default data/cache)")
    evaluate.add_argument("--mixture", default="instruments", choices=("instruments", "full"),
                          help="instruments: sum of the instruments' stems (the paper); full: the mix file")
    add_compute_options(evaluate, threshold=True)
    evaluate.add_argument("--workers", type=at_least_one, default=None, help="processes for building the cache")
    evaluate.add_argument("--quiet", action="store_true", help="no per-track lines")
    evaluate.set_defaults(run=command_evaluate)
