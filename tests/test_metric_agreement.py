"""benchmarks/metric_agreement.py end to end on a tiny folder of synthetic techno: Ray Data
builds it, two families train in real Tune runs under FIFO and ASHA, every checkpoint is
scored in the embeddings, and every figure of the report is printed."""
import re
import sys
from pathlib import Path

import pytest
import soundfile

from data import synthetic
from tests.helpers import ROOT

# FAD's musicnn is left out here to keep the slow tier short (0.5 s of CPU a clip; it is
# tested in tests/test_fad.py and tests/test_evaluation.py); the report's columns follow
EMBEDDINGS = ("random-conv", "mel-stats", "inception", "inception-fast")  # inception-fast: the in-loop default


@pytest.mark.slow
def test_metric_agreement_prints_every_figure(tmp_path):
    import subprocess
    music = tmp_path / "music"
    music.mkdir()
    for track in range(5):
        wave, _ = synthetic.render_track(track, 24.0, 22050)
        soundfile.write(music / f"track{track}.wav", wave, 22050)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "metric_agreement.py"), str(music), "--work", str(tmp_path / "work"),
         "--families", "dcgan1", "dcgan2", "--rates", "1", "--width", "4", "--checkpoints", "3", "--steps", "2",
         "--samples", "16", "--batch-size", "8", "--embeddings", *EMBEDDINGS, "--fewer-samples", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "checkpoints scored: 6 (2 trials)" in out
    baseline = re.search(r"real-vs-real baseline: (.*)", out).group(1)
    assert all(f"{name} " in baseline for name in EMBEDDINGS)
    rho = out.split("Spearman rho over all checkpoints")[1].split("final models")[0]
    for name in EMBEDDINGS:  # a row per embedding: rho vs Inception, over all and within trajectories
        row = re.search(rf"^{re.escape(name)}\s+(\S+)\s+(\S+)$", rho, re.M)
        assert row, rho
        assert all(re.fullmatch(r"-?\d\.\d{3}|nan", v) for v in row.groups()), row.group(0)
    assert re.search(r"95% interval of rho vs inception .*: random-conv -?\d\.\d\d\.\.-?\d\.\d\d", out)
    orderings = out.split("final models (2), best first")[1].split("trial successive halving")[0]
    assert all(re.search(rf"{re.escape(n)}\s+\S+ [\d.]+x\s+\S+ [\d.]+x", orderings) for n in EMBEDDINGS), orderings
    kept = out.split("trial successive halving")[1].split("FIFO vs ASHA")[0]
    assert all(re.search(rf"{re.escape(n)}\s+dcgan[12]-lr", kept) for n in EMBEDDINGS), kept
    assert re.search(r"best reference FID reached: FIFO [\d.]+, ASHA [\d.]+ \(ratio [\d.]+\)", out)
    assert re.search(r"total trial-steps: FIFO 12, ASHA \d+ \(ratio [\d.]+\)", out)
    assert "largest relative difference 0.00e+00" in out  # ASHA's trials are FIFO's, cut short
    replayed = out.split("ASHA replayed on each metric's trajectories (2 trials")[1].split("collapse:")[0]
    for name in EMBEDDINGS:  # per metric: FIFO's pick, ASHA's pick, their reference FIDs, the ratios
        assert re.search(rf"^  {re.escape(name)}\s+dcgan[12]-lr\S+\s+[\d.]+\s+dcgan[12]-lr\S+\s+[\d.]+\s+[\d.]+\s+"
                         rf"[\d.]+$", replayed, re.M), replayed
    assert re.search(r"the real ASHA run, on the trials' own in-loop values, stopped (the same|other) trials", replayed)
    assert re.search(r"best final model by the reference: dcgan[12]-lr\S+ [\d.]+", replayed)
    assert re.search(r"collapse: \d+ of 6 checkpoints have samples spread below 0.5", out)
    assert re.search(r"inception-fast on 8 samples against inception on all: rho -?[\d.]+ over 6 checkpoints", out)
    assert Path(tmp_path / "work" / "trials-fifo" / "dcgan1-lr0.0002" / "generator_3.pt").exists()
