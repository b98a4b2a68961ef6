"""Running ``scoresep`` in-process as a user would, and reading what it left: its last line and the files."""

from pathlib import Path


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``scoresep ARGV`` in-process as a user would: ``(exit status, stdout, stderr)``."""
    from scoresep.cli import main

    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_line(text: str) -> str:
    """The last non-empty line of a command's output: what the user reads."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int] | str]:
    """Every file (size, modification time) and folder under ``folder``, paths with a part in ``skip`` aside:
    compare two to show that a command created, changed or removed nothing."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "folder"
            for p in sorted(folder.rglob("*")) if not set(p.relative_to(folder).parts) & set(skip)}
