"""platform.report's comparison page and figures, on a sweep logged straight into MLflow (the
runs as platform.sweep leaves them, no training: benchmarks/report_scale.logged_sweep):
every trial in the page, the best ones with their grid and a clip that plays in headless
Chromium, no request leaving 127.0.0.1, the table sorting by score; figures in svg and pdf."""
import contextlib
import http.server
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient

from benchmarks.report_scale import logged_sweep
from tests.helpers import CHROMIUM, browser_test, local_site

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


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(folder: Path):
    """The report folder over HTTP on loopback, as MLflow's artifact view or a colleague's
    server would hand the page out."""
    with local_site(folder, _Quiet) as address:
        yield address + "/"


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
                                     ".map(td => td.textContent)", timeout=300)
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


# ---------- the figures' labels, without MLflow ----------

def _trial(number: int, best: float, final: float, speed: float, best_step: int, stopped: bool = False) -> dict:
    return {"name": f"dcgan1 #{number} lr_g=3.0e-4 lr_d=2.6e-4 beta1=0.47 width=8", "run_id": str(number),
            "best_fid": best, "final_fid": final, "speed": speed, "best_step": best_step, "family": "dcgan1",
            "stopped": "asha at iteration 2 of 8" if stopped else "",
            "history": {"fid": [(160, best)] if stopped else [(160, best + 20), (best_step, best), (640, final)]}}


# a quickstart's real numbers (its sweep of this change: best fid, final fid, img/s, score's step)
QUICKSTART = [_trial(3, 454.935, 454.935, 72.074, 640), _trial(1, 515.674, 515.674, 215.435, 640),
              _trial(2, 652.206, 704.806, 89.7354, 160), _trial(5, 654.259, 731.051, 120.671, 160),
              _trial(0, 673.103, 743.253, 56.6626, 160), _trial(4, 727.845, 727.845, 123.016, 160, stopped=True)]
# ties and near-ties: three trials stopped on one point, two a hair apart, a winner's final fid near its score
TIES = [_trial(1, 409.4, 431.2, 101.3, 320), _trial(0, 447.9, 447.9, 99.8, 160, True),
        _trial(3, 447.9, 447.9, 99.8, 160, True), _trial(6, 447.9, 447.9, 99.8, 160, True),
        _trial(5, 448.1, 448.1, 99.81, 160, True), _trial(2, 448.3, 449.0, 100.0, 320), _trial(4, 409.5, 409.5, 101.31, 320)]


def _boxes(fig):
    """Every annotation's text box as matplotlib draws it, with the text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("trials", [QUICKSTART, TIES], ids=["quickstart", "ties"])
def test_no_two_labels_of_the_report_figures_overlap(trials):
    from platform.reporting.figures import fid_figure, speed_figure, style
    with style():
        for fig in (speed_figure(trials, trials, 69.1, "inception-fast"), fid_figure(trials, trials, 69.1, "inception-fast")):
            boxes = _boxes(fig)
            assert boxes
            for i, (text, box) in enumerate(boxes):
                for other, other_box in boxes[i + 1:]:
                    assert not box.overlaps(other_box), (text, other, box, other_box)
                assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), (text, box)
        # every trial is named once on the speed figure, tied ones on one label
        shown = [n for text, _ in _boxes(speed_figure(trials, trials, 69.1, "x")) for n in text.split(", ")]
        assert sorted(shown) == sorted(t["name"].split(" ")[1] for t in trials)


def test_the_final_fid_tick_stays_clear_of_the_score_label():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from platform.reporting.figures import fid_figure, style
    with style():
        fig = fid_figure(TIES, TIES, None, "inception-fast")
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        ax = fig.axes[0]
        ticks = ax.collections[-1]  # the final fids' "|" markers
        half = (ticks.get_sizes()[0] ** 0.5) / 2 * fig.dpi / 72
        for (x, y), text in zip(ax.transData.transform(ticks.get_offsets()), ax.texts):
            box = text.get_window_extent(renderer)
            assert box.x0 > x + half or not (box.y0 < y < box.y1), (text.get_text(), box, x)


def test_the_importance_is_fanova_as_named_and_warns_nothing(tmp_path, recwarn):
    import optuna

    from platform.reporting.trials import importance
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    for i in range(8):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                           "width": optuna.distributions.CategoricalDistribution([8, 16])})
        trial.report(100 - i + trial.params["lr"] * 1000, 0)
        study.tell(trial, 200 - i)

    # (the storage, the study's name, where it is in words), as the sweep's record opens it
    values, note = importance((storage, "s", "the test's database"))
    assert set(values) == {"lr", "width"} and sum(values.values()) == pytest.approx(1)
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
        target=lambda t: min([*t.intermediate_values.values(), t.value]))
    assert values == pytest.approx(dict(expected))
    assert note.startswith("fANOVA importance (Optuna's FanovaImportanceEvaluator")
    assert not [w for w in recwarn if "importance" in str(w.message).lower() or "PedAnova" in str(w.message)]
