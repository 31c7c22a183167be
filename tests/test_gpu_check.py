"""benchmarks/gpu_check.py in its tiny mode, on CPU: every stage runs and reports numbers,
so the script a person runs once on a lent GPU has not rotted."""
import re

import pytest

from tests.helpers import ROOT, run_module, seed_datasets


@pytest.mark.slow
def test_the_gpu_check_runs_every_stage_in_tiny_mode(tmp_path, tiny_datasets):
    out = tmp_path / "report.md"
    # its quickstart's storage (quickstart.yaml leaves storage.root to the environment) holds
    # the session's TINY_DATASET, which the tiny quickstart asks for
    storage = seed_datasets(tiny_datasets, tmp_path / "runs")
    result = run_module("benchmarks.gpu_check", "--tiny", "--out", str(out), "--budget", "900",
                        cwd=ROOT, timeout=1200, env={"PLATFORM_STORAGE_ROOT": str(storage)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = out.read_text()
    sections = re.split(r"^## ", report, flags=re.M)[1:]
    assert [s.split(" (")[0] for s in sections] == [
        "Environment", "Quickstart on the GPU", "DCGAN 1 64 x 64: trainable vs a bare PyTorch loop",
        "Trials sharing the card", "Evaluation share at dcgan2.yaml's settings", "Inception in fp32 and bf16",
        "HiFi-GAN real-time factor"]
    assert "failed" not in report and "skipped" not in report
    assert re.search(r"quickstart\.yaml.*: \d+ s, \d+ lines printed", report)
    assert re.search(r"evaluation \(metrics and artifacts\) [\d.]+ s of [\d.]+ s of trial time: [\d.]+%", report)
    assert re.search(r"ratio trainable.* / bare: paired median [\d.]+", report)
    assert re.search(r"\| 2 \| \d+, \d+ \| \d+ \| [\d.]+x \|", report)
    assert re.search(r"now\s+\S+(\s+[\d.]+~?|\s+-){6}\s+[\d.]+\s+\d+\s+[\d.]+%", report)
    assert re.search(r"FID drift bf16 vs fp32: [+-][\d.]+%", report)
    assert re.search(r"HiFi-GAN on cpu: real-time factor [\d.]+", report)
