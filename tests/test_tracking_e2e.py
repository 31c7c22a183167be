"""What a sweep leaves in MLflow, end to end: one tiny two-trial sweep (module scope) whose
trial runs must hold sample grids, audio, checkpoints and loss curves, whose parent run
holds the results table; then `platform.generate` and `platform.report` on that store,
and the MLflow UI opened in headless Chromium on it."""
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mlflow import MlflowClient

from platform.driver import tracking
from tests.helpers import CHEAP_EMBEDDING, CHROMIUM, ROOT, TINY_DATASET, browser_test, run_module, seed_datasets, write_spec
from trainables.checkpoint import Checkpoint

PNG = b"\x89PNG\r\n\x1a\n"
SAMPLE_RATE = TINY_DATASET["mel"]["sample_rate"]
SWEEP = dict(
    name="tiny-artifacts",
    dataset=TINY_DATASET,
    model={"family": "dcgan1", "latent_dim": 8, "width": 4},
    training={"batch_size": 4, "iterations": 3, "steps_per_iteration": 2, "checkpoint_every": 1},
    # artifacts at every evaluation and a Tune checkpoint every iteration: MLflow still gets only the
    # best and (a trial that trains to its end) the last
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "grid_images": 4, "audio_clips": 2, "griffin_lim_iters": 4, "artifacts_every": 1},
    # a BCE and a Wasserstein model, so the loss figures have both kinds
    search={"model.family": {"grid": ["dcgan1", "wgan_clip"]}},
    tune={"searcher": "random", "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
          "num_samples": 1, "max_concurrent": 2},
)


SET_SEED = 5  # given with --set: the file does not name training.seed
OUTPUT_LINES = 60  # the sweep's default output; Tune's own boxes alone take ~150 lines for these two trials


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_datasets):
    """The store of one finished tiny sweep: (directory, client, parent run, trial runs)."""
    cwd = tmp_path_factory.mktemp("tracking")
    seed_datasets(tiny_datasets, cwd / "runs")
    spec = write_spec(cwd / "tiny.yaml", **SWEEP)
    result = run_module("platform.sweep", str(spec), "--set", f"training.seed={SET_SEED}", cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (cwd / "sweep-output.txt").write_text(result.stdout + result.stderr)
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(SWEEP["name"])
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    return cwd, client, parents[0], children


def _artifacts(client, run_id: str, path: str = "") -> list[str]:
    """Every artifact file of a run, recursively."""
    found = []
    for item in client.list_artifacts(run_id, path or None):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def _local(client, run, path: str) -> Path:
    return Path(client.download_artifacts(run.info.run_id, path, tempfile.mkdtemp(prefix="artifact-")))


def _check_wav(path, seconds: float = 5.0) -> None:
    audio, rate = soundfile.read(path)
    assert rate == SAMPLE_RATE and len(audio) == int(seconds * SAMPLE_RATE)
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1


@pytest.mark.slow
def test_trial_runs_hold_samples_audio_checkpoints_and_loss_curves(sweep):
    _, client, _, children = sweep
    for run in children:
        files = _artifacts(client, run.info.run_id)
        fids = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "fid")}
        final = max(fids)
        grids = sorted(f for f in files if f.startswith("samples/"))
        # at every evaluation (artifacts_every: 1), the last one included
        assert grids and grids[-1] == f"samples/step_{final:06d}.png", files
        for name in grids + ["loss_curves.png"]:
            assert _local(client, run, name).read_bytes()[:8] == PNG, name
        for grid in grids:
            step = grid[len("samples/step_"):-len(".png")]
            for i in range(2):
                _check_wav(_local(client, run, f"audio/step_{step}_{i}.wav"))
        assert "dataset/manifest.json" in files

        best_step = min(fids, key=fids.get)
        best = Checkpoint.load(_local(client, run, "checkpoints/best/state.pt"))
        assert best.step == best_step
        to_its_end = final == SWEEP["training"]["iterations"] * SWEEP["training"]["steps_per_iteration"]
        assert ("checkpoints/last/state.pt" in files) == to_its_end, (final, files)
        end, which = tracking.end_checkpoint(client, run)  # a trial ASHA stopped: its best stands in
        assert which == ("last" if to_its_end else "best") and end.step == (final if to_its_end else best_step)
        assert best.mlflow_run_id == run.info.run_id and best.trial_id == run.data.tags["tune.trial_id"]
        assert best.dataset["spec"]["mel"]["sample_rate"] == SAMPLE_RATE
        assert best.config["model"]["family"] == run.data.params["model.family"]
        assert run.data.metrics["best/fid"] == pytest.approx(min(fids.values()))
        assert run.data.metrics["artifacts/seconds"] >= 0
        assert run.data.tags["dataset.fingerprint"] and run.data.tags["fid.embedding"] == CHEAP_EMBEDDING
        assert run.data.params["evaluation.audio_clips"] == "2"


@pytest.mark.slow
def test_parent_run_holds_results_table(sweep):
    _, client, parent, children = sweep
    rows = list(csv.DictReader(_local(client, parent, "results.csv").open()))
    assert sorted(r["run_id"] for r in rows) == sorted(c.info.run_id for c in children)
    assert {r["model.family"] for r in rows} == {"dcgan1", "wgan_clip"}
    assert all(r["status"] == "FINISHED" and r["trial_id"] for r in rows)
    best = [float(r["best_fid"]) for r in rows]
    assert best == sorted(best) and all(float(r["final_fid"]) >= b for r, b in zip(rows, best))
    assert parent.data.tags["best.run_id"] == rows[0]["run_id"]
    assert {"tiny.yaml", "results.csv"} <= set(_artifacts(client, parent.info.run_id))


@pytest.mark.slow
def test_the_sweep_prints_a_short_run_and_records_its_set_values(sweep):
    from platform.driver import tracking
    cwd, client, parent, children = sweep
    lines = (cwd / "sweep-output.txt").read_text().splitlines()
    assert len(lines) <= OUTPUT_LINES, "\n".join(lines)
    text = "\n".join(lines)
    best = min(children, key=lambda r: r.data.metrics["best/fid"])
    assert f"fid {best.data.metrics['best/fid']:.4g}" in text and f"(MLflow run {best.info.run_id})" in text
    assert tracking.ui_command(f"sqlite:///{cwd / 'mlflow.db'}") in text
    assert tracking.ui_url(parent.info.experiment_id, None, parent.info.run_id) in text
    assert f"python -m platform.generate {best.info.run_id} --out generated" in text
    ended = [line for line in lines if line.startswith("trial ") and " after " in line]
    assert len(ended) == len(children) and all(" finished after 3/3 " in line or " stopped early after " in line
                                               for line in ended), ended
    assert "started with configuration" not in text and "(train_gan pid=" not in text  # -v's output
    # --set reached every trial, and the parent run records it
    assert all(run.data.params["training.seed"] == str(SET_SEED) for run in children)
    assert parent.data.params["set/training.seed"] == str(SET_SEED)
    spec = _local(client, parent, "tiny.yaml").read_text()
    assert f"--set training.seed={SET_SEED}" in spec and f"seed: {SET_SEED}" in spec
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND] == "custom_model_development"


@pytest.mark.slow
def test_generate_writes_playable_wavs_and_pngs(sweep):
    cwd, client, _, children = sweep
    result = run_module("platform.generate", "--experiment", SWEEP["name"], "-n", "3", "--seed", "1",
                        "--out", "gen", "--griffin-lim-iters", "4", cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = cwd / "gen"
    assert sorted(p.name for p in out.iterdir()) == [
        "grid.png", "sample_000.png", "sample_000.wav", "sample_001.png", "sample_001.wav",
        "sample_002.png", "sample_002.wav"]
    for i in range(3):
        _check_wav(out / f"sample_{i:03d}.wav")
        assert (out / f"sample_{i:03d}.png").read_bytes()[:8] == PNG
    best = min(children, key=lambda r: r.data.metrics["best/fid"])
    assert best.info.run_id in result.stdout


@pytest.mark.slow
def test_generate_given_a_sweep_or_an_experiment_finds_its_winner_and_says_which(sweep, capsys):
    from platform import generate
    cwd, _, parent, children = sweep
    best = min(children, key=lambda r: r.data.metrics["best/fid"])
    uri = ["--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}", "-n", "1", "--griffin-lim-iters", "1"]
    for given, says in ((parent.info.run_id, f"is sweep {parent.info.run_name}'s parent run; its winner"),
                        (parent.info.run_name, "its winner"), (SWEEP["name"], f"the winner of experiment {SWEEP['name']!r}")):
        out = cwd / f"winner-{len(given)}"
        assert generate.main([given, *uri, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert says in err and f"trial run {best.info.run_id} ({best.info.run_name})" in err, err
        assert (out / "sample_000.wav").exists()


@pytest.mark.slow
def test_generate_rejects_bad_input_with_one_sentence(sweep, capsys):
    from platform import generate
    cwd, _, parent, children = sweep
    uri = ["--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}", "--out", str(cwd / "never")]
    for args, says in ((["no-such-run"], "there is no run, sweep or experiment 'no-such-run'"),
                       (["--experiment", "nope"], "there is no experiment 'nope'")):
        assert generate.main(args + uri) == 2
        # its first line at once (what it looks for), then the one sentence
        first, error = capsys.readouterr().err.strip().splitlines()
        assert first.startswith("generate: finding ") and error.startswith("error: ") and says in error, error
    assert not (cwd / "never").exists()
    assert generate.main(["x", "--tracking-uri", f"sqlite:///{cwd / 'missing.db'}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err


@pytest.mark.slow
def test_report_draws_the_figures_and_the_page_and_logs_them(sweep, capsys):
    from platform import report
    cwd, client, parent, children = sweep
    out = cwd / "report"
    assert report.main([SWEEP["name"], "--out", str(out), "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}"]) == 0
    for name in report.FIGURES:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG, name
    page = (out / report.PAGE).read_text()
    assert all(child.info.run_name in page for child in children)
    logged = _artifacts(client, parent.info.run_id, "report")
    # no importance figure: this sweep's searcher is random, so no Optuna study
    assert sorted(logged) == sorted([f"report/{name}.png" for name in report.FIGURES] + [f"report/{report.PAGE}"])
    assert report.main(["nope", "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}"]) == 2
    assert "there is no experiment 'nope'" in capsys.readouterr().err


# ---------- the browser check ----------

SCREENSHOTS = ROOT / "runs" / "screenshots"
# deadlines sized for a busy 2-core machine (load 10-20): the MLflow server took over 30 s to
# start there, and a page's first render of the runs table tens of seconds
SERVER_START_S, PAGE_S = 300, 240


@pytest.fixture(scope="module")
def mlflow_server(sweep):
    """`mlflow server` on the sweep's store (tests/faults/mlflow_server.py), on a free loopback
    port: (its URL, its request log)."""
    from tests.faults.mlflow_server import MlflowServer
    server = MlflowServer(sweep[0]).start(timeout=SERVER_START_S)
    try:
        yield server.url, server.log
    finally:
        server.stop()


def _shown(browser, url: str, *texts: str) -> str:
    """Open `url` in the browser and wait until the page's text holds every one of `texts`
    (the UI is a single-page app that fills itself in after load): the page's HTML."""
    browser.navigate(url, timeout=PAGE_S)
    wanted = " && ".join(f"document.documentElement.outerHTML.includes({json.dumps(t)})" for t in texts)
    browser.wait_for(wanted, timeout=PAGE_S)
    return browser.evaluate("document.documentElement.outerHTML")


@browser_test
def test_mlflow_ui_shows_trials_and_a_sample_image(sweep, mlflow_server, tmp_path):
    import matplotlib.image

    from tests.cdp import Browser
    _, client, parent, children = sweep
    url, log = mlflow_server
    experiment = parent.info.experiment_id
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        # the page the sweep's last lines name: the experiment's runs table (the "Model
        # training" view, not GenAI's overview), where the sweep's parent run is listed
        from platform.driver import tracking
        runs_page = tracking.ui_url(experiment, url)  # the server's address, as a sweep on a cluster prints it
        _shown(browser, runs_page, parent.info.run_name, "matching runs")
        browser.screenshot(SCREENSHOTS / "mlflow_runs.png")

        # a trial's last sample grid in its artifact viewer: the page names the trial and the
        # browser fetched the PNG from the server
        trial = children[0]
        grid = sorted(a.path for a in client.list_artifacts(trial.info.run_id, "samples"))[-1]
        page = (f"{url}/#/experiments/{experiment}/runs/{trial.info.run_id}/artifactPath/{grid}"
                "?workflowType=machine_learning")
        _shown(browser, page, trial.info.run_name, f'alt="{grid}"')
        browser.wait_for(f"[...document.images].some(i => i.alt === {json.dumps(grid)} && i.complete "
                         "&& i.naturalWidth > 0)", timeout=PAGE_S)
        shot = SCREENSHOTS / "mlflow_sample_artifact.png"
        browser.screenshot(shot)
    finally:
        browser.close()
    fetched = f"GET /get-artifact?path={grid.replace('/', '%2F')}&run_uuid={trial.info.run_id} HTTP/1.1\" 200"
    assert fetched in log.read_text()

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1400)
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100  # not a blank page
    print(f"\nscreenshots: {SCREENSHOTS / 'mlflow_runs.png'} {shot}")


def _readme_ui_command() -> str:
    """The README's command that opens MLflow's UI, as a newcomer copies it."""
    import re
    found = re.findall(r"^\.venv/bin/mlflow ui .*$", (ROOT / "README.md").read_text(), flags=re.MULTILINE)
    assert len(found) == 1, found
    return found[0]


@browser_test
def test_the_readmes_mlflow_command_and_the_sweeps_address_list_its_trials_best_first(sweep, tmp_path):
    """Typed in the sweep's folder, the README's command starts a UI; the address the sweep
    printed opens on its trials, not on one collapsed parent row, sorted by score."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    from platform.driver import tracking
    from tests.cdp import Browser
    from tests.faults.mlflow_server import free_port
    cwd, client, parent, children = sweep
    port = free_port()
    # .venv/bin/ is this Python's folder (the tests may run from another clone's venv)
    line = _readme_ui_command().replace(".venv/bin/", str(Path(sys.executable).parent) + "/", 1)
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(["bash", "-c", f"exec {line} --port {port}"], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
    browser = None
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            assert ui.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser = Browser(CHROMIUM, tmp_path / "profile")
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        url = tracking.ui_url(parent.info.experiment_id, f"http://127.0.0.1:{port}", parent.info.run_id)
        # the printed address, on the README's server: its host and port swapped in
        printed = (cwd / "sweep-output.txt").read_text()
        assert tracking.ui_url(parent.info.experiment_id, None, parent.info.run_id) in printed
        _shown(browser, url, *(child.info.run_name for child in children), "Sort: best/fid")
        rows = browser.evaluate("[...document.querySelectorAll('[role=row]')].map(r => r.innerText)")
        best_first = sorted(children, key=lambda r: r.data.metrics["best/fid"])
        at = [next(i for i, row in enumerate(rows) if child.info.run_name in row) for child in best_first]
        assert at == sorted(at), rows
        assert not any(parent.info.run_name in row for row in rows), rows  # the trials, not their parent row
        browser.screenshot(SCREENSHOTS / "mlflow_trials.png")
    finally:
        if browser:
            browser.close()
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=300)
    assert "died" not in log.read_text()
    assert not (cwd / "mlartifacts").exists()  # the README names a folder that exists: ./mlruns
