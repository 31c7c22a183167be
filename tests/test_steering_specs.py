"""The steering parts of a search-space file: experiments (paper.yaml), PBT, a time budget,
and --resume's lookup. All checked before Ray starts."""
import pytest
from ray.tune.search.variant_generator import generate_variants

from data.dataset import load_mels
from platform.driver import resume
from platform.spec import spaces, tune_space
from platform.spec.typed import SpecError
from tests.helpers import ROOT, run_module, write_spec


def _variants(spec):
    return [config for _, config in generate_variants(tune_space.param_space(spec))]


def test_paper_yaml_runs_the_studys_six_experiments():
    spec = spaces.load(ROOT / "search_spaces" / "paper.yaml")
    configs = {c["experiment"]: c for c in _variants(spec)}
    assert len(configs) == 6
    seen = {(c["model"]["family"], c["training"]["epochs"], c["training"]["data_fraction"]) for c in configs.values()}
    assert seen == {("dcgan1", 7, 1.0), ("dcgan2", 2, 1.0), ("dcgan2", 6, 0.23), ("dcgan2", 7, 0.115),
                    ("wgan_gp", 5, 0.23), ("wgan_clip", 5, 0.23)}
    assert configs["wgan_clip_60k_5ep"]["training"]["optimizer"] == "rmsprop"
    assert configs["wgan_gp_60k_5ep"]["model"]["critic_norm"] == "layer"
    # shared settings stay shared: one evaluation, so the six FIDs compare
    assert len({repr(c["evaluation"]) for c in configs.values()}) == 1


def test_experiments_combine_with_a_searched_key(tmp_path):
    f = write_spec(tmp_path / "s.yaml", name="x", tune={"searcher": "random", "num_samples": 2},
                   experiments={"a": {"training": {"epochs": 1}}, "b": {"model": {"family": "dcgan2"}}},
                   search={"training.lr_g": {"loguniform": [1e-4, 1e-3]}})
    configs = _variants(spaces.load(f))
    assert sorted(c["experiment"] for c in configs) == ["a", "b"]
    assert {c["model"]["family"] for c in configs} == {"dcgan1", "dcgan2"}
    assert next(c for c in configs if c["experiment"] == "a")["training"]["epochs"] == 1


def test_pbt_mutates_the_searched_learning_rates(tmp_path):
    from ray.tune.schedulers import PopulationBasedTraining
    f = write_spec(tmp_path / "s.yaml", name="x",
                   tune={"searcher": "random", "scheduler": {"name": "pbt", "perturbation_interval": 2}},
                   search={"training.lr_g": {"loguniform": [1e-4, 1e-3]}, "model.width": {"choice": [8, 16]}})
    spec = spaces.load(f)
    assert set(tune_space.pbt_mutations(spec)) == {"training"}
    assert set(tune_space.pbt_mutations(spec)["training"]) == {"lr_g"}
    assert isinstance(tune_space.scheduler(spec, 10), PopulationBasedTraining)


def test_time_budget_reaches_tune(tmp_path):
    f = write_spec(tmp_path / "s.yaml", name="x", tune={"time_budget_s": 3600})
    assert spaces.load(f).tune.time_budget_s == 3600.0


BAD = [
    ({"experiments": {"a": {"training": {"epochs": 1}}}},
     "experiments: a grid of experiments needs tune.searcher: random"),
    ({"tune": {"searcher": "random"}, "experiments": {"a": {"model": {"widht": 8}}}},
     "experiments.a.model.widht: unknown key"),
    ({"tune": {"searcher": "random"}, "experiments": {"a": {"optimizer": "adam"}}},
     "experiments.a: expected a mapping with model and/or training"),
    ({"tune": {"searcher": "random"}, "experiments": {"a": {"model": {"family": "wgan_gp"}}}},
     "experiments.a.model: wgan_gp's gradient penalty is per sample"),
    ({"tune": {"searcher": "random"}, "experiments": {"a": {"training": {"epochs": 2}}},
      "search": {"training.epochs": {"choice": [1, 3]}}},
     "search.training.epochs: an experiment sets this key"),
    ({"tune": {"scheduler": {"name": "pbt"}}, "search": {"training.lr_g": {"loguniform": [1e-4, 1e-3]}}},
     "tune.scheduler: pbt needs tune.searcher: random"),
    ({"tune": {"searcher": "random", "scheduler": {"name": "pbt"}}},
     "tune.scheduler: pbt perturbs the searched learning rates"),
    ({"tune": {"searcher": "random", "scheduler": {"name": "pbt", "perturbation_interval": 3}},
      "training": {"checkpoint_every": 2}, "search": {"training.lr_g": {"uniform": [1e-4, 1e-3]}}},
     "tune.scheduler.perturbation_interval: PBT copies checkpoints"),
    ({"tune": {"time_budget_s": -5}}, "tune: time_budget_s must be positive"),
    ({"tune": {"max_failures": -1}}, "tune: max_failures must not be negative"),
    ({"storage": {"root": "s3://bucket/runs"}}, "storage: root must be a path every node sees"),
    ({"training": {"data_fraction": 1.5}}, "training: data_fraction must lie in (0, 1]"),
]


@pytest.mark.parametrize("sections,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_steering_mistakes_name_the_key(tmp_path, sections, message):
    f = write_spec(tmp_path / "bad.yaml", name="x", **sections)
    with pytest.raises(SpecError) as error:
        spaces.load(f)
    assert str(error.value).startswith(f"{f}: ") and message in str(error.value), str(error.value)


@pytest.mark.slow
def test_resume_without_an_earlier_sweep_says_so_and_exits_2(tmp_path):
    f = write_spec(tmp_path / "s.yaml", name="never-ran", storage={"root": str(tmp_path / "runs")})
    with pytest.raises(resume.ResumeError, match="no earlier sweep named 'never-ran'"):
        resume.find(spaces.load(f), "latest")
    result = run_module("platform.sweep", str(f), "--resume", cwd=tmp_path, timeout=900)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --resume: no earlier sweep named 'never-ran'")
    with pytest.raises(resume.ResumeError, match="is not a sweep this command started"):
        resume.find(spaces.load(f), str(tmp_path))


def test_resume_finds_the_latest_recorded_sweep(tmp_path):
    from trainables.mlflow_run import TrackingTarget
    spec = spaces.load(write_spec(tmp_path / "s.yaml", name="r", storage={"root": str(tmp_path / "runs")}))
    target = TrackingTarget("sqlite:///x.db", "1", "abc")
    resume.record(spec, "r-20260101-000000", target)
    resume.record(spec, "r-20260102-000000", target)
    assert resume._latest(spec).endswith("r-20260102-000000")
    assert resume._read(resume._latest(spec))["tracking"]["parent_run_id"] == "abc"


@pytest.mark.slow
def test_a_data_fraction_is_a_seeded_share_of_the_rows(tiny_datasets):
    from data.spec import DatasetSpec
    from platform.spec.typed import build
    from tests.helpers import TINY_DATASET
    path = tiny_datasets / build(DatasetSpec, TINY_DATASET, "dataset").fingerprint
    everything = load_mels(path)
    half = load_mels(path, fraction=0.5)
    assert len(everything) == 6 and len(half) == 3
    assert (load_mels(path, fraction=0.5) == half).all()
    assert len(load_mels(path, fraction=0.01, at_least=4)) == 4


def test_resume_state_paths_keep_a_uris_query_last():
    base = "s3://bucket/tune?endpoint_override=127.0.0.1:9000&scheme=http"
    assert resume._join(base, "r-1") == "s3://bucket/tune/r-1?endpoint_override=127.0.0.1:9000&scheme=http"
    assert resume._join("/srv/shared/runs/tune/", "r-1") == "/srv/shared/runs/tune/r-1"
