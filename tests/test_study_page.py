"""benchmarks/study.py's page: every experiment's Inception FID beside real-vs-real, our rank beside the study's."""
import json

from benchmarks import study


def test_the_page_ranks_the_experiments_beside_the_study(tmp_path):
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "manifest.json").write_text(json.dumps({"counts": {"segments": 2600}}))
    fids = {"dcgan1_all_7ep": 90.0, "dcgan2_60k_6ep": 80.0, "dcgan2_all_2ep": 120.0, "dcgan2_30k_7ep": 100.0,
            "wgan_gp_60k_5ep": 150.0, "wgan_clip_60k_5ep": 300.0}
    results = sorted(({"experiment": e, "fid": f, "steps": 10} for e, f in fids.items()), key=lambda r: r["fid"])
    out = tmp_path / "study.md"
    study.write_page(out, "benchmarks/study.py corpus", ["model.width=16"], 40.0, 44.0, results,
                     {"fid": 20.0, "count": 512}, str(dataset), 512, "corpus")
    text = out.read_text()
    assert "| dcgan2_60k_6ep | 80.0 | 4.00 | 10 | 1 | 2 |" in text   # ours first, the study's second
    assert "| dcgan1_all_7ep | 90.0 | 4.50 | 10 | 2 | 1 |" in text
    assert "| dcgan2_30k_7ep | 100.0 | 5.00 | 10 | - | not ranked |" in text
    assert "Same rank as the study for 3 of 5 ranked experiments" in text
    assert "0.0100 of the study's" in text and "**20.0**" in text
