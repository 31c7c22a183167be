"""`--resume` after the search-space file was edited (a searched range moved, a search
added): Tune would go on with the search it recorded while the summary named the new one.
The sweep records its resolved spec; a resume with a different one is refused, exit 2,
with the difference named, before Ray starts. The same file resumes as before."""
import pytest

from platform.driver import resume
from platform.spec import spaces
from tests.helpers import run_module, seed_datasets, tiny_sweep, write_spec

SWEEP = tiny_sweep("edited", training={"batch_size": 4, "iterations": 1, "steps_per_iteration": 2},
                   tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1, "max_concurrent": 1})
EDITED = {**SWEEP, "search": {"training.lr_g": {"uniform": [0.5, 0.9]}, "training.beta1": {"uniform": [0.1, 0.9]}}}


def test_the_differences_name_each_changed_key(tmp_path):
    before = spaces.load(write_spec(tmp_path / "a.yaml", **SWEEP))
    after = spaces.load(write_spec(tmp_path / "a.yaml", **{**EDITED, "tune": {**SWEEP["tune"], "num_samples": 3}}))
    changed = resume.differences(resume.resolved(before), resume.resolved(after))
    assert changed == ["search.training.beta1 is new (uniform(0.1, 0.9))",
                       "search.training.lr_g was loguniform(0.0001, 0.001), now uniform(0.5, 0.9)",
                       "tune.num_samples was 1, now 3"], changed
    assert resume.differences(resume.resolved(before), resume.resolved(before)) == []


@pytest.mark.slow
def test_a_resume_with_an_edited_search_is_refused_naming_the_edit(tmp_path, monkeypatch, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "edited.yaml", **SWEEP)
    first = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    tune_dir = tmp_path / "runs" / "tune"
    before = sorted(p.name for p in tune_dir.iterdir())

    write_spec(spec, **EDITED)
    result = run_module("platform.sweep", str(spec), "--resume", cwd=tmp_path, timeout=600)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert "the search-space file changed" in line and "search.training.beta1 is new" in line, line
    assert "search.training.lr_g was loguniform(0.0001, 0.001), now uniform(0.5, 0.9)" in line, line
    assert sorted(p.name for p in tune_dir.iterdir()) == before  # nothing started

    write_spec(spec, **SWEEP)  # the file as it was: the recorded sweep is found again
    monkeypatch.chdir(tmp_path)  # storage.root left out: ./runs
    stopped = resume.find(spaces.load(spec), "latest")
    assert stopped.path.endswith(before[0]) and stopped.target.parent_run_id
