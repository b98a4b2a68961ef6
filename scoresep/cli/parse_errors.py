"""One line for a command line or YAML that does not parse: jsonargparse's message spans up to ~70 lines with
a dump of the namespace; the user reads where the bad value was written (``--option``, or ``FILE: key.path``) and
what is wrong, with the closest valid key for a misspelled one (difflib over the keys at that level)."""

from __future__ import annotations

import re
from pathlib import Path

_UNKNOWN_IN_CLASS = re.compile(r"Option '([^']+)' is not accepted")
_CLASS_PROBLEM = re.compile(r"Problem with given class_path '([^']+)'")
_UNKNOWN_OPTION = re.compile(r"(?:Subcommand|Group) '[^']+' does not accept option '([^']+)'")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_EXPECTED = re.compile(r"Expected an? (.+?)(?:\. Got value: (.*))?$")
_PARSE_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
                "- Expected a <class 'NoneType'>", "tip:")
NON_FINITE = {"nan", "+nan", "-nan", ".nan", "inf", "+inf", "-inf", ".inf", "-.inf", "infinity", "-infinity"}


def describe_parse_error(message: str, argv: list[str], parser=None) -> str:
    """One line for a jsonargparse error (which spans up to ~70 lines with a dump of the namespace): where the bad
    value comes from (``--option`` or ``FILE: key.path``) and what is wrong, with the closest valid key for an
    unknown one (difflib over the keys at that level).

    ``argv`` is the subcommand's command line; ``parser`` its parser (for the keys a level holds)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if (match := _UNKNOWN_IN_CLASS.search(message)) is not None:
        key, before = match.group(1), message[: match.start()]
        chain = _PARSER_KEY.findall(before)
        classes = _CLASS_PROBLEM.findall(before)
        valid = _class_keys(classes[-1]) if classes else []
        if valid and key.split(".")[0] not in valid:  # 'model.init_args.hidden' where the class has no 'model'
            key = key.split(".")[0]
        return _unknown_key(chain + [key], valid, argv)
    if (match := _UNKNOWN_OPTION.search(message)) is not None:
        parts = match.group(1).split(".")
        return _unknown_key(parts, _parser_keys(parser, parts[:-1]), argv)
    if lines and lines[0].startswith("unrecognized arguments:"):
        options = [token for token in lines[0].split(":", 1)[1].split() if token.startswith("--")]
        if options:
            parts = options[0][2:].split("=", 1)[0].split(".")
            return _unknown_key(parts, _parser_keys(parser, parts[:-1]), argv)
    for index, line in enumerate(lines):
        expected = _EXPECTED.search(line.lstrip("- "))
        if expected is None or "NoneType" in expected.group(1):
            continue
        chain = _PARSER_KEY.findall("\n".join(lines[: index + 1]))
        value = expected.group(2)
        if value is None:
            value = next((rest.split(":", 1)[1].strip() for rest in lines[index:] if rest.startswith("Given value:")),
                         None)
        if not chain:
            break
        source = _source(chain, argv)
        kind = _type_name(expected.group(1))
        if expected.group(1) == "<class 'float'>" and value is not None and value.strip().lower() in NON_FINITE:
            return f"{source}: must be a finite number, got {value.strip()}"
        return f"{source}: expected {kind}, got {value!r}" if value is not None else f"{source}: expected {kind}"
    kept = [re.sub(r'Parser key "([^"]+)":?', lambda m: f"--{m.group(1)}:", line).rstrip(":") for line in lines
            if not line.startswith(_PARSE_NOISE) and not (line.startswith("Given value:") and "NestedArg(" in line)]
    return "; ".join(kept) or message.strip()


def _type_name(text: str) -> str:
    """``<class 'float'>`` -> ``a float``; ``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    if (match := re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", text)) is not None:
        name = match.group(1)
        return f"an {name}" if name[0] in "aeiou" else f"a {name}"
    if (match := re.fullmatch(r"typing\.Literal\[(.*)\]", text)) is not None:
        return f"one of {match.group(1)}"
    return text


def _unknown_key(parts: list[str], valid: list[str], argv: list[str]) -> str:
    """``SOURCE: unknown key 'KEY' in LEVEL (did you mean 'CLOSEST'?)``; a feature setting written where the
    stage or the data module took it before it moved into ``data.features`` (a command line or a run's
    config.yaml of then) is told where it is now."""
    import difflib

    from scoresep.features import FEATURE_FIELDS

    parts = [part for chunk in parts for part in chunk.split(".")]
    key = parts[-1]
    source, written = _locate(parts, argv)
    level = ".".join(written[:-1]) if written else ".".join(parts[:-1])
    where = f" in {level}" if level else ""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if key in FEATURE_FIELDS and "features" in valid:
        hint = f" (the feature settings are one block, set once: data.features.{key})"
    elif close:
        hint = f" (did you mean '{close[0]}'?)"
    elif valid and len(valid) <= 12:
        hint = f" (the keys there: {', '.join(sorted(valid))})"
    else:
        hint = f" (scoresep {argv[0] if argv else 'fit'} --help lists the options)"
    return f"{source}: unknown key '{key}'{where}{hint}"


def _source(chain: list[str], argv: list[str]) -> str:
    parts = [part for chunk in chain for part in chunk.split(".")]
    source, written = _locate(parts, argv)
    if source.startswith("--"):
        return source
    return f"{source}: {'.'.join(written or parts)}"


def _normal(parts) -> list[str]:
    """A key path as jsonargparse nests it: ``init_args`` and list positions left out."""
    return [part for part in parts if part not in ("init_args", "dict_kwargs") and not part.startswith("[")]


def _locate(parts: list[str], argv: list[str]) -> tuple[str, list[str]]:
    """Where the user wrote the key path ``parts``: ``("--a.init_args.b", [its parts])`` for the command line,
    ``(config file, [the path in it])`` for a YAML (the last one given that holds it; experiments/base/ last),
    ``("the config", [])`` when neither is found."""
    import yaml

    from scoresep.configs import base_config_files

    wanted = _normal(parts)
    files: list[str] = []
    for index, token in enumerate(argv):
        name, _, value = token.partition("=")
        if name in ("--config", "-c"):
            files.append(value or (argv[index + 1] if index + 1 < len(argv) else ""))
            continue
        if not token.startswith("--"):
            continue
        prefix = name[2:].split(".")
        if _normal(prefix) == wanted:
            return name, prefix
        value = value or (argv[index + 1] if index + 1 < len(argv) else "")
        if value.lstrip().startswith("{"):  # --model.init_args.model='{"class_path": ..., "init_args": {...}}'
            try:
                document = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            for written in _key_paths(document):
                if _normal(prefix + written) == wanted:
                    return name, prefix + written
    for path in [*reversed(files), *base_config_files()]:
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        for written in _key_paths(document):
            if _normal(written) == wanted:
                return path, written
    return "the config", []


def _key_paths(node, prefix: tuple[str, ...] = ()):
    """Every key path of a parsed YAML document (list items as ``[i]``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield [*prefix, str(key)]
            yield from _key_paths(value, (*prefix, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _key_paths(value, (*prefix, f"[{index}]"))


def _class_keys(class_path: str) -> list[str]:
    """The init arguments of a class (for a class taking ``**kwargs``, its bases' too, as jsonargparse reads
    them)."""
    import inspect

    from scoresep.class_paths import import_object

    try:
        target = import_object(class_path)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in getattr(target, "__mro__", (target,)):
        init = getattr(klass, "__init__", None)
        if klass is object or init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))


def _parser_keys(parser, level: list[str]) -> list[str]:
    """The keys a subcommand's parser holds at ``level`` (``[]``: the top, ``["trainer"]``: the trainer's)."""
    if parser is None:
        return []
    prefix = ".".join(level)
    keys = []
    for action in parser._actions:
        dest = action.dest
        if dest.endswith(".help") or dest in ("help", "print_config"):
            continue
        if not prefix:
            keys.append(dest.split(".")[0])
        elif dest.startswith(prefix + "."):
            keys.append(dest[len(prefix) + 1 :].split(".")[0])
    return list(dict.fromkeys(keys))
