"""platform.report's comparison page and figures, on a sweep logged straight into MLflow (the
runs as platform.sweep leaves them, no training: benchmarks/report_scale.logged_sweep):
every trial in the page, the best ones with their grid and a clip that plays in headless
Chromium, no request leaving 127.0.0.1, the table sorting by score; figures in svg and pdf."""
import contextlib
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient

from benchmarks.report_scale import logged_sweep
from tests.helpers import CHROMIUM, browser_test

TRIALS = 7
TOP = 5


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-page")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    parent = logged_sweep(uri, "page", TRIALS, seed=3)
    return folder, uri, parent


def _report(store, out: Path, *args: str) -> int:
    from platform import report
    _, uri, _ = store
    return report.main(["page", "--out", str(out), "--tracking-uri", uri, "--top", str(TOP), *args])


@contextlib.contextmanager
def _serving(folder: Path):
    """The report folder over HTTP on loopback, as MLflow's artifact view or a colleague's
    server would hand the page out."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_figures_in_svg_and_pdf_and_the_page_logged_to_the_parent_run(store, tmp_path, capsys):
    from platform import report
    _, uri, parent = store
    assert _report(store, tmp_path / "svg", "--format", "svg") == 0
    for name in report.FIGURES:
        assert (tmp_path / "svg" / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name
    text = (tmp_path / "svg" / "fid_per_trial.svg").read_text()
    assert "fid in random-conv" in text and "real vs real 12.5" in text  # the embedding and the baseline
    assert _report(store, tmp_path / "pdf", "--format", "pdf", "--no-log") == 0
    assert (tmp_path / "pdf" / "fid_curves.pdf").read_bytes()[:5] == b"%PDF-"
    err = capsys.readouterr().err
    assert f"report: read {TRIALS} trial runs" in err and f"report: trial {TOP}/{TOP}" in err
    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert f"report/{report.PAGE}" in logged and "report/fid_per_trial.svg" in logged


@browser_test
def test_the_page_shows_every_trial_plays_a_clip_and_fetches_nothing(store, tmp_path):
    from tests.cdp import Browser
    _, uri, parent = store
    out = tmp_path / "report"
    assert _report(store, out, "--no-log") == 0
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_run(parent).info.experiment_id],
                                         filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    names = {r.info.run_name for r in runs}
    assert len(names) == TRIALS
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        browser.send("Network.enable")
        with _serving(out) as url:
            browser.navigate(url + "report.html")
            shown = browser.wait_for("[...document.querySelectorAll('#trials tbody td.name')]"
                                     ".map(td => td.textContent)", timeout=60)
            assert sorted(shown) == sorted(names)
            assert browser.evaluate("document.querySelectorAll('.card audio').length") == TOP
            assert browser.evaluate("document.querySelectorAll('.card img').length") == TOP
            # a clip plays: its time moves on
            played = browser.evaluate(
                "(async () => { const a = document.querySelector('.card audio'); await a.play();"
                " const t0 = performance.now(); while (a.currentTime === 0 && performance.now() - t0 < 30000)"
                " await new Promise(r => setTimeout(r, 50)); return a.currentTime; })()", gesture=True)
            assert played > 0
            # sorting by the final fid, then by the score again: the winner comes back on top
            scores = "[...document.querySelectorAll('#trials tbody tr')].map(r => parseFloat(r.cells[4].dataset.v))"
            assert browser.evaluate(scores) == sorted(browser.evaluate(scores))
            browser.evaluate("document.querySelector('#trials').scrollIntoView()")
            browser.click("#trials th:nth-child(7)")
            browser.wait_for("document.querySelector('#trials th:nth-child(7)').getAttribute('aria-sort')")
            finals = "[...document.querySelectorAll('#trials tbody tr')].map(r => parseFloat(r.cells[6].dataset.v))"
            assert browser.evaluate(finals) == sorted(browser.evaluate(finals))
        requested = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert requested, "the browser reported no request at all"
        for address in requested:
            parsed = urlparse(address)
            assert parsed.scheme == "data" or parsed.hostname == "127.0.0.1", address
    finally:
        browser.close()
