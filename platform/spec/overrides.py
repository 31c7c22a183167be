"""`--set section.key=value` on the commands: changes to a search-space file's YAML mapping
before it is validated, so a value given on the command line is typed and checked exactly
as the same value written in the file (platform.spec.spaces.load).

`search.training.lr_g={loguniform: [1e-4, 1e-3]}` sets one searched key (search keys are
`section.key` themselves); any other path is a nested key, e.g. `tune.scheduler.name=fifo`.
A fixed value for a key the file searches (`training.lr_g=0.001` where `search:` has
`training.lr_g`) replaces that search: the key is no longer searched, and the dry run and
the sweep say so (replaced_searches), unless the command line sets that search too.
Values are YAML: `4`, `0.5`, `true`, `[8, 16]`, `{uniform: [0.3, 0.7]}`.
"""
import copy
from typing import Any

import yaml

from data.spec import REDACTED, SECRET_KEYS, redacted, shown_value, without_credentials
from platform.spec.typed import SpecError, preview


def parse(pairs: list[str], loader=yaml.SafeLoader) -> dict[str, Any]:
    """`["tune.num_samples=4", ...]` -> {"tune.num_samples": 4, ...}; later ones win."""
    parsed = {}
    for pair in pairs:
        shown = pair if len(pair) <= 60 else preview(pair)  # a 20 kB --set is not echoed whole
        path, sep, text = pair.partition("=")
        path = path.strip()
        if not sep or not path or any(not part for part in path.split(".")) or len(path) > 200:
            raise SpecError(f"--set {shown}: expected section.key=value, e.g. tune.num_samples=4.")
        try:
            parsed[path] = yaml.load(text, Loader=loader) if text.strip() else ""
        except yaml.YAMLError as error:
            raise SpecError(f"--set {shown}: {path}: the value is not valid YAML or not accepted "
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
                raise SpecError(f"--set {path}: {where} is {preview(child)} in the file, not a section with keys.")
            node = child
        node[parts[-1]] = value
    for path in replaced_searches(raw, overrides):
        del raw["search"][path]  # the command line's fixed value wins over the file's search
    return raw


def replaced_searches(raw: dict, overrides: dict[str, Any]) -> dict[str, Any]:
    """The searches of the file's mapping `raw` that `--set section.key=value` overrides
    replace with a fixed value: {"training.lr_g": {"loguniform": [...]}}."""
    search = raw.get("search") if isinstance(raw, dict) else None
    if not isinstance(search, dict):
        return {}
    # a search given on the command line too (`search.model.width=...`) is what the user asks for
    return {path: search[path] for path in overrides
            if not path.startswith("search.") and path in search and f"search.{path}" not in overrides}


def replacement_lines(raw: dict, overrides: dict[str, Any]) -> list[str]:
    """What a sweep and its dry run print about the searches `--set` replaced in the file's
    mapping `raw`."""
    return [f"--set {key}={yaml.safe_dump(overrides[key], default_flow_style=True).strip().removesuffix(chr(10) + '...')} "
            f"replaces the file's search {key}: {yaml.safe_dump(domain, default_flow_style=True).strip()}; "
            "it is not searched" for key, domain in replaced_searches(raw, overrides).items()]


def as_params(overrides: dict[str, Any]) -> dict[str, str]:
    """What the parent run records of them: `set/tune.num_samples` = "4" (a secret such as
    dataset.download.cookies as "<redacted>")."""
    return {f"set/{path}": REDACTED if path in SECRET_KEYS and value else
            yaml.safe_dump(shown_value(path, value), default_flow_style=True).strip().removesuffix("\n...")
            for path, value in overrides.items()}


def shown(pairs: list[str]) -> list[str]:
    """`--set` pairs as they may be printed or recorded: secrets' values redacted."""
    return [f"{pair.partition('=')[0]}={REDACTED}" if pair.partition("=")[0].strip() in SECRET_KEYS
            else "=".join((pair.partition("=")[0], without_credentials(pair.partition("=")[2]))) if "://" in pair
            else pair for pair in pairs]


def effective_text(path: str, raw: dict, changed: dict, pairs: list[str]) -> str | None:
    """The search-space file as a sweep with these `--set`s runs it: `changed`, the file's
    mapping `raw` with the `--set`s applied, with secrets (dataset.download.cookies)
    redacted, under a header naming the file and the `--set`s; None when that is the file
    itself (no `--set`, no secret)."""
    safe = redacted(changed)
    if not pairs and safe == raw:
        return None
    header = f"# {path}" + (f" with --set {' '.join(shown(pairs))}" if pairs else "") + \
        (" (secrets redacted)" if safe != changed else "")
    return header + "\n" + yaml.safe_dump(safe, sort_keys=False)
