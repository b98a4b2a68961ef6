"""The W&B sweep's parameters are CLI keys: what an agent passes reaches the stage, a typo is refused."""

from pathlib import Path

import pytest
import yaml

from scoresep.cli import main

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["scoresep"])
    monkeypatch.chdir(ROOT)  # the sweep's command names its config relative to the repository


def _agent_command(sweep: dict, values: dict) -> list[str]:
    """The argument list ``wandb agent`` runs: ``command`` with ${env} dropped and ${args} expanded to
    ``--name=value`` per parameter (W&B's format; Python's str() of the sampled value)."""
    args = []
    for item in sweep["command"]:
        if item == "${args}":
            args += [f"--{name}={value}" for name, value in values.items()]
        elif item not in ("${env}", "${program}"):
            args.append(item)
    assert args[0] == "scoresep", "the sweep runs the scoresep command"
    return args[1:]


def _sample(spec: dict):
    if "values" in spec:
        return spec["values"][-1]
    return spec["max"] if "max" in spec else spec["value"]


def _get(config: dict, dotted: str):
    for key in dotted.split("."):
        config = config[key]
    return config


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_parameters_override_the_config(path, capsys):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"].startswith("val/") and sweep["method"] in ("bayes", "random", "grid")
    values = {name: _sample(spec) for name, spec in sweep["parameters"].items()}
    command = _agent_command(sweep, values)
    base = yaml.safe_load((ROOT / command[command.index("--config") + 1]).read_text())
    changed = [name for name, value in values.items() if _get(base, name) != value]
    assert changed, "pick sample values that differ from the YAML, or the test proves nothing"
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--print_config"])
    assert stopped.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)
    for name, value in values.items():
        assert _get(printed, name) == value, name
    assert printed["trainer"]["logger"]["init_args"]["offline"] is False  # the sweep must see the metric


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_misspelled_sweep_parameter_is_refused(path, capsys):
    sweep = yaml.safe_load(path.read_text())
    command = _agent_command(sweep, {"model.init_args.harmonic_mix_wieght": 0.5})
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--print_config"])
    assert stopped.value.code not in (None, 0)
    assert "harmonic_mix_wieght" in capsys.readouterr().err
