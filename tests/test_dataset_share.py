"""One copy of a dataset per node (trainables/dataset_share.py, data.node_cache.mel_array) and
uint8 mels: same rows and order as load_mels, a round trip within half a step, the trainer
unchanged by the shared path, and two trial processes sharing one copy's pages."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data import dataset, mel, node_cache, sources, tracks
from data.spec import DatasetSpec, SyntheticSource
from trainables.config import TrialConfig
from trainables.dataset_share import shared_images
from trainables.trainer import GANTrainer

ROOT = Path(__file__).resolve().parent.parent


def _dataset(tmp_path: Path, tracks_n: int = 3, seconds: float = 16.0) -> Path:
    """A dataset directory written by the per-track step itself (no Ray), with its manifest's scaling."""
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=tracks_n, seconds=seconds, seed=5))
    path = tmp_path / "ds"
    (path / dataset.SEGMENTS).mkdir(parents=True)
    for track in sources.resolve(spec)[0]:
        assert tracks.process(track, spec, path / dataset.SEGMENTS)["segments"] > 0
    (path / dataset.MANIFEST).write_text(json.dumps({"shape": [64, 64], "scaling": mel.scaling(spec)}))
    return path


def test_the_shared_array_holds_load_mels_rows_and_uint8_is_within_half_a_step(tmp_path):
    path = _dataset(tmp_path)
    everything = dataset.load_mels(path)
    shared = node_cache.mel_array(path, "float16")
    assert isinstance(shared, np.memmap) and not shared.flags.writeable
    assert np.array_equal(np.asarray(shared), everything)
    assert Path(shared.filename).name == "mels-float16.npy" and not list(path.glob("*.npy"))  # the node's, not beside

    levels = node_cache.mel_array(path, "uint8")
    assert levels.dtype == np.uint8 and levels.nbytes * 2 == shared.nbytes
    step_db = dataset.uint8_step_db(path)
    assert step_db == pytest.approx(80 / 255)  # the study's mel: top_db 80 over 255 steps
    to_db = step_db * 255 / 2  # image units -> dB
    error_db = np.abs(dataset.dequantise(levels) - everything.astype(np.float32)) * to_db
    # float16 itself rounds by up to 2**-11 of the image's range: within half a step plus that
    assert error_db.max() <= step_db / 2 + 2 ** -11 * to_db
    assert error_db.max() > step_db / 4  # it does quantise: the check above can fail
    # an image already on the grid comes back exactly
    assert np.array_equal(dataset.quantise(dataset.dequantise(levels)), np.asarray(levels))


def test_a_subset_draws_the_rows_load_mels_draws(tmp_path):
    path = _dataset(tmp_path)
    images = shared_images(str(path), 5, torch.device("cpu"), batch_size=2)
    expected = dataset.load_mels(path, max_segments=5)
    assert len(images) == 5 and tuple(images.shape) == (5, 1, 64, 64)
    index = torch.tensor([4, 0, 2])
    assert torch.equal(images[index], torch.from_numpy(expected[[4, 0, 2]]).unsqueeze(1))
    quarter = shared_images(str(path), None, torch.device("cpu"), fraction=0.5, batch_size=2, dtype="uint8")
    assert len(quarter) == len(dataset.load_mels(path, fraction=0.5, at_least=2))
    assert quarter[torch.tensor([0])].dtype == torch.float32  # dequantised as drawn


def test_the_trainer_steps_identically_on_the_shared_copy(tmp_path):
    """Today's path (the tensor in the trial's memory) and the shared one give the very same losses."""
    path = _dataset(tmp_path)
    config = {"model": {"width": 8, "latent_dim": 16}, "evaluation": {},
              "training": {"batch_size": 4, "iterations": 1, "steps_per_iteration": 3, "deterministic": True}}
    cfg = TrialConfig.from_tune(config)
    cpu = torch.device("cpu")
    private = torch.from_numpy(dataset.load_mels(path)).unsqueeze(1)
    before = GANTrainer(cfg, private, cpu).run_iteration()
    after = GANTrainer(cfg, shared_images(str(path), None, cpu, batch_size=4), cpu).run_iteration()
    assert (before["loss/D"], before["loss/G"]) == (after["loss/D"], after["loss/G"])
    quantised = GANTrainer(cfg, shared_images(str(path), None, cpu, batch_size=4, dtype="uint8"), cpu).run_iteration()
    assert quantised["loss/D"] != before["loss/D"]  # another input ...
    assert quantised["loss/D"] == pytest.approx(before["loss/D"], rel=0.02)  # ... within its rounding


_TRIAL = """
import sys, torch
from trainables.dataset_share import shared_images
images = shared_images(sys.argv[1], None, torch.device("cpu"), dtype=sys.argv[2])
total = sum(float(images[torch.arange(i, min(i + 64, len(images)))].sum()) for i in range(0, len(images), 64))
print("ready", flush=True)
sys.stdin.read()  # held until the parent has read this process's memory
"""


def _mapped_kb(pid: int, name: str) -> tuple[int, int]:
    """(Rss, Pss) in kB of the mappings of file `name` in process `pid` (/proc/PID/smaps)."""
    rss = pss = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(name)
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif inside and line.startswith("Pss:"):
            pss += int(line.split()[1])
    return rss, pss


@pytest.mark.slow
def test_two_trials_on_one_node_share_one_copy(tmp_path):
    path = _dataset(tmp_path, tracks_n=8, seconds=60.0)  # 96 segments, 768 kB in float16
    size_kb = node_cache.mel_array(path, "float16").nbytes // 1024
    trials = [subprocess.Popen([sys.executable, "-c", _TRIAL, str(path), "float16"], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for trial in trials:  # each has read every image once
            assert trial.stdout.readline().strip() == "ready"
        mapped = [_mapped_kb(trial.pid, "mels-float16.npy") for trial in trials]
    finally:
        for trial in trials:
            trial.communicate("", timeout=600)
    for rss, pss in mapped:
        assert rss >= 0.9 * size_kb  # each maps the whole dataset ...
        assert pss <= 0.6 * size_kb  # ... and pays for half of it: the pages are the same
    assert sum(pss for _, pss in mapped) <= 1.1 * size_kb  # one copy between them
