"""Search-space files load into typed specs; every mistake is one sentence naming the key."""
from pathlib import Path

import pytest

from platform.spec import spaces, tune_space
from platform.spec.typed import SpecError
from tests.helpers import ROOT, run_module, write_spec


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_every_search_space_in_the_repo_loads(path):
    spec = spaces.load(path)
    assert spec.name == path.stem
    space = tune_space.param_space(spec)
    assert set(space) - {"experiment"} == {"model", "training", "evaluation"}
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
    searcher = tune_space.searcher(spec)
    expected = {"random": BasicVariantGenerator, "optuna": ConcurrencyLimiter}[spec.tune.searcher]
    assert isinstance(searcher, expected), (spec.tune.searcher, searcher)
    schedulers = {"fifo": FIFOScheduler, "pbt": PopulationBasedTraining, "asha": AsyncHyperBandScheduler}
    assert isinstance(tune_space.scheduler(spec, 100), schedulers[spec.tune.scheduler.name])


def test_quickstart_resolves_to_tune_domains():
    from ray.tune.search.sample import Categorical, Float
    spec = spaces.load(ROOT / "search_spaces" / "quickstart.yaml")
    space = tune_space.param_space(spec)
    assert isinstance(space["training"]["lr_g"], Float)
    assert isinstance(space["model"]["width"], Categorical)
    assert space["training"]["beta2"] == 0.999  # an unsearched hyperparameter is a constant
    assert spec.tune.searcher == "optuna" and spec.tune.scheduler.name == "asha"


def test_every_domain_kind_converts(tmp_path):
    from ray.tune.search.sample import Categorical, Float, Integer
    f = write_spec(tmp_path / "s.yaml", name="kinds", tune={"searcher": "random"}, search={
        "training.lr_g": {"loguniform": [1e-5, 1e-3]},   # written as people write it: 1e-5
        "training.beta1": {"uniform": [0.1, 0.9]},
        "training.batch_size": {"randint": [16, 65]},
        "model.width": {"choice": [8, 16, 32]},
        "training.seed": {"grid": [0, 1, 2]},
        "training.beta2": 0.99,
    })
    space = tune_space.param_space(spaces.load(f))
    assert isinstance(space["training"]["lr_g"], Float)
    assert isinstance(space["training"]["beta1"], Float)
    assert isinstance(space["training"]["batch_size"], Integer)
    assert isinstance(space["model"]["width"], Categorical)
    assert space["training"]["seed"] == {"grid_search": [0, 1, 2]}
    assert space["training"]["beta2"] == 0.99


def test_scientific_notation_without_a_dot_reads_as_a_number(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: n\ntraining:\n  lr_g: 1e-4\n")
    assert spaces.load(f).training.lr_g == pytest.approx(1e-4)


BAD = [
    ({"name": "x", "tune": {"shedulr": 3}}, "tune.shedulr: unknown key"),
    ({"name": "x", "training": {"batch_size": "many"}}, "training.batch_size: expected an integer"),
    ({"name": "x", "search": {"training.lr_g": {"loguniform": [1e-3, 1e-4]}}},
     "search.training.lr_g.loguniform: low must be less than high"),
    ({"name": "x", "search": {"training.lr_g": {"loguniform": [0, 1e-4]}}},
     "search.training.lr_g.loguniform: low must be positive"),
    ({"name": "x", "search": {"training.beta1": {"uniform": [0.5, 1.5]}}}, "search.training.beta1: 1.5 is out of range"),
    ({"name": "x", "search": {"model.widht": {"choice": [8]}}}, "search.model.widht: model has no key 'widht'"),
    ({"name": "x", "search": {"training.seed": {"grid": [1, 2]}}}, "search.training.seed: grid needs tune.searcher: random"),
    ({"name": "x", "tune": {"num_samples": 0}}, "tune: num_samples must lie between 1 and 100000"),
    ({"name": "x", "dataset": {"mel": {"n_mels": "64"}}}, "dataset.mel.n_mels: expected an integer"),
    ({"tune": {}}, "top level: missing required key 'name'"),
    ({"name": "x", "model": {"image_size": 128}},
     "model.image_size: 128 does not match the dataset's mel image (64 x 64)"),
    ({"name": "x", "tune": {"searcher": "random"}, "search": {"model.image_size": {"grid": [64, 128]}}},
     "search.model.image_size: the image size is fixed by the dataset's mel"),
    ({"name": "x", "tune": {"resources_per_trial": {"custom": {"worker": 0}}}},
     "tune.resources_per_trial: custom resource amounts must be positive"),
    ({"name": "x", "evaluation": {"vocoder": "hifigan"}},
     "evaluation.vocoder: hifigan cannot voice this dataset: the dataset's mel is kind 'study'"),
    ({"name": "x", "dataset": {"mel": {"kind": "hifigan", "n_mels": 80, "n_fft": 1024}}},
     "dataset.mel: kind hifigan needs HiFi-GAN's mel (sample_rate 22050, n_mels 80, n_fft 1024, fmin 0), got fmin 20"),
    ({"name": "x", "model": {"image_size": [80, 432]}},
     "model.image_size: (80, 432) does not match the dataset's mel image (64 x 64)"),
]


@pytest.mark.parametrize("sections,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_mistakes_name_the_file_and_the_key(tmp_path, sections, message):
    f = write_spec(tmp_path / "bad.yaml", **sections)
    with pytest.raises(SpecError) as error:
        spaces.load(f)
    text = str(error.value)
    assert text.startswith(f"{f}: "), text
    assert message in text, text
    assert text.count("\n") == 0 and text.endswith(".")


def test_malformed_yaml_names_the_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\ntraining:\n  lr_g: [1\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML at line \d"):
        spaces.load(f)


@pytest.mark.slow
def test_the_command_exits_2_before_ray_starts(tmp_path):
    f = write_spec(tmp_path / "bad.yaml", name="x", training={"lr_g": -1})
    result = run_module("platform.sweep", str(f), cwd=tmp_path, timeout=900)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {f}: training: lr_g must be positive."
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_dry_run_prints_the_resolved_spec_and_starts_nothing(tmp_path):
    result = run_module("platform.sweep", str(ROOT / "search_spaces" / "quickstart.yaml"), "--dry-run",
                        cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "training.lr_g: loguniform(5e-05, 0.001)" in result.stdout
    assert "# dataset fingerprint: " in result.stdout
    assert list(Path(tmp_path).iterdir()) == []


@pytest.mark.slow
def test_the_hifigan_preset_resolves_in_a_dry_run(tmp_path):
    from platform.spec.spaces import load
    result = run_module("platform.sweep", str(ROOT / "search_spaces" / "hifigan.yaml"), "--dry-run",
                        cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "kind: hifigan" in result.stdout and "vocoder: hifigan" in result.stdout
    spec = load(ROOT / "search_spaces" / "hifigan.yaml")
    assert spec.model.shape == (80, 432) == (spec.dataset.mel.n_mels, spec.dataset.mel.frames)
    assert spec.dataset.hop_length() == 256 and spec.model.family == "dcgan1"


@pytest.mark.parametrize("sections, hint", [
    ({"model": {"famly": "dcgan1"}}, "model.famly: unknown key (did you mean 'family'?)"),
    ({"model": {"family": "dcgan_1"}}, "got 'dcgan_1' (did you mean 'dcgan1'?)"),
    ({"model": {"family": "WGAN-GP"}}, "(did you mean 'wgan_gp'?)"),
    ({"serach": {}}, "serach: unknown key (did you mean 'search'?)"),
    ({"search": {"training.lr_gg": 1e-4}}, "training has no key 'lr_gg' (did you mean 'lr_g'?)"),
    ({"search": {"trainig.lr_g": 1e-4}}, "(did you mean 'training'?)"),
    ({"search": {"training.lr_g": {"loguniformm": [1e-4, 1e-3]}}}, "(did you mean 'loguniform'?)"),
])
def test_a_misspelt_key_or_name_gets_a_did_you_mean(tmp_path, sections, hint):
    path = write_spec(tmp_path / "typo.yaml", name="typo", **sections)
    with pytest.raises(SpecError, match=None) as caught:
        spaces.load(path)
    assert hint in str(caught.value) and str(caught.value).count("did you mean") == 1, caught.value


def test_no_did_you_mean_when_nothing_is_close(tmp_path):
    with pytest.raises(SpecError) as caught:
        spaces.load(write_spec(tmp_path / "far.yaml", name="far", model={"zzzzzz": 1}))
    assert "did you mean" not in str(caught.value) and "expected one of: family" in str(caught.value)
