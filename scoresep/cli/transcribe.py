"""``scoresep transcribe``: audio files to multi-instrument MIDI, from the mixture or from each separated
instrument; a MIDI file already there (it may be the user's score) is replaced only with ``--overwrite``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scoresep.cli.inputs import audio_inputs, each_input, end_of_batch, out_folder_argument, peak_amplitude
from scoresep.cli.options import add_compute_options
from scoresep.constants import (
    SILENCE,
)
from scoresep.data.audio import AudioError
from scoresep.errors import SettingsError
from scoresep.fileio import output_lock, refuse_existing
from scoresep.inference.writers import output_folder


def _midi_targets(files: list[Path], out: str) -> tuple[list[Path], Path]:
    """``(one MIDI path per input, the folder they go in)`` for ``--out`` (a .mid file or a folder); checks the
    kind of an existing ``--out`` but creates nothing."""
    target = Path(out)
    if target.suffix.lower() in (".mid", ".midi"):
        if target.is_dir():
            raise SettingsError(f"{target}: --out is an existing folder, not a MIDI file")
        if len(files) != 1:
            raise SettingsError(f"--out {out} names one MIDI file but {len(files)} inputs were given; give a folder")
        return [target], target.parent
    folder = out_folder_argument(out)
    return [folder / f"{path.stem}.mid" for path in files], folder


def command_transcribe(args: argparse.Namespace) -> None:
    from scoresep.data.midi import write_midi
    from scoresep.inference.separation import Separator, pick_device
    from scoresep.inference.sources import FileSource
    from scoresep.inference.transcription import Transcriber

    device = pick_device(args.device, "--device")
    files = audio_inputs(args.inputs)
    targets, folder = _midi_targets(files, args.out)
    for target in targets:  # a MIDI file there may be the user's score: replaced only when asked
        refuse_existing([target], args.overwrite)
    transcriber = Transcriber.from_checkpoint(args.ckpt, threshold=args.threshold, chunk_seconds=args.chunk_seconds,
                                              device=device)
    separator = None
    if args.from_separated:
        separator = Separator.from_checkpoint(args.separator_ckpt or args.ckpt, chunk_seconds=args.chunk_seconds,
                                              device=device)
        if separator.network.reads_score:
            raise SettingsError(f"{args.separator_ckpt or args.ckpt}: its separator reads the score, and transcribe "
                                "has none to give it; --from-separated needs an audio-only separator")
    def transcribe_one(pair: tuple[Path, Path]) -> str:
        path, target = pair
        source = FileSource(path, transcriber.sample_rate)
        for note in source.notes:
            print(f"{path}: note: {note}", file=sys.stderr)
        if peak_amplitude(source) < SILENCE:
            raise AudioError(f"{path}: the audio is silent; nothing to transcribe")
        if target.is_dir():
            raise AudioError(f"{target}: a folder of that name is in the way of the MIDI file")
        with output_lock(target):
            refuse_existing([target], args.overwrite)  # again: another run may have written it since
            midi = transcriber.to_midi(transcriber.transcribe_source(source, separator))
            write_midi(target, midi)
        counts = ", ".join(f"{name} {len(track.notes)}" for name, track in
                           zip(transcriber.instruments, midi.instruments, strict=True))
        return f"{path} -> {target} (notes: {counts})"

    with output_folder(folder):
        failures = each_input("transcribe", list(zip(files, targets, strict=True)), (AudioError, OSError),
                              transcribe_one)
    end_of_batch("transcribe", failures, len(files))


def add_transcribe_command(commands) -> None:
    """Register ``transcribe`` on the CLI's sub-parsers."""
    transcribe = commands.add_parser("transcribe", help="transcribe audio files to multi-instrument MIDI")
    transcribe.add_argument("inputs", nargs="+", help="audio files or folders of them")
    transcribe.add_argument("--ckpt", required=True, help="a stage-1, stage-2 or stage-3 checkpoint")
    transcribe.add_argument("--out", required=True, help="a .mid file (one input) or a folder")
    transcribe.add_argument("--overwrite", action="store_true",
                            help="replace existing MIDI files (without it, the run refuses to: one may be your score)")
    transcribe.add_argument("--from-separated", action="store_true",
                            help="transcribe each separated instrument instead of the mixture")
    transcribe.add_argument("--separator-ckpt", default=None,
                            help="with --from-separated: the separator's checkpoint (default: --ckpt)")
    add_compute_options(transcribe, threshold=True)
    transcribe.set_defaults(run=command_transcribe)
