"""The everyday commands: ``scoresep separate``, ``scoresep transcribe`` and ``scoresep evaluate``.

Everything a command can check is checked before any work starts (device, output path, inputs, checkpoint),
cheapest first, and nothing is created before those checks pass; every output appears whole or not at all, and
an output folder that a failed run created and left empty is removed again. A failing input in a batch is
reported and the others still run; the command then exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scoresep.data.audio import AudioError
from scoresep.inference.writers import AUDIO_FORMATS, StemWriter, output_folder

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aif", ".aiff")
SILENCE = 1e-5  # peak amplitude below which a whole input counts as silent


def audio_inputs(inputs: list[str]) -> list[Path]:
    """Files given directly, plus the audio files (by suffix) directly inside given folders, in order."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no audio file ({', '.join(AUDIO_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(f"{stems[path.stem]} and {path} would write to the same output names ({path.stem}/); "
                             "separate them in two runs")
        stems[path.stem] = path
    return files


def peak_amplitude(source, block_seconds: float = 30.0) -> float:
    """Largest absolute sample of a source, read block by block (bounded memory)."""
    block, peak = max(1, int(block_seconds * source.sample_rate)), 0.0
    for start in range(0, source.n_samples, block):
        peak = max(peak, float(abs(source.read(start, start + block)).max(initial=0.0)))
    return peak


def _progress(total: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="sample", unit_scale=True, disable=not enabled, file=sys.stderr,
                leave=False)


def separate_file(separator, path: Path, out_dir: Path, audio_format: str, show_progress: bool) -> list[Path]:
    """Separate one file into ``out_dir/<file stem>/<instrument>.<ext>`` and ``residual.<ext>``."""
    from scoresep.inference.sources import FileSource

    source = FileSource(path, separator.sample_rate)
    for note in source.notes:
        print(f"{path}: note: {note}", file=sys.stderr)
    target = out_dir / path.stem
    if os.path.lexists(target) and not target.is_dir():
        raise AudioError(f"{target}: a file of that name is in the way of this input's output folder")
    suffix = "flac" if audio_format == "flac" else "wav"
    paths = [target / f"{name}.{suffix}" for name in (*separator.instruments, "residual")]
    peak = 0.0
    # the input's folder goes again if nothing was written into it, unless it was there before (the user's)
    with output_folder(target, check_writable=False), \
            StemWriter(paths, separator.sample_rate, audio_format) as writer, \
            _progress(source.n_samples, path.name, show_progress) as bar:
        for _, pieces in separator.stream(source):
            peak = max(peak, float(abs(pieces.sum(axis=0)).max()))
            writer.write(pieces)
            bar.update(pieces.shape[1])
        if peak < SILENCE:
            raise AudioError(f"{path}: the audio is silent (peak {peak:.1e}); nothing to separate")
        written = writer.commit()
    if writer.clipped:
        print(f"{path}: note: {writer.clipped} samples clipped to [-1, 1]; use --format wav32 to keep them",
              file=sys.stderr)
    return written


def out_folder_argument(out: str) -> Path:
    """``--out`` that must be a folder (it may not exist yet): refused at once when it names an existing file."""
    path = Path(out)
    if os.path.lexists(path) and not path.is_dir():
        raise NotADirectoryError(f"{path}: --out is an existing file, not a folder")
    return path


def command_separate(args: argparse.Namespace) -> None:
    from scoresep.inference.separation import Separator, pick_device

    device = pick_device(args.device, "--device")
    out = out_folder_argument(args.out)
    files = audio_inputs(args.inputs)
    separator = Separator.from_checkpoint(args.ckpt, chunk_seconds=args.chunk_seconds, device=device)
    failures = 0
    with output_folder(out) as out_dir:
        for path in files:
            try:
                written = separate_file(separator, path, out_dir, args.format, not args.quiet)
            except (AudioError, OSError) as error:
                failures += 1
                print(f"scoresep separate: error: {error}", file=sys.stderr)
                continue
            print(f"{path} -> {', '.join(str(p) for p in written)}")
    if failures:  # one input: its error line is the last line, naming the file
        raise SystemExit(f"scoresep separate: {failures} of {len(files)} input(s) failed" if len(files) > 1 else 1)


def _midi_targets(files: list[Path], out: str) -> tuple[list[Path], Path]:
    """``(one MIDI path per input, the folder they go in)`` for ``--out`` (a .mid file or a folder); checks the
    kind of an existing ``--out`` but creates nothing."""
    target = Path(out)
    if target.suffix.lower() in (".mid", ".midi"):
        if target.is_dir():
            raise ValueError(f"{target}: --out is an existing folder, not a MIDI file")
        if len(files) != 1:
            raise ValueError(f"--out {out} names one MIDI file but {len(files)} inputs were given; give a folder")
        return [target], target.parent
    folder = out_folder_argument(out)
    return [folder / f"{path.stem}.mid" for path in files], folder


def command_transcribe(args: argparse.Namespace) -> None:
    from scoresep.inference.midi_out import write_midi
    from scoresep.inference.separation import Separator, pick_device
    from scoresep.inference.sources import FileSource
    from scoresep.inference.transcription import Transcriber

    device = pick_device(args.device, "--device")
    files = audio_inputs(args.inputs)
    targets, folder = _midi_targets(files, args.out)
    transcriber = Transcriber.from_checkpoint(args.ckpt, threshold=args.threshold, chunk_seconds=args.chunk_seconds,
                                              device=device)
    separator = None
    if args.from_separated:
        separator = Separator.from_checkpoint(args.separator_ckpt or args.ckpt, chunk_seconds=args.chunk_seconds,
                                              device=device)
    failures = 0
    with output_folder(folder):
        for path, target in zip(files, targets, strict=True):
            try:
                source = FileSource(path, transcriber.sample_rate)
                for note in source.notes:
                    print(f"{path}: note: {note}", file=sys.stderr)
                if peak_amplitude(source) < SILENCE:
                    raise AudioError(f"{path}: the audio is silent; nothing to transcribe")
                if target.is_dir():
                    raise AudioError(f"{target}: a folder of that name is in the way of the MIDI file")
                midi = transcriber.to_midi(transcriber.transcribe_source(source, separator))
                write_midi(target, midi)
            except (AudioError, OSError) as error:
                failures += 1
                print(f"scoresep transcribe: error: {error}", file=sys.stderr)
                continue
            counts = ", ".join(f"{name} {len(track.notes)}" for name, track in
                               zip(transcriber.instruments, midi.instruments, strict=True))
            print(f"{path} -> {target} (notes: {counts})")
    if failures:  # one input: its error line is the last line, naming the file
        raise SystemExit(f"scoresep transcribe: {failures} of {len(files)} input(s) failed" if len(files) > 1 else 1)


def command_evaluate(args: argparse.Namespace) -> None:
    from scoresep.inference.evaluate import evaluate_checkpoint, write_json
    from scoresep.inference.separation import pick_device

    device = pick_device(args.device, "--device")
    out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(f".{args.split}.json")
    if out.is_dir():
        given = "--out is" if args.out else "the default result file (next to the checkpoint) is"
        raise ValueError(f"{out}: {given} an existing folder, not a JSON file")
    with output_folder(out.parent):
        result = evaluate_checkpoint(args.ckpt, args.data, args.split, args.cache, args.mixture, args.chunk_seconds,
                                     args.threshold, device, args.workers, progress=not args.quiet)
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


def add_commands(commands) -> None:
    """Register separate, transcribe and evaluate on the CLI's sub-parsers."""
    separate = commands.add_parser("separate", help="separate audio files into one file per instrument")
    separate.add_argument("inputs", nargs="+", help="audio files (wav, flac, mp3, ogg, aiff) or folders of them")
    separate.add_argument("--ckpt", required=True, help="a stage-2 or stage-3 checkpoint")
    separate.add_argument("--out", required=True, help="output folder (one sub-folder per input)")
    separate.add_argument("--format", choices=sorted(AUDIO_FORMATS), default="wav",
                          help="wav/flac: 16-bit; wav32: 32-bit float (default wav)")
    separate.add_argument("--chunk-seconds", type=float, default=30.0, help="audio per chunk (memory bound)")
    separate.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    separate.add_argument("--quiet", action="store_true", help="no progress bar")
    separate.set_defaults(run=command_separate)

    transcribe = commands.add_parser("transcribe", help="transcribe audio files to multi-instrument MIDI")
    transcribe.add_argument("inputs", nargs="+", help="audio files or folders of them")
    transcribe.add_argument("--ckpt", required=True, help="a stage-1, stage-2 or stage-3 checkpoint")
    transcribe.add_argument("--out", required=True, help="a .mid file (one input) or a folder")
    transcribe.add_argument("--from-separated", action="store_true",
                            help="transcribe each separated instrument instead of the mixture")
    transcribe.add_argument("--separator-ckpt", default=None,
                            help="with --from-separated: the separator's checkpoint (default: --ckpt)")
    transcribe.add_argument("--threshold", type=float, default=None,
                            help="note probability threshold for every instrument (default: the checkpoint's "
                                 "calibrated per-instrument thresholds; 0.5 for checkpoints without)")
    transcribe.add_argument("--chunk-seconds", type=float, default=30.0, help="audio per chunk (memory bound)")
    transcribe.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    transcribe.set_defaults(run=command_transcribe)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on whole tracks of a split (JSON)")
    evaluate.add_argument("--ckpt", required=True, help="a stage checkpoint")
    evaluate.add_argument("--data", required=True, help="Slakh-layout dataset folder")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--out", default=None, help="JSON path (default: next to the checkpoint)")
    evaluate.add_argument("--cache", default="data/cache", help="cache folder (default data/cache)")
    evaluate.add_argument("--mixture", default="instruments", choices=("instruments", "full"),
                          help="instruments: sum of the instruments' stems (the paper); full: the mix file")
    evaluate.add_argument("--threshold", type=float, default=None,
                          help="note probability threshold for every instrument (default: the checkpoint's "
                               "calibrated per-instrument thresholds; 0.5 for checkpoints without)")
    evaluate.add_argument("--chunk-seconds", type=float, default=30.0, help="audio per chunk")
    evaluate.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when available)")
    evaluate.add_argument("--workers", type=int, default=None, help="processes for building the cache")
    evaluate.add_argument("--quiet", action="store_true", help="no per-track lines")
    evaluate.set_defaults(run=command_evaluate)
