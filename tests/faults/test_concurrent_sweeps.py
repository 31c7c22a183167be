"""Item 1 of issue 30: sweeps started at once on a new SQLite store. Each driver's first use
of the store (platform.driver.store.ready) migrates it under a lock, so none breaks it (the
same for the Optuna storage all sweeps share), and
each sweep claims its own folder and run names (platform.driver.resume.claim), even in the
same second, with a `platform-sweep.json` naming its own parent run, so each can be resumed."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from mlflow import MlflowClient

from platform.driver import resume
from platform.spec import spaces, study_storage
from tests.helpers import ROOT, tiny_sweep, write_spec

DRIVERS = 4
STAMP = "20261206-120000"
# what a sweep's driver does first with the store and its names, from a start line all share
DRIVER = f"""
import os, sys, time
from platform.driver import resume, store, tracking
from platform.spec import spaces, study_storage
import optuna
spec_file, uri, go = sys.argv[1:4]
spec = spaces.load(spec_file)
open(go + "." + str(os.getpid()), "w").close()  # imported: waiting at the start line
while not os.path.exists(go):
    time.sleep(0.005)
store.ready(uri)
name = resume.claim(spec, "{STAMP}")
optuna.create_study(storage=study_storage.storage(spec), study_name=name)  # the journal, shared by all four
target = tracking.start_sweep(uri, spec.experiment, run_name="sweep-" + name[len(spec.name) + 1:], tags={{}},
                              params={{}}, spec_file=spec_file)
resume.record(spec, name, target)
print(name)
"""


def _spec(tmp_path):
    return write_spec(tmp_path / "race.yaml", **tiny_sweep("race", storage={"root": str(tmp_path / "runs")}))


def test_sweeps_started_in_the_same_second_get_their_own_folders(tmp_path):
    spec = spaces.load(_spec(tmp_path))
    names, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        names.append(resume.claim(spec, STAMP))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    tune = tmp_path / "runs" / "tune"
    assert len(set(names)) == 8 and all((tune / name).is_dir() for name in names)
    assert {f"race-{STAMP}", f"race-{STAMP}-8"} <= set(names)
    assert resume._latest(spec) == f"{tune}/race-{STAMP}-8"  # the last one made is the latest


@pytest.mark.slow
def test_drivers_started_at_once_on_a_new_store_all_open_it_and_keep_their_own_sweep(tmp_path):
    spec_file, db, go = _spec(tmp_path), tmp_path / "mlflow.db", tmp_path / "go"
    uri = f"sqlite:///{db}"
    drivers = [subprocess.Popen([sys.executable, "-c", DRIVER, str(spec_file), uri, str(go)], cwd=tmp_path,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(DRIVERS)]
    try:
        deadline = time.monotonic() + 900
        while len(list(tmp_path.glob("go.*"))) < DRIVERS:  # all imported: the store is made by the race itself
            assert time.monotonic() < deadline and all(d.poll() is None for d in drivers)
            time.sleep(0.1)
        assert not db.exists()
        go.touch()
        outputs = [d.communicate(timeout=900) for d in drivers]
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
    for driver, (_, err) in zip(drivers, outputs):
        assert driver.returncode == 0, err[-3000:]
    names = [out.split()[-1] for out, _ in outputs]
    assert len(set(names)) == DRIVERS, names

    client = MlflowClient(tracking_uri=uri)  # the store works for every later command
    experiment = client.get_experiment_by_name("race")
    parents = {r.info.run_id: r.info.run_name for r in client.search_runs([experiment.experiment_id])}
    for name in names:  # each folder names its own parent run: each sweep can be resumed
        state = json.loads((tmp_path / "runs" / "tune" / name / resume.STATE_FILE).read_text())
        assert parents.pop(state["tracking"]["parent_run_id"]) == "sweep-" + name[len("race-"):]
    assert not parents
    import optuna
    studies = optuna.get_all_study_names(study_storage.storage(spaces.load(spec_file)))
    assert sorted(studies) == sorted(names)
