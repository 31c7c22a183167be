"""Where a sweep's Optuna study lives (platform/spec/study_storage.py): a journal file per search
space under the storage root, or a database URL; and platform.report opens the study from the
sweep's own record, never from a location a tag names."""
import types

import optuna
import pytest

from platform import report
from platform.spec import spaces, study_storage
from tests.helpers import tiny_sweep, write_spec


def _spec(tmp_path, **storage):
    return spaces.load(write_spec(tmp_path / "space.yaml", **tiny_sweep("journal", tune={"searcher": "optuna"}),
                                  storage={"root": str(tmp_path / "runs"), **storage}))


def _parent(run_id: str, **tags):
    return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id), data=types.SimpleNamespace(tags=tags))


def test_a_sweep_records_its_study_and_the_report_opens_only_that(tmp_path, capsys):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = _spec(tmp_path)
    study = optuna.create_study(study_name="journal-1", storage=study_storage.storage(spec))
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions={
        "x": optuna.distributions.FloatDistribution(0, 2)}, value=3.0))
    study_storage.record(spec, "journal-1", "parent-1")
    journal = tmp_path / "runs" / "optuna" / "journal.journal"
    assert study_storage.shown(spec) == str(journal) and journal.is_file()

    opened = report.recorded_study(_parent("parent-1", **{"optuna.study": "journal-1",
                                                         "optuna.storage": str(journal)}), tmp_path / "runs")
    storage, name, where = opened
    assert name == "journal-1" and where == str(journal)
    assert optuna.load_study(study_name=name, storage=storage).trials[0].value == 3.0

    # a tag pointing elsewhere: refused in one sentence, nothing created there
    elsewhere = tmp_path / "victim" / "mlflow-copy.db"
    elsewhere.parent.mkdir()
    refused = report.recorded_study(_parent("parent-1", **{"optuna.study": "journal-1",
                                                          "optuna.storage": f"sqlite:///{elsewhere}"}),
                                    tmp_path / "runs")
    assert isinstance(refused, str) and "the tag is refused" in refused and "\n" not in refused
    assert not elsewhere.exists() and list(elsewhere.parent.iterdir()) == []
    assert "warning: no parameter importance: the parent run's optuna.storage tag" in capsys.readouterr().err

    for parent, says in [(_parent("parent-2", **{"optuna.study": "journal-1"}), "records another sweep's study"),
                         (_parent("parent-1", **{"optuna.study": "../../etc/x"}), "is not a sweep's name"),
                         (_parent("parent-1", **{"optuna.study": "journal-2"}), "no record of study 'journal-2'"),
                         (_parent("parent-1"), "needs tune.searcher: optuna")]:
        refused = report.recorded_study(parent, tmp_path / "runs")
        assert isinstance(refused, str) and says in refused and "\n" not in refused, refused


def test_a_database_url_is_used_and_recorded_without_its_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    spec = _spec(tmp_path, optuna=url)
    assert isinstance(study_storage.storage(spec), optuna.storages.RDBStorage)
    study_storage.record(spec, "db-1", "parent-1")
    assert '"database": "sqlite:///' in (tmp_path / "runs" / "optuna" / "db-1.json").read_text()
    secret = _spec(tmp_path, optuna="postgresql://me:hunter2@db.example/studies")
    assert study_storage.shown(secret) == "postgresql://db.example/studies"
    with pytest.raises(spaces.SpecError, match="optuna must be a database URL"):
        _spec(tmp_path, optuna="/some/file.log")
