"""README and docs/ say what runs: every ``scoresep`` command in their shell blocks parses as written (options,
sub-commands, config files), every ``make`` target and ``experiments/`` file they name exists, every relative
link resolves, and the Python blocks of docs/extending.md run. README stays short enough to read in ten minutes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from scoresep.cli import LIGHTNING_COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220


def _blocks(page: Path, languages: tuple[str, ...]) -> list[str]:
    return [body for language, body in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.S)
            if language in languages]


def _commands(prefix: str) -> list[tuple[str, list[str]]]:
    """``(page name, argv)`` of every shell-block line that starts with ``prefix`` (line continuations joined,
    comments dropped)."""
    found = []
    for page in PAGES:
        for block in _blocks(page, ("bash", "sh", "")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith(".venv/bin/"):
                    line = line[len(".venv/bin/"):]
                if line.startswith(prefix + " "):
                    found.append((page.name, shlex.split(line, comments=True)[1:]))
    return found


SCORESEP = _commands("scoresep")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("page, argv", SCORESEP, ids=[f"{page}:{' '.join(argv[:3])}" for page, argv in SCORESEP])
def test_every_scoresep_command_parses_as_written(page, argv, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the commands are written for the repository root
    if argv[0] in LIGHTNING_COMMANDS:
        monkeypatch.setattr("sys.argv", ["scoresep"])
        with pytest.raises(SystemExit) as stopped:  # LightningCLI parses everything, prints and stops
            main([*argv, "--print_config"])
        assert stopped.value.code in (0, None), capsys.readouterr().err
    else:
        build_parser().parse_args(argv)  # argparse exits with status 2 on an unknown option


def test_every_make_target_and_experiment_file_named_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    for page, argv in _commands("make"):
        assert argv[0] in targets, f"{page}: make {argv[0]} is not a target"
    for page in PAGES:
        for block in _blocks(page, ("bash", "sh", "", "yaml")):
            for path in re.findall(r"\bexperiments/[\w./-]+\.(?:yaml|sh|sbatch)", block):
                assert (ROOT / path).is_file(), f"{page.name}: {path} does not exist"


def test_every_relative_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: link to {target} is broken"


def test_the_python_blocks_of_extending_run_and_the_others_compile():
    for block in _blocks(ROOT / "docs" / "extending.md", ("python",)):  # its example term: gone after the test
        exec(compile(block, "docs/extending.md", "exec"), {})  # noqa: S102 - the page's own examples
    for page in PAGES:
        for block in _blocks(page, ("python",)):
            compile(block, page.name, "exec")


def test_readme_puts_scoresep_on_the_path_before_its_first_command_and_writes_it_one_way():
    """After ``make install`` the command lives in .venv/bin: README's set-up block activates the environment, and
    every later command is written the same way (bare ``scoresep``), so each one runs as written."""
    set_up, *later = _blocks(ROOT / "README.md", ("bash",))
    assert "source .venv/bin/activate" in set_up and "make install" in set_up
    for block in later:
        for line in block.splitlines():
            assert not line.startswith(".venv/bin/"), f"README writes {line!r}; the others say `scoresep`"


def test_the_quick_start_data_commands_run_as_written(tmp_path):
    """README's first two quick-start lines (render a mini-Slakh, build its cache), run as a newcomer would, in an
    empty folder: about 20 s on 2 cores. The lines after them train for minutes (their parsing is checked above)."""
    import subprocess
    import sys

    quick_start = _blocks(ROOT / "README.md", ("bash",))[1]
    lines = [line for line in quick_start.splitlines() if line.startswith("scoresep ")][:2]
    assert [shlex.split(line)[1] for line in lines] == ["synth", "prepare"]
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        done = subprocess.run([sys.executable, "-m", "scoresep", *argv], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "data" / "minislakh").glob("*/Track*/metadata.yaml"))) == 48
    assert list((tmp_path / "data" / "cache").glob("*/index.json"))
