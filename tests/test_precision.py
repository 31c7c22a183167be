"""Native reduced precision from the hardware only (mocked capability queries): a sweep's
evaluation precision decided once on the driver from every node, recorded in the spec every
trial and the reference statistics read; training's auto precision per device and family."""
import logging

import pytest
import torch

from platform.driver import cluster, precision
from platform.driver.cluster import Node
from platform.spec import spaces, tune_space
from tests.helpers import ROOT
from trainables import native_precision
from trainables.config import ModelConfig, TrainingConfig

QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"
CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp16"),
                                                  ((7, 0), "fp16"), ((6, 1), "fp32")])
def test_a_gpu_counts_bf16_only_from_compute_capability_8(monkeypatch, capability, expected):
    # a T4 (7.5) or V100 (7.0) emulates bf16: torch's default check says yes, and must not be asked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert native_precision.native_reduced_precision(CUDA) == expected


@pytest.mark.parametrize("flags, expected", [({"avx512f": True, "avx512_bf16": False, "amx_bf16": False}, "fp32"),
                                             ({"avx512f": True, "avx512_bf16": True}, "bf16"),
                                             ({"avx512f": True, "amx_bf16": True}, "bf16"),
                                             ({"avx2": True}, "fp32")])
def test_a_cpu_counts_bf16_only_with_avx512_bf16_or_amx(monkeypatch, flags, expected):
    # oneDNN emulates bf16 on any AVX512 CPU: its own "supported" check says yes there
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    assert native_precision.native_reduced_precision(CPU) == expected


def test_the_precision_every_node_shares_else_fp32():
    assert precision.shared({"a": "bf16", "b": "bf16"}) == "bf16"
    assert precision.shared({"a": "fp16"}) == "fp16"
    assert precision.shared({"a": "bf16", "b": "fp16"}) == "fp32"
    assert precision.shared({"a": "bf16", "b": "fp32"}) == "fp32"


def _nodes(monkeypatch, native: dict[str, str]) -> list[Node]:
    nodes = [Node(f"id-{address}", address) for address in native]
    monkeypatch.setattr(cluster, "native_precisions", lambda asked: {n: native[n.address] for n in asked})
    return nodes


def test_a_cluster_sweep_takes_the_precision_its_nodes_share(monkeypatch):
    spec = spaces.load(QUICKSTART)
    assert spec.evaluation.precision == "auto"
    nodes = _nodes(monkeypatch, {"10.0.0.1": "bf16", "10.0.0.2": "bf16"})
    decided = precision.decide(spec, nodes, "auto")
    assert decided.evaluation.precision == "bf16"
    # every trial's config carries it (and so its MLflow params); the driver's reference reads spec.evaluation
    assert tune_space.param_space(decided)["evaluation"]["precision"] == "bf16"
    assert spec.evaluation.precision == "auto"  # the spec as written is untouched (--resume compares it)


def test_a_node_without_the_others_precision_makes_the_sweep_fp32_saying_so(monkeypatch, caplog):
    nodes = _nodes(monkeypatch, {"10.0.0.1": "bf16", "10.0.0.2": "fp16"})
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        decided = precision.decide(spaces.load(QUICKSTART), nodes, "auto")
    assert decided.evaluation.precision == "fp32"
    assert "10.0.0.1: bf16, 10.0.0.2: fp16" in caplog.text and len(caplog.records) == 1


def test_a_local_sweep_asks_this_machine_and_a_named_precision_is_kept(monkeypatch):
    monkeypatch.setattr(cluster, "native_precisions", lambda nodes: pytest.fail("a local sweep asks no node"))
    monkeypatch.setattr(native_precision, "node_precision", lambda: "bf16")
    assert precision.decide(spaces.load(QUICKSTART), [], "local").evaluation.precision == "bf16"
    named = spaces.load(QUICKSTART, overrides=["evaluation.precision=fp32"])
    assert precision.decide(named, [], "local").evaluation.precision == "fp32"


NATIVE = {"avx512f": True, "avx512_bf16": True}
EMULATED = {"avx512f": True, "avx512_bf16": False, "amx_bf16": False}


@pytest.mark.parametrize("flags, expected", [(NATIVE, "bf16"), ({"amx_bf16": True}, "bf16"), (EMULATED, "fp32"),
                                             ({"avx2": True}, "fp32")])
def test_training_auto_is_bf16_on_a_cpu_with_native_bf16_else_fp32(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    for family in native_precision.BF16_FAMILIES:
        assert native_precision.training_precision("auto", family, CPU) == expected
    # a named precision is kept whatever the hardware
    assert native_precision.training_precision("fp32", "dcgan1", CPU) == "fp32"
    assert native_precision.training_precision("bf16", "dcgan1", CPU) == "bf16"


def test_training_auto_keeps_fp32_for_a_family_outside_the_checked_ones(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: NATIVE)
    monkeypatch.setattr(native_precision, "BF16_FAMILIES", frozenset({"dcgan1"}))
    assert native_precision.training_precision("auto", "dcgan1", CPU) == "bf16"
    assert native_precision.training_precision("auto", "wgan_gp", CPU) == "fp32"


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((7, 5), "fp32")])
def test_training_auto_on_a_gpu_is_bf16_from_compute_capability_8(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert native_precision.training_precision("auto", "dcgan1", CUDA) == expected


@pytest.mark.parametrize("flags, autocast", [(NATIVE, True), (EMULATED, False)])
def test_the_trainer_trains_under_the_resolved_precision(monkeypatch, flags, autocast):
    from trainables.config import EvaluationConfig, TrialConfig
    from trainables.trainer import GANTrainer
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    cfg = TrialConfig(ModelConfig(width=8, latent_dim=8), TrainingConfig(batch_size=4, steps_per_iteration=1,
                                                                        iterations=1), EvaluationConfig())
    trainer = GANTrainer(cfg, torch.rand(8, 1, 64, 64) * 2 - 1, CPU)
    assert trainer.precision == ("bf16" if autocast else "fp32")
    with trainer.autocast():
        assert torch.is_autocast_enabled("cpu") is autocast
    assert torch.isfinite(torch.tensor(trainer.run_iteration()["loss/D"]))
