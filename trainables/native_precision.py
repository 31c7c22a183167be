"""What a device does natively in reduced precision, and so what `precision: auto` means.

One answer for evaluation and training. Evaluation (`evaluation.precision: auto`) uses the
device's native reduced precision: bf16 on a GPU of compute capability 8.0 or more or a CPU
with AVX512-BF16 or AMX-BF16, fp16 on an older GPU with tensor cores (7.x), else fp32; the
driver decides it once per sweep for every node (platform/driver/precision.py). Training
(`training.precision: auto`) uses bf16 autocast where the device does bf16 natively and the
family trains as well under it as in fp32 (`BF16_FAMILIES`, from benchmarks/bf16_quality.py
on real music, docs/training.md), else fp32. Emulated bf16 never counts: oneDNN emulates it
on any AVX512 CPU and `torch.cuda.is_bf16_supported()` counts emulation on older cards by
default; emulated, it is no faster, and `auto` is meant to buy speed at a measured cost.
"""
# torch is imported where a device is asked: the dry run reads BF16_FAMILIES without it.

# the families whose final Inception FID under bf16 autocast lay within fp32's seed-to-seed
# spread on real music (benchmarks/bf16_quality.py; the table is in docs/training.md)
BF16_FAMILIES = frozenset({"dcgan1", "dcgan2", "wgan_clip", "wgan_gp"})


def native_reduced_precision(device) -> str:
    """The reduced precision `device` (a torch.device) computes in natively: "bf16", "fp16" or "fp32" (none)."""
    import torch
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16" if major >= 7 else "fp32"
    if device.type == "cpu":
        flags = torch.cpu.get_capabilities()
        return "bf16" if flags.get("avx512_bf16") or flags.get("amx_bf16") else "fp32"
    return "fp32"


def node_precision() -> str:
    """`native_reduced_precision` of the device a trial on this node runs on (a GPU where
    there is one, as trainables/train.py picks): what the sweep's driver asks every node."""
    import torch
    return native_reduced_precision(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def training_precision(precision: str, family: str, device) -> str:
    """`training.precision` resolved for `family` on `device`: "bf16" (autocast) or "fp32"."""
    if precision != "auto":
        return precision
    native = native_reduced_precision(device) == "bf16"
    return "bf16" if native and family in BF16_FAMILIES else "fp32"
