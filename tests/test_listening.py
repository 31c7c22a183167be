"""The blind listening test (`platform.listen --serve`) on the store of one tiny sweep:
driven in headless Chromium over the DevTools protocol (open, play, rate five clips,
reload, progress kept), its ratings in MLflow, and bad requests refused."""
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from platform.blind_test.ratings import summary
from tests.helpers import CHEAP_EMBEDDING, CHROMIUM, ROOT, browser_test, run_module, tiny_sweep, write_spec

NAME = "tiny-listening"


def test_mos_and_its_t_interval():
    got = summary([(5, 1), (4, 1), (3, 0)])
    # mean 4, s = 1, t(0.975, 2) = 4.303: 4 +- 4.303 / sqrt(3)
    assert got["mos"] == 4 and got["mos/count"] == 3 and got["techno/share"] == pytest.approx(2 / 3)
    assert got["mos/ci95_low"] == pytest.approx(4 - 2.4842, abs=1e-3)
    assert got["mos/ci95_high"] == pytest.approx(4 + 2.4842, abs=1e-3)
    assert "mos/ci95_low" not in summary([(2, 0)])  # one rating: no interval


# The HiFi-GAN preset shrunk: its mel and vocoder, 2 s segments (80 x 176) and a width-4 DCGAN
SECONDS = 2.0
PRESET = tiny_sweep(
    NAME, dataset={"synthetic": {"tracks": 3, "seconds": 9.0, "seed": 7}, "segment": {"seconds": SECONDS},
                   "mel": {"kind": "hifigan", "sample_rate": 22050, "n_mels": 80, "frames": 176, "n_fft": 1024,
                           "fmin": 0}},
    model={"family": "dcgan1", "latent_dim": 8, "width": 4, "image_size": [80, 176]},
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "vocoder": "hifigan", "audio_clips": 1, "grid_images": 2})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A finished two-trial sweep of the shrunk HiFi-GAN preset: (directory, client, parent run, trial runs)."""
    cwd = tmp_path_factory.mktemp("listening")
    spec = write_spec(cwd / "tiny.yaml", **PRESET)
    result = run_module("platform.sweep", str(spec), cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return cwd, client, parent, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@contextlib.contextmanager
def _serving(store):
    cwd, _, parent, _ = store
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "platform.listen", "--serve", NAME, "--clips-per-trial", "2",
                                "--real-clips", "2", "--port", "0", "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}"],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
            if found:
                break
        assert found, "".join(lines)
        yield found.group(1), cwd / "runs" / "listening" / parent.info.run_id
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=300)


@pytest.fixture(scope="module")
def server(store):
    """`platform.listen --serve` on a free port: (url, its folder under the storage root)."""
    with _serving(store) as serving:
        yield serving


@pytest.mark.slow
def test_the_shrunk_preset_leaves_hifigan_audio_in_the_trial_runs(store):
    import soundfile
    _, client, _, children = store
    for run in children:
        assert run.data.params["evaluation.vocoder"] == "hifigan" and run.data.params["model.image_size"] == "(80, 176)"
        wavs = [a.path for a in client.list_artifacts(run.info.run_id, "audio")]
        assert wavs, run.info.run_id
        audio, rate = soundfile.read(client.download_artifacts(run.info.run_id, wavs[-1]))
        assert rate == 22050 and len(audio) == SECONDS * 22050 and 0 < abs(audio).max() <= 1


def _request(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers={
                "Content-Type": "application/json"}), timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _ratings(folder: Path) -> list:
    with sqlite3.connect(folder / "ratings.sqlite") as db:
        return list(db.execute("SELECT clip, run_id, rater, score, techno FROM ratings ORDER BY clip, rater"))


@browser_test
def test_a_rater_plays_rates_five_clips_comes_back_and_mos_lands_in_mlflow(store, server, tmp_path):
    from tests.cdp import Browser
    _, client, parent, children = store
    url, folder = server
    clips = json.loads((folder / "clips.json").read_text())
    assert len(clips) == 2 * 2 + 2 and {c["run_id"] for c in clips} == {c.info.run_id for c in children} | {"real"}
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        browser.send("Network.enable")
        browser.navigate(url)
        assert browser.wait_for("document.getElementById('progress').textContent === '0 of 6 rated'")
        requested = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert requested and not [u for u in requested if "favicon" in u], requested  # no 404 in the server's log
        heard = []
        for n in range(5):
            # the clip plays in the page's own player: its WAV is fetched and decoded to 5 s
            source = browser.wait_for("document.getElementById('player').src")
            assert browser.evaluate("document.getElementById('player').play().then(() => true)", gesture=True)
            assert browser.wait_for("document.getElementById('player').duration") == pytest.approx(SECONDS, abs=0.01)
            heard.append(source.rsplit("/", 1)[-1][:-len(".wav")])
            browser.click(f"input[name=score][value='{n % 5 + 1}']")
            browser.click(f"input[name=techno][value='{'yes' if n % 2 else 'no'}']")
            browser.click("#submit")
            assert browser.wait_for(f"document.getElementById('progress').textContent === '{n + 1} of 6 rated'")
        assert len(set(heard)) == 5  # five different clips, one at a time
        browser.navigate(url)  # a reload: the rater id in localStorage brings the progress back
        assert browser.wait_for("document.getElementById('progress').textContent === '5 of 6 rated'")
        rater = browser.evaluate("localStorage.getItem('rater')")
    finally:
        browser.close()

    stored = _ratings(folder)
    assert [(c, r) for c, _, r, _, _ in stored] == sorted((c, rater) for c in heard)
    by_clip = {c["clip"]: c["run_id"] for c in clips}
    scores = {h: n % 5 + 1 for n, h in enumerate(heard)}
    # five of six rated: each trial and the real clips (two clips each) have at least one rating
    for run in children:
        mine = [scores[h] for h in heard if by_clip[h] == run.info.run_id]
        metrics = client.get_run(run.info.run_id).data.metrics
        assert metrics["mos"] == pytest.approx(sum(mine) / len(mine)) and metrics["mos/count"] == len(mine)
        assert ("mos/ci95_low" in metrics) == (len(mine) >= 2)
    reals = [scores[h] for h in heard if by_clip[h] == "real"]
    assert client.get_run(parent.info.run_id).data.metrics["mos/real"] == pytest.approx(sum(reals) / len(reals))
    table = Path(client.download_artifacts(parent.info.run_id, "listening/mos.csv", str(tmp_path))).read_text()
    assert table.splitlines()[0].startswith("run_id,trial,mos,")
    assert sum(1 for run in children if run.info.run_id in table) == len({by_clip[h] for h in heard} - {"real"})


@pytest.mark.slow
def test_bad_requests_get_a_4xx_naming_the_problem_and_change_nothing(store, server):
    _, client, _, children = store
    url, folder = server
    clip = json.loads((folder / "clips.json").read_text())[0]["clip"]
    before = _ratings(folder)
    mos_before = [client.get_run(c.info.run_id).data.metrics.get("mos/count") for c in children]
    good = {"rater": _request(url + "api/rater", {})[1]["rater"], "clip": clip, "score": 3, "techno": True}
    for body, status, says in (({**good, "clip": "0123456789ab"}, 404, "there is no clip"),
                               ({**good, "score": 9}, 400, "score must be a whole number from 1 to 5"),
                               ({**good, "score": "5"}, 400, "score must be"),
                               ({**good, "clip": "../../mlflow.db"}, 400, "is not a clip id"),
                               ({**good, "techno": "yes"}, 400, "techno must be true or false"),
                               ({**good, "rater": "x/../y"}, 400, "rater must be")):
        got, answer = _request(url + "api/rate", body)
        assert got == status and says in answer["error"], (body, got, answer)
    for path, status in (("clips/..%2F..%2Fmlflow.db.wav", 400), ("clips/0123456789ab.wav", 404),
                         ("api/next?rater=no", 400), ("nothing", 404)):
        got, answer = _request(url + path)
        assert got == status and answer["error"], (path, got, answer)
    assert _ratings(folder) == before
    assert [client.get_run(c.info.run_id).data.metrics.get("mos/count") for c in children] == mos_before
    with urllib.request.urlopen(url + f"clips/{clip}.wav", timeout=120) as answer:  # a good one is served
        assert answer.status == 200 and answer.read(4) == b"RIFF"


@pytest.mark.slow
def test_a_restarted_server_serves_the_same_clips_and_keeps_the_ratings_and_the_report_shows_mos(
        store, server, capsys, tmp_path):
    from platform import report
    cwd, client, _, children = store
    _, folder = server
    rater = _request(server[0] + "api/rater", {})[1]["rater"]
    good = {"rater": rater, "clip": json.loads((folder / "clips.json").read_text())[1]["clip"],
            "score": 2, "techno": False}
    assert _request(server[0] + "api/rate", good)[1]["rated"] == 1
    clips = (folder / "clips.json").read_text()
    with _serving(store) as (url, again):
        assert again == folder and (folder / "clips.json").read_text() == clips
        status, progress = _request(url + f"api/next?rater={rater}")
        assert status == 200 and progress["rated"] == 1 and progress["total"] == 6 and progress["clip"] != good["clip"]
    rated = json.loads((folder / "clips.json").read_text())[1]["run_id"]
    assert report.main([NAME, "--out", str(tmp_path), "--no-log", "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " mos " in line]
    if rated != "real":
        mos = client.get_run(rated).data.metrics["mos"]
        assert any(f"mos {mos:.2f}" in line for line in lines), lines
    assert len(lines) == sum("mos" in client.get_run(c.info.run_id).data.metrics for c in children) >= (rated != "real")
