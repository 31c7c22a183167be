"""A sweep's evaluation precision, decided once, on the driver, from what every node does natively.

`evaluation.precision: auto` means the reduced precision the hardware does natively
(trainables/native_precision.py: bf16 on a GPU of compute capability 8.0 or more or a CPU
with AVX512-BF16 or AMX, fp16 on an older GPU, else fp32). Resolved on each node, a mixed
cluster would compare fids computed in different precisions in one ASHA rung, against
reference statistics computed in another. So the driver asks every node, takes the precision
they all do natively (fp32 when they differ, saying so), and the sweep runs with that value:
the reference statistics, every trial's `evaluation.precision` (so its MLflow params) and the
parent run's params. A precision the user names, or searches, is kept as given.
"""
import dataclasses
import logging

log = logging.getLogger(__name__)
KEY = "evaluation.precision"


def shared(native: dict[str, str]) -> str:
    """The precision every node does natively ({node: its precision}), else fp32."""
    found = set(native.values())
    return found.pop() if len(found) == 1 else "fp32"


def native(nodes: list, address: str | None) -> dict[str, str]:
    """{node: its native precision}: asked on each node of a cluster, here for a local Ray."""
    from platform.driver import cluster
    if cluster.is_local(address):
        from trainables.native_precision import node_precision
        return {"this machine": node_precision()}
    return {node.address: precision for node, precision in cluster.native_precisions(nodes).items()}


def decide(spec, nodes: list, address: str | None):
    """`spec` with `evaluation.precision: auto` replaced by the sweep's one precision."""
    if spec.evaluation.precision != "auto" or KEY in spec.search:
        return spec
    found = native(nodes, address)
    chosen = shared(found)
    if len(set(found.values())) > 1:
        log.warning("evaluation.precision auto is fp32 for this sweep: its nodes differ in what they do natively "
                    "(%s), and one precision serves the reference statistics and every trial",
                    ", ".join(f"{node}: {p}" for node, p in sorted(found.items())))
    return dataclasses.replace(spec, evaluation=dataclasses.replace(spec.evaluation, precision=chosen))
