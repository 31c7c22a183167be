"""`--set section.key=value` on the commands: changes to a search-space file's YAML mapping
before it is validated, so a value given on the command line is typed and checked exactly
as the same value written in the file (platform.spaces.load).

`search.training.lr_g={loguniform: [1e-4, 1e-3]}` sets one searched key (search keys are
`section.key` themselves); any other path is a nested key, e.g. `tune.scheduler.name=fifo`.
Values are YAML: `4`, `0.5`, `true`, `[8, 16]`, `{uniform: [0.3, 0.7]}`.
"""
import copy
from typing import Any

import yaml

from data.spec import REDACTED, SECRET_KEYS, redacted
from platform.typed import SpecError


def parse(pairs: list[str], loader=yaml.SafeLoader) -> dict[str, Any]:
    """`["tune.num_samples=4", ...]` -> {"tune.num_samples": 4, ...}; later ones win."""
    parsed = {}
    for pair in pairs:
        path, sep, text = pair.partition("=")
        path = path.strip()
        if not sep or not path or any(not part for part in path.split(".")):
            raise SpecError(f"--set {pair}: expected section.key=value, e.g. tune.num_samples=4.")
        try:
            parsed[path] = yaml.load(text, Loader=loader) if text.strip() else ""
        except yaml.YAMLError as error:
            raise SpecError(f"--set {pair}: {path}: the value is not valid YAML "
                            f"({getattr(error, 'problem', error)}).") from None
    return parsed


def apply(raw: dict, overrides: dict[str, Any]) -> dict:
    """A copy of the file's mapping with each override set at its key path."""
    raw = copy.deepcopy(raw)
    for path, value in overrides.items():
        parts = path.split(".")
        if parts[0] == "search" and len(parts) > 1:  # search keys are "section.key" themselves
            parts = ["search", ".".join(parts[1:])]
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[:depth + 1])
                raise SpecError(f"--set {path}: {where} is {child!r} in the file, not a section with keys.")
            node = child
        node[parts[-1]] = value
    return raw


def as_params(overrides: dict[str, Any]) -> dict[str, str]:
    """What the parent run records of them: `set/tune.num_samples` = "4" (a secret such as
    dataset.download.cookies as "<redacted>")."""
    return {f"set/{path}": REDACTED if path in SECRET_KEYS and value else
            yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
            for path, value in overrides.items()}


def shown(pairs: list[str]) -> list[str]:
    """`--set` pairs as they may be printed or recorded: secrets' values redacted."""
    return [f"{pair.partition('=')[0]}={REDACTED}" if pair.partition("=")[0].strip() in SECRET_KEYS else pair
            for pair in pairs]


def effective_file(path: str, pairs: list[str], loader, folder: str) -> str:
    """The search-space file as a sweep with these `--set`s runs it: the file itself when
    there are none and it holds no secret, else a copy (same name, in `folder`) with the
    values in place and secrets (dataset.download.cookies) redacted."""
    from pathlib import Path
    raw = yaml.load(Path(path).read_text(), Loader=loader)
    changed = apply(raw, parse(pairs, loader)) if pairs and isinstance(raw, dict) else raw
    safe = redacted(changed) if isinstance(changed, dict) else changed
    if not pairs and safe == raw:
        return str(Path(path).resolve())
    out = Path(folder) / Path(path).name
    header = f"# {path}" + (f" with --set {' '.join(shown(pairs))}" if pairs else "") + \
        (" (secrets redacted)" if safe != changed else "")
    out.write_text(header + "\n" + yaml.safe_dump(safe, sort_keys=False))
    return str(out)
