"""Search-space files: YAML -> a typed, validated SweepSpec (platform/spec/tune_space.py turns
it into Tune's param space, searcher and scheduler).

A file has these sections, each optional but `name` (see search_spaces/quickstart.yaml):
  name      the experiment's name (MLflow experiment, Tune run)
  dataset   data.spec.DatasetSpec: sources, segmenting, mel parameters
  model     trainables.config.ModelConfig: the model's fixed hyperparameters
  training  trainables.config.TrainingConfig: the trainer's fixed hyperparameters
  evaluation trainables.config.EvaluationConfig: FID sample count and embedding
  search    "section.key": domain, where a domain is one of
              {loguniform: [low, high]}  {uniform: [low, high]}  {randint: [low, high]}
              {choice: [a, b, ...]}      {grid: [a, b, ...]}      or a plain constant
  experiments  name: {model: {...}, training: {...}}: fixed settings run as a grid beside
            the search (search_spaces/paper.yaml: the study's six runs)
  tune      searcher, scheduler (asha, fifo, pbt), samples, concurrency, resources per
            trial, time budget
  mlflow    tracking URI and experiment name
  storage   where datasets and Tune results go
Every mistake stops the command before Ray starts with one sentence naming the file and
the key path (platform.spec.typed.SpecError).
"""
import dataclasses
import itertools
import math
import os
import re
import stat
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from data.spec import DatasetSpec
from platform.spec import overrides as overriding
from platform.spec.typed import SpecError, build, convert, did_you_mean, preview
from trainables.config import SECTIONS as TRIAL_SECTIONS
from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig, hifigan_mismatch


MAX_FILE_BYTES = 1 << 20  # a search-space file is a few kB; this bounds reading and parsing it
MAX_DEPTH = 32            # nesting of YAML collections, far beyond any real spec
MAX_VALUES = 100_000      # values a document expands to, aliases counted where used


class Refused(yaml.MarkedYAMLError):
    """YAML that parses but is not accepted in a spec (aliases, deep nesting)."""


class SpecLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float: YAML 1.1 wants `1.0e-4`, people write `1e-4`.

    It bounds what a document expands to: nine levels of nine aliases (`*a`) in 541 bytes
    are 9**9 values, which filled memory and every error message; an alias may not refer to
    itself; nesting past MAX_DEPTH, in the file or through aliases, would otherwise end in a
    RecursionError. A key given twice in one mapping (two `training:` sections) is refused
    with both lines: YAML would keep the last silently."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key, _ in node.value:  # before merge keys (<<) are flattened: an explicit key may override those
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise Refused(None, None, f"the key {key.value!r} is given twice, at lines {seen[key.value] + 1} "
                                              f"and {key.start_mark.line + 1}; keep one", key.start_mark)
                seen[key.value] = key.start_mark.line
        return super().construct_mapping(node, deep)

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_DEPTH:
                    raise Refused(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                  self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def compose_document(self):
        node = super().compose_document()
        _measure(node, {}, 1)
        return node


def _measure(node, sizes: dict, depth: int) -> int:
    """How many values `node` expands to, aliases counted each time they are used (`sizes`:
    each shared node measured once); Refused past MAX_VALUES, MAX_DEPTH, or at a cycle."""
    if id(node) in sizes:
        if sizes[id(node)] is None:
            raise Refused(None, None, "an alias refers to the collection it is in", node.start_mark)
        return sizes[id(node)]
    if depth > MAX_DEPTH:
        raise Refused(None, None, f"nested more than {MAX_DEPTH} levels deep (aliases expanded)", node.start_mark)
    sizes[id(node)] = None
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
    size = 1 + sum(_measure(child, sizes, depth + 1) for child in children)
    if size > MAX_VALUES:
        raise Refused(None, None, f"holds more than {MAX_VALUES:,} values (aliases expanded); a search-space "
                                  "file has a few hundred", node.start_mark)
    sizes[id(node)] = size
    return size


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


@dataclass(frozen=True)
class SchedulerSpec:
    name: Literal["asha", "fifo", "pbt"] = "asha"
    grace_period: int = 1       # ASHA: iterations every trial gets before it can be stopped
    reduction_factor: float = 2.0
    # PBT: every `perturbation_interval` iterations the bottom `quantile_fraction` of trials
    # take a top trial's checkpoint and perturb its learning rates (the searched ones).
    perturbation_interval: int = 2
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    synch: bool = False  # PBT: perturb all trials together when the slowest reaches the interval

    def __post_init__(self):
        if self.grace_period < 1 or self.perturbation_interval < 1:
            raise ValueError("grace_period and perturbation_interval must be at least 1")
        if self.reduction_factor <= 1:
            raise ValueError("reduction_factor must be greater than 1")
        if not 0 < self.quantile_fraction <= 0.5 or not 0 <= self.resample_probability <= 1:
            raise ValueError("quantile_fraction must lie in (0, 0.5] and resample_probability in [0, 1]")


@dataclass(frozen=True)
class ResourcesSpec:
    cpu: float = 1.0
    gpu: float = 0.0  # fractions share a card between trials
    custom: dict[str, float] = field(default_factory=dict)  # Ray custom resources, e.g. a node label

    def __post_init__(self):
        if self.cpu <= 0 or self.gpu < 0:
            raise ValueError("cpu must be positive and gpu not negative")
        if any(amount <= 0 for amount in self.custom.values()):
            raise ValueError("custom resource amounts must be positive")

    def to_tune(self) -> dict:
        return {"cpu": self.cpu, "gpu": self.gpu, **self.custom}


@dataclass(frozen=True)
class TuneSpec:
    searcher: Literal["optuna", "random"] = "optuna"
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    num_samples: int = 4
    max_concurrent: int = 2
    resources_per_trial: ResourcesSpec = field(default_factory=ResourcesSpec)
    seed: int = 0
    checkpoints_to_keep: int = 2
    time_budget_s: float | None = None  # the whole sweep: no new trials after it, running ones stop
    # Retries of a trial that errored, from its last checkpoint: a spot worker taken away,
    # a node lost. 0 by default, since a diverged trial (NaN) would only diverge again.
    max_failures: int = 0

    def __post_init__(self):
        for name in ("num_samples", "max_concurrent", "checkpoints_to_keep"):
            if not 1 <= getattr(self, name) <= 100_000:
                raise ValueError(f"{name} must lie between 1 and 100000")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")
        if self.max_failures < 0:
            raise ValueError("max_failures must not be negative")


@dataclass(frozen=True)
class MlflowSpec:
    # Left out: $MLFLOW_TRACKING_URI (set on a cluster's head by cluster.yaml), else a SQLite
    # store in the working directory. Relative paths are made absolute on the driver.
    tracking_uri: str | None = None
    experiment: str | None = None  # defaults to the spec's name

    def resolved_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


@dataclass(frozen=True)
class StorageSpec:
    # Datasets and FID statistics under ROOT/datasets. Left out: $PLATFORM_STORAGE_ROOT (set
    # on a cluster by cluster.yaml), else ./runs. Must be shared by all nodes of a cluster.
    root: str | None = None
    # Tune's storage_path (results, checkpoints): a shared path or an s3:// or gs:// URI.
    # Left out: ROOT/tune.
    tune: str | None = None
    # Where finished datasets are published for trials to copy from: an s3://, gs:// (or any
    # pyarrow.fs) URI. Left out: trials read ROOT/datasets directly, so ROOT must be shared.
    # Set: ROOT is the driver's staging area only (builds, downloads, locks).
    datasets: str | None = None
    # Optuna's studies: left out, a journal file per search space under ROOT/optuna (safe on
    # NFS); or a database URL (postgresql://, mysql://, sqlite:///) a server keeps.
    optuna: str | None = None

    def __post_init__(self):
        if self.optuna is not None and not re.fullmatch(r"(postgresql|mysql|sqlite)(\+\w+)?://.+", self.optuna):
            raise ValueError("optuna must be a database URL such as postgresql://host/db (left out: a journal "
                             "file under storage.root)")
        if self.root and "://" in self.root:
            raise ValueError("root must be a path every node sees (cluster.yaml mounts /srv/shared/runs); "
                             "for datasets on an object store set storage.datasets to an s3:// URI, "
                             "for Tune's results storage.tune")
        if self.datasets is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://.+", self.datasets):
            raise ValueError(f"datasets {preview(self.datasets)} is not a URI such as s3://bucket/prefix "
                             "(a shared path goes in storage.root)")

    def resolved_root(self) -> str:
        # realpath, not Path.resolve: a symlink loop is then the writability check's one sentence
        return os.path.realpath(self.root or os.environ.get("PLATFORM_STORAGE_ROOT") or "runs")

    def resolved_tune(self) -> str:
        if self.tune and "://" in self.tune:
            return self.tune
        return os.path.realpath(self.tune) if self.tune else str(Path(self.resolved_root()) / "tune")


@dataclass(frozen=True)
class Domain:
    kind: Literal["constant", "loguniform", "uniform", "randint", "choice", "grid"]
    values: tuple

    def __str__(self) -> str:
        if self.kind == "constant":
            return repr(self.values[0])
        return f"{self.kind}({', '.join(repr(v) for v in self.values)})"

    def extremes(self) -> list:
        """The values that bound the domain: each must pass the field's own checks."""
        if self.kind in ("loguniform", "uniform"):
            return list(self.values)
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]  # high is exclusive
        return list(self.values)


@dataclass(frozen=True)
class Experiment:
    """One of a sweep's fixed settings (the study's six runs): the spec's model and training
    with this experiment's keys changed. Evaluation is shared so their FIDs compare."""
    model: ModelConfig
    training: TrainingConfig


@dataclass(frozen=True)
class SweepSpec:
    name: str
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    search: dict[str, Domain] = field(default_factory=dict)  # "section.key" -> its domain; load parses it
    tune: TuneSpec = field(default_factory=TuneSpec)
    mlflow: MlflowSpec = field(default_factory=MlflowSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    experiments: dict[str, Experiment] = field(default_factory=dict)  # run as a grid; load parses it

    @property
    def experiment(self) -> str:
        return self.mlflow.experiment or self.name

    def experiment_keys(self) -> list[tuple[str, str]]:
        """The (section, key)s some experiment sets to other than the spec's value."""
        keys = []
        for section in ("model", "training"):
            base = dataclasses.asdict(getattr(self, section))
            for key in base:
                if any(getattr(getattr(e, section), key) != base[key] for e in self.experiments.values()):
                    keys.append((section, key))
        return keys

    def trial_count(self) -> int:
        """The trials this sweep asks for: Tune runs num_samples of every grid point (each
        grid key times each, and the experiments are one more grid)."""
        return math.prod(self._trial_factors().values())

    def _trial_factors(self) -> dict[str, int]:
        factors = {"tune.num_samples": self.tune.num_samples}
        factors.update({f"search.{path}": len(d.values) for path, d in self.search.items() if d.kind == "grid"})
        if self.experiments:
            factors["experiments"] = len(self.experiments)
        return factors

    def training_variants(self) -> list[TrainingConfig]:
        """The training sections its trials run: the experiments' (or the spec's), each with
        every value a search can give the keys that decide a trial's length
        (trainables/trial_length.py), so the longest trial is among them."""
        bases = [e.training for e in self.experiments.values()] or [self.training]
        searched = {path.split(".")[1]: d.extremes() for path, d in self.search.items()
                    if path.startswith("training.") and path.split(".")[1] in LENGTH_KEYS}
        variants = []
        for base in bases:
            for values in itertools.product(*searched.values()):
                try:
                    variants.append(dataclasses.replace(base, **dict(zip(searched, values))))
                except ValueError:  # a combination no trial can have (max_segments below batch_size)
                    continue
        return variants or bases

    def max_iterations(self) -> int | None:
        """The longest trial in iterations where training.iterations sets every length; None
        where epochs set some (the driver resolves them once the dataset is built)."""
        variants = self.training_variants()
        if any(t.epochs is not None for t in variants):
            return None
        from trainables.trial_length import DEFAULT_ITERATIONS
        return max(t.iterations or DEFAULT_ITERATIONS for t in variants)


# The training keys a trial's length depends on (trainables/trial_length.py)
LENGTH_KEYS = ("epochs", "iterations", "batch_size", "critic_steps", "steps_per_iteration", "max_segments",
               "data_fraction")


def _parse_domain(path: str, raw: Any, field_type, section_obj, where: str) -> Domain:
    kinds = ("loguniform", "uniform", "randint", "choice", "grid")
    if isinstance(raw, dict):
        if len(raw) != 1 or next(iter(raw)) not in kinds:
            hint = did_you_mean(next(iter(raw)), kinds) if len(raw) == 1 else ""
            raise SpecError(f"{where}: expected one of {', '.join(kinds)} as the only key, got "
                            f"{preview(sorted(map(str, raw)))}{hint}.")
        kind, args = next(iter(raw.items()))
        if not isinstance(args, list) or not args:
            raise SpecError(f"{where}.{kind}: expected a non-empty list, got {preview(args)}.")
        if kind in ("loguniform", "uniform", "randint"):
            if len(args) != 2:
                raise SpecError(f"{where}.{kind}: expected [low, high], got {preview(args)}.")
            bound_type = int if kind == "randint" else float
            low, high = (convert(v, bound_type, f"{where}.{kind}") for v in args)
            if not low < high:
                raise SpecError(f"{where}.{kind}: low must be less than high, got [{low}, {high}].")
            if kind == "loguniform" and low <= 0:
                raise SpecError(f"{where}.{kind}: low must be positive for a log scale, got {low}.")
            domain = Domain(kind, (low, high))
        else:
            domain = Domain(kind, tuple(convert(v, field_type, f"{where}.{kind}[{i}]") for i, v in enumerate(args)))
    else:
        domain = Domain("constant", (convert(raw, field_type, where),))
    # every bound must pass the dataclass's own checks (a negative learning rate, say)
    for value in domain.extremes():
        try:
            dataclasses.replace(section_obj, **{path.split(".")[1]: convert(value, field_type, where)})
        except ValueError as error:
            raise SpecError(f"{where}: {preview(value)} is out of range ({error}).") from None
    return domain


def _parse_search(raw: Any, spec: SweepSpec, file: str) -> dict[str, Domain]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"{file}: search: expected a mapping of 'section.key' to domains, got {preview(raw)}.")
    domains = {}
    for path, value in raw.items():
        where = f"{file}: search.{path if len(str(path)) <= 60 else preview(path)}"
        section, _, key = str(path).partition(".")
        if section not in TRIAL_SECTIONS or not key:
            raise SpecError(f"{where}: the key must be SECTION.NAME with SECTION one of {', '.join(TRIAL_SECTIONS)}"
                            f"{did_you_mean(section, TRIAL_SECTIONS) if key else ''}.")
        cls = TRIAL_SECTIONS[section]
        hints = typing.get_type_hints(cls)
        if key not in hints:
            raise SpecError(f"{where}: {section} has no key {preview(key)}{did_you_mean(key, hints)} "
                            f"(expected one of: {', '.join(hints)}).")
        domain = _parse_domain(path, value, hints[key], getattr(spec, section), where)
        if domain.kind == "grid" and spec.tune.searcher == "optuna":
            raise SpecError(f"{where}: grid needs tune.searcher: random (Optuna samples, it does not "
                            "enumerate a grid); use choice with Optuna.")
        domains[path] = domain
    return domains


@dataclass(frozen=True)
class SpecFile:
    """A search-space file read once: the validated spec, and what a sweep prints and records
    of how it was given (the `--set`s, the searches they replaced, the file as run)."""
    path: str
    spec: SweepSpec
    pairs: tuple[str, ...]          # the `--set` pairs as typed
    overrides: dict[str, Any]       # the same, parsed: {"tune.num_samples": 4}
    replaced: tuple[str, ...]       # a line per search a `--set` replaced
    effective: str | None           # the file as run (values in place, secrets redacted); None: the file

    def params(self) -> dict[str, str]:
        """The parent run's record of the `--set`s (platform.spec.overrides.as_params)."""
        from platform.spec.overrides import as_params
        return as_params(self.overrides)

    def file_as_run(self, folder: str | Path) -> str:
        """A path to the file as the sweep runs it (the spec artifact): the file itself, or
        a copy of the same name in `folder`."""
        if self.effective is None:
            return str(Path(self.path).resolve())
        out = Path(folder) / Path(self.path).name
        out.write_text(self.effective)
        return str(out)


def load(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a search-space file, with `--set` overrides (platform.spec.overrides)
    applied to its mapping first; any mistake raises SpecError."""
    return read(path, overrides).spec


def read(path: str | Path, pairs: list[str] | None = None) -> SpecFile:
    """`load`, keeping what the sweep records of the file as given (SpecFile)."""
    pairs = list(pairs or [])
    shown = [pair if len(pair) <= 60 else preview(pair) for pair in pairs]
    file = str(path) + (f" with --set {' '.join(shown)}" if shown else "")
    raw = _parse(read_text(path), file)
    overrides = overriding.parse(pairs, SpecLoader) if pairs else {}
    applied = overriding.apply(raw, overrides) if overrides else raw  # a copy: raw stays as written
    sections = dict(applied)
    search = sections.pop("search", None)
    experiments = sections.pop("experiments", None)
    try:
        spec = build(SweepSpec, sections, "")
        spec = dataclasses.replace(spec, experiments=_parse_experiments(experiments, spec))
    except SpecError as error:
        raise SpecError(f"{file}: {error}") from None
    spec = dataclasses.replace(spec, search=_parse_search(search, spec, file))
    _check_names(spec, file)
    _check_image_size(spec, file)
    _check_combinations(spec, file)
    _check_trial_count(spec, file)
    return SpecFile(str(path), spec, tuple(pairs), overrides, tuple(overriding.replacement_lines(raw, overrides)),
                    overriding.effective_text(str(path), raw, applied, pairs))


def _parse(text: str, file: str) -> dict:
    """The file's YAML as a mapping of sections, with the bounded loader (SpecLoader)."""
    try:
        raw = yaml.load(text, Loader=SpecLoader)
    except Refused as error:
        raise SpecError(f"{file}: line {error.problem_mark.line + 1}: {error.problem}.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{file}: not valid YAML{where} ({getattr(error, 'problem', error)}).") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{file}: expected a mapping of sections at the top level, got {type(raw).__name__}.")
    return raw


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def read_text(path: str | Path) -> str:
    """A search-space file's text: a regular file of UTF-8, at most MAX_FILE_BYTES; anything
    else (a directory, a FIFO that would block, /dev/zero) is a SpecError naming it."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file.") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot be read ({error.strerror or error}).") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SpecError(f"{path}: is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, "
                        "not a search-space file (give a YAML file).")
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: is larger than {MAX_FILE_BYTES >> 20} MiB; a search-space file is a few kB "
                        "of YAML.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "save it as UTF-8.") from None


def _parse_experiments(raw: Any, spec: SweepSpec) -> dict[str, Experiment]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise SpecError(f"experiments: expected a mapping of experiment names to settings, got {preview(raw)}.")
    parsed = {}
    for name, changes in raw.items():
        where = f"experiments.{name}"
        changes = {} if changes is None else changes
        if not isinstance(changes, dict) or set(changes) - {"model", "training"}:
            raise SpecError(f"{where}: expected a mapping with model and/or training, got {preview(changes)}.")
        for section, value in changes.items():
            if value is not None and not isinstance(value, dict):
                raise SpecError(f"{where}.{section}: expected a mapping of {section} keys, got {preview(value)}.")
        parsed[str(name)] = Experiment(**{
            section: build(type(getattr(spec, section)),
                           {**dataclasses.asdict(getattr(spec, section)), **(changes.get(section) or {})},
                           f"{where}.{section}")
            for section in ("model", "training")})
    return parsed


# `name` names Tune's experiment directory under storage.tune, experiments' names are part
# of run and trial names: a name is one plain path component, never "..", "/x" or "a/b".
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_names(spec: SweepSpec, file: str) -> None:
    names = {"name": spec.name, "mlflow.experiment": spec.mlflow.experiment}
    names.update({f"experiments.{name}": name for name in spec.experiments})
    for where, name in names.items():
        if name is not None and not NAME.fullmatch(name):
            raise SpecError(f"{file}: {where}: {preview(name)} is not a plain name (letters, digits, '.', '_', '-', "
                            "at most 100, starting with a letter or digit): it becomes a directory or run name.")


MAX_TRIALS = 10_000  # Tune lists a grid's points before the first trial: 10**6 took it minutes


def _check_trial_count(spec: SweepSpec, file: str) -> None:
    count = spec.trial_count()
    if count > MAX_TRIALS:
        factors = " x ".join(f"{where} {n:,}" for where, n in spec._trial_factors().items())
        raise SpecError(f"{file}: the sweep asks for {count:,} trials ({factors}), more than the {MAX_TRIALS:,} one "
                        "sweep may run; narrow the grids, or search with choice, which samples instead of "
                        "enumerating.")


def _check_combinations(spec: SweepSpec, file: str) -> None:
    """Searchers and schedulers that cannot work together, said before Ray starts."""
    if spec.experiments and spec.tune.searcher != "random":
        raise SpecError(f"{file}: experiments: a grid of experiments needs tune.searcher: random "
                        "(Optuna samples, it does not enumerate a grid).")
    for section, key in spec.experiment_keys():
        if f"{section}.{key}" in spec.search:
            raise SpecError(f"{file}: search.{section}.{key}: an experiment sets this key, so it cannot also "
                            "be searched; drop it from one of them.")
    scheduler = spec.tune.scheduler
    if scheduler.name == "asha" and (spec.max_iterations() or math.inf) < scheduler.grace_period:
        # Ray's own check comes only once the sweep runs: "grace_period must be <= max_t!"
        raise SpecError(f"{file}: tune.scheduler.grace_period: {scheduler.grace_period} is more than the "
                        f"{spec.max_iterations()} iterations a trial runs at most (training.iterations), so ASHA "
                        "could never stop a trial; lower it or raise the iterations.")
    if spec.tune.scheduler.name == "pbt":
        if spec.tune.searcher != "random":
            raise SpecError(f"{file}: tune.scheduler: pbt needs tune.searcher: random (PBT changes the "
                            "configs it is given; Ray refuses it beside a search algorithm).")
        if spec.tune.scheduler.perturbation_interval % spec.training.checkpoint_every:
            raise SpecError(f"{file}: tune.scheduler.perturbation_interval: PBT copies checkpoints, so "
                            "training.checkpoint_every must divide it.")
        if not pbt_searched(spec):
            raise SpecError(f"{file}: tune.scheduler: pbt perturbs the searched learning rates, so search "
                            "training.lr_g and/or training.lr_d with loguniform or uniform.")


PBT_KEYS = ("training.lr_g", "training.lr_d")


def pbt_searched(spec: SweepSpec) -> list[str]:
    """The searched learning rates PBT can perturb: those with a continuous domain."""
    return [path for path in PBT_KEYS
            if path in spec.search and spec.search[path].kind in ("loguniform", "uniform")]


def _check_image_size(spec: SweepSpec, file: str) -> None:
    """The generator's square image must be the dataset's mel image, or training cannot start."""
    if "model.image_size" in spec.search:
        raise SpecError(f"{file}: search.model.image_size: the image size is fixed by the dataset's mel "
                        "(dataset.mel.n_mels and frames); it cannot be searched within one sweep.")
    mel = spec.dataset.mel
    models = {"model": spec.model} | {f"experiments.{n}.model": e.model for n, e in spec.experiments.items()}
    for where, model in models.items():
        if model.shape != (mel.n_mels, mel.frames):
            raise SpecError(f"{file}: {where}.image_size: {model.image_size} does not match the dataset's mel "
                            f"image ({mel.n_mels} x {mel.frames}); set dataset.mel.n_mels and dataset.mel.frames "
                            f"to {model.shape[0]} and {model.shape[1]}, or {where}.image_size to theirs.")
    problem = hifigan_mismatch(spec.dataset) if spec.evaluation.vocoder == "hifigan" else None
    if problem:
        raise SpecError(f"{file}: evaluation.vocoder: hifigan cannot voice this dataset: {problem}.")

