"""Issue 23, item 8: platform.report on a sweep of many trials. Before, every trial was one
bar, one panel and one downloaded grid: 1,000 runs gave PNGs of 110,200 x 400 and
1,260 x 106,880 pixels after 900 s and 2.4 GB. Now the best `--top` are drawn one by one and
the rest summarised, so no figure grows with the trial count; every trial stays in the page's
table, and the command says what it is doing. (Its speed on 1,000 runs:
benchmarks/report_scale.py.)"""
import matplotlib.image
import pytest

from benchmarks.report_scale import logged_sweep

TRIALS = 120  # before the fix: fid_per_trial.png alone was 13,400 pixels wide
MAX_SIDE_PX = 3000  # a page at 200 dpi is 1,700 x 2,200


@pytest.mark.slow
def test_a_sweep_of_many_trials_gives_figures_of_a_page_and_a_page_listing_them_all(tmp_path, capsys):
    from platform import report
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged_sweep(uri, "many", TRIALS, media=False)
    out = tmp_path / "report"
    assert report.main(["many", "--out", str(out), "--tracking-uri", uri, "--no-log"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} >= set(report.FIGURES)
    for png in pngs:
        height, width = matplotlib.image.imread(png).shape[:2]
        assert height <= MAX_SIDE_PX and width <= MAX_SIDE_PX, (png.name, width, height)
    page = (out / report.PAGE).read_text()
    assert page.count("<tr data-run=") == TRIALS and f"The {report.TOP} best of {TRIALS} trials" in page
    err = capsys.readouterr().err
    assert f"report: read {TRIALS} trial runs" in err and "report: done in" in err
