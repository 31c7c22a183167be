"""The trainer's evaluator: metrics that rank generators, a fixed latent batch, a shared cache."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from platform.spec.typed import SpecError, build
from benchmarks import probes as fid_probes
from trainables.metrics import embeddings, fid, reference
from trainables.config import EvaluationConfig
from trainables.evaluation import Evaluator, prepare_reference
from tests.helpers import CHEAP_EMBEDDING


class BankGenerator(torch.nn.Module):
    """Plays a generator by mapping each latent vector to an image of a fixed bank."""

    def __init__(self, bank: torch.Tensor):
        super().__init__()
        self.register_buffer("bank", bank)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        picks = (z[:, :4].abs().sum(1) * 1e4).long() % len(self.bank)
        return self.bank[picks]


@pytest.fixture(scope="module")
def halves():
    return fid_probes.halves(*fid_probes.synthetic_mels())


def _dataset(path, fingerprint="fp-test"):
    path.mkdir(exist_ok=True)
    (path / "manifest.json").write_text(json.dumps({"fingerprint": fingerprint}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("embedding, samples", [(CHEAP_EMBEDDING, 128), ("inception-fast", 64)])  # the default
def test_metrics_rank_real_above_noisy_and_collapsed_generators(tmp_path, halves, embedding, samples):
    real, held_out = halves
    cfg = EvaluationConfig(samples=samples, kid_subsets=20, embedding=embedding)
    evaluate = Evaluator(cfg, str(_dataset(tmp_path)), real.half(), latent_dim=16, device=torch.device("cpu"))
    good = BankGenerator(held_out)
    noisy = BankGenerator(fid_probes.add_noise(held_out, 0.1))
    collapsed = BankGenerator(held_out[:4])
    good.train()
    scores = {name: evaluate(g) for name, g in [("good", good), ("noisy", noisy), ("collapsed", collapsed)]}
    assert set(scores["good"]) == {"fid", "kid", "density", "coverage", "eval/seconds"}
    assert good.training, "the generator is put back in training mode"
    for bad in ("noisy", "collapsed"):
        assert scores["good"]["fid"] < scores[bad]["fid"] and scores["good"]["kid"] < scores[bad]["kid"]
    assert scores["collapsed"]["coverage"] < 0.5 * scores["good"]["coverage"]
    again = evaluate(good)
    assert {k: v for k, v in again.items() if k != "eval/seconds"} == \
           {k: v for k, v in scores["good"].items() if k != "eval/seconds"}, "a fixed latent batch"
    assert again["eval/seconds"] > 0


def test_a_second_trial_reads_the_cached_real_statistics(tmp_path, monkeypatch):
    images = torch.rand(40, 1, 64, 64) * 2 - 1
    calls = []
    compute = reference._compute
    monkeypatch.setattr(reference, "_compute", lambda *a, **k: calls.append(1) or compute(*a, **k))
    path = str(_dataset(tmp_path))
    cfg = EvaluationConfig(samples=32, kid_subsets=2, embedding=CHEAP_EMBEDDING)
    first = Evaluator(cfg, path, images, 8, torch.device("cpu"))
    second = Evaluator(cfg, path, images, 8, torch.device("cpu"))
    assert len(calls) == 1
    assert second.real.sample.shape == first.real.sample.shape == (32, first.embedding.dim)
    third = Evaluator(cfg, path, images, 8, torch.device("cpu"))  # a reused worker's next trial
    assert third.real is second.real and third.embedding is second.embedding, "read once per worker"
    with pytest.raises(ValueError):
        third.real.sigma[0, 0] = 1.0  # shared between trials: read-only
    _dataset(tmp_path / "other", "fp-other")
    Evaluator(cfg, str(tmp_path / "other"), images, 8, torch.device("cpu"))
    assert len(calls) == 2, "another dataset computes its own"


def _write_segments(path, images: np.ndarray) -> None:
    """The built dataset's layout (data/dataset.py): one row per segment, a float16 tensor column."""
    (path / "segments").mkdir()
    mels = pa.FixedShapeTensorArray.from_numpy_ndarray(images[:, 0].astype(np.float16))
    table = pa.table({"track_id": [f"t{i // 4:03d}" for i in range(len(images))],
                      "segment_index": [i % 4 for i in range(len(images))], "mel": mels})
    pq.write_table(table, path / "segments" / "part-0.parquet")


def test_the_reference_is_the_dataset_on_disk_not_a_trials_training_subset(tmp_path):
    images = torch.rand(40, 1, 64, 64) * 2 - 1
    path = _dataset(tmp_path)
    _write_segments(path, images.numpy())
    cfg = EvaluationConfig(samples=32, kid_subsets=2, embedding=CHEAP_EMBEDDING)
    subset = Evaluator(cfg, str(path), images[:20], 8, torch.device("cpu"))  # training.max_segments=20
    assert subset.real.count == 32, "the 32 real images come from the 40 on disk"
    whole = Evaluator(cfg, str(path), images, 8, torch.device("cpu"))
    assert np.array_equal(subset.real.mu, whole.real.mu)


def test_the_reference_is_the_same_rows_in_memory_and_on_disk(tmp_path):
    # one subset rule: the same dataset gives the same reference and baseline however it is read
    images = (torch.rand(40, 1, 64, 64) * 2 - 1).half().float()  # exactly what float16 segments hold
    on_disk = _dataset(tmp_path / "disk")
    _write_segments(on_disk, images.numpy())
    in_memory = _dataset(tmp_path / "memory")
    embedding = embeddings.build(CHEAP_EMBEDDING)
    read, held = (reference.real_stats(path, "fp", embedding, 24, images=given)
                  for path, given in ((on_disk, None), (in_memory, images)))
    assert np.array_equal(read.sample, held.sample) and np.allclose(read.sigma, held.sigma, rtol=0, atol=1e-12)
    assert reference.real_vs_real(on_disk, "fp", embedding, 8) == \
           pytest.approx(reference.real_vs_real(in_memory, "fp", embedding, 8, images=images))


def test_a_driver_can_warm_the_cache_before_trials_start(tmp_path, monkeypatch):
    images = torch.rand(40, 1, 64, 64) * 2 - 1
    path = _dataset(tmp_path)
    _write_segments(path, images.numpy())
    cfg = EvaluationConfig(samples=32, kid_subsets=2, embedding=CHEAP_EMBEDDING)
    cached = prepare_reference(cfg, str(path))
    assert cached.exists() and cached.name.startswith("fp-test-random-conv-")
    monkeypatch.setattr(reference, "_compute", lambda *a, **k: pytest.fail("a trial recomputed the reference"))
    Evaluator(cfg, str(path), images, 8, torch.device("cpu"))


def test_a_directory_without_a_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        Evaluator(EvaluationConfig(samples=16, embedding=CHEAP_EMBEDDING), str(tmp_path), torch.zeros(16, 1, 64, 64), 8,
                  torch.device("cpu"))


def test_the_evaluation_section_is_validated_by_name():
    assert build(EvaluationConfig, {"embedding": "mel-stats", "kid": False}, "evaluation").embedding == "mel-stats"
    with pytest.raises(SpecError, match="evaluation.embedding: expected one of"):
        build(EvaluationConfig, {"embedding": "inceptionv3"}, "evaluation")
    with pytest.raises(SpecError, match="coverage_k"):
        build(EvaluationConfig, {"samples": 16, "coverage_k": 16}, "evaluation")


def test_real_vs_real_is_the_floor_of_fid_and_is_cached(tmp_path, halves):
    real, held_out = halves
    path = str(_dataset(tmp_path))
    cfg = EvaluationConfig(samples=96, kid_subsets=2, embedding=CHEAP_EMBEDDING)
    images = torch.cat([real, held_out])
    evaluate = Evaluator(cfg, path, images, 16, torch.device("cpu"))
    embedding = evaluate.embedding
    floor = reference.real_vs_real(path, "fp-test", embedding, cfg.samples, cfg.seed, images=images)
    assert floor["count"] == 96 and 0 < floor["fid"]
    # a noisy generator scores well above the floor; the floor is read back, not recomputed
    assert evaluate(BankGenerator(fid_probes.add_noise(held_out, 0.2)))["fid"] > 3 * floor["fid"]
    assert reference.real_vs_real(path, "fp-test", embedding, cfg.samples, cfg.seed, images=torch.zeros(0)) == floor
    assert fid.readable(504.8, 3.684) == "fid 504.8 = 137x real-vs-real"
    assert fid.readable(504.8, None) == "fid 504.8"


def test_a_dataset_the_reference_fills_gets_a_half_against_half_baseline(tmp_path):
    images = torch.rand(40, 1, 64, 64) * 2 - 1
    embedding = Evaluator(EvaluationConfig(samples=32, kid_subsets=2, embedding=CHEAP_EMBEDDING), str(_dataset(tmp_path)),
                          images, 8, torch.device("cpu")).embedding
    floor = reference.real_vs_real(str(tmp_path), "fp-test", embedding, 32, images=images)
    assert floor["count"] == 20 and floor["fid"] > 0


@pytest.mark.slow
def test_final_metrics_score_the_generator_in_other_embeddings(tmp_path, halves):
    real, held_out = halves
    cfg = EvaluationConfig(samples=16, kid=False, coverage=False, final_metrics=["mel-stats", "fad-musicnn"],
                           embedding=CHEAP_EMBEDDING)
    evaluate = Evaluator(cfg, str(_dataset(tmp_path)), real, 16, torch.device("cpu"))
    good, collapsed = BankGenerator(held_out), BankGenerator(held_out[:1])
    scores = {name: evaluate.final(g) for name, g in (("good", good), ("collapsed", collapsed))}
    assert set(scores["good"]) == {"final/mel-stats", "final/fad-musicnn"}
    assert all(np.isfinite(v) and v >= 0 for s in scores.values() for v in s.values())
    assert scores["good"]["final/fad-musicnn"] < scores["collapsed"]["final/fad-musicnn"]
    assert evaluate.final(good) == scores["good"]  # seeded inversion: the same generator, the same FAD
