"""The driver's MLflow lookups (platform/driver/tracking.py): a sweep's runs found by
experiment and parent, one sentence for each way they are not there; a trial's failure as
one clean line."""
import pytest
from mlflow import MlflowClient

from platform.driver.tracking import RunLookupError, failure_reason, sweep_runs


def _sweep(client, experiment_id: str, trials: int) -> str:
    parent = client.create_run(experiment_id, tags={"sweep": "parent"}).info.run_id
    for _ in range(trials):
        client.create_run(experiment_id, tags={"mlflow.parentRunId": parent})
    return parent


def test_a_sweeps_runs_are_found_by_experiment_and_parent(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    here, elsewhere = client.create_experiment("here"), client.create_experiment("elsewhere")
    older = _sweep(client, here, trials=2)
    latest = _sweep(client, here, trials=3)
    stranger = _sweep(client, elsewhere, trials=1)

    parent, runs = sweep_runs(client, "here")
    assert parent.info.run_id == latest and len(runs) == 3
    parent, runs = sweep_runs(client, "here", older)
    assert parent.info.run_id == older and {r.data.tags["mlflow.parentRunId"] for r in runs} == {older}
    with pytest.raises(RunLookupError, match=f"run {stranger} is not in experiment 'here'"):
        sweep_runs(client, "here", stranger)
    with pytest.raises(RunLookupError, match="there is no experiment 'nowhere'"):
        sweep_runs(client, "nowhere")
    empty = _sweep(client, elsewhere, trials=0)
    with pytest.raises(RunLookupError, match=f"sweep run {empty} .* has no trial runs"):
        sweep_runs(client, "elsewhere")


def test_rays_error_text_becomes_its_last_line():
    ray_text = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=123, ip=10.0.0.1, actor_id=ab)\n"
                "  File \"/x/trainables/trainer.py\", line 200, in run_iteration\n"
                "    raise TrainingDiverged(f\"losses are not finite\")\n"
                "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
                "trainables.trainer.TrainingDiverged: losses are not finite in the 2 steps up to step 2\n")
    assert failure_reason(ray_text) == ("trainables.trainer.TrainingDiverged: losses are not finite in the 2 "
                                        "steps up to step 2")
    assert failure_reason("") == "the trial failed without a message"
