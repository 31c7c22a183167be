"""Seconds per generator step and per evaluated sample on this machine's device, measured
once per setting and cached, so the dry run can say what a sweep will take.

A step is timed on the trainer itself (GANTrainer, random images of the model's shape, the
trial's critic steps, precision and thread count, at two small batches extrapolated to the
trial's) after one warm-up step; an
evaluation's cost is the embedding's per-image time over a batch of images, which
dominates FID, KID and coverage. The cache is a JSON file under the storage root, keyed by
the machine (host, processor, torch, device) and the setting, written whole or not at all.
"""
import dataclasses
import hashlib
import json
import os
import socket
import time
from pathlib import Path

CACHE = "calibration.json"
MIN_SECONDS = 1.0  # timed for at least this long, so a step's figure is not one timer tick
# Steps are timed at two small batches and extrapolated along the line through them (a fixed
# cost per step plus a cost per image), so that a study-sized GAN on a CPU calibrates in
# seconds, not minutes; a trial's batch at most STEP_BATCHES[-1] is timed as it is.
STEP_BATCHES = (4, 12)
EVAL_BATCH = 8


def machine_key(device: str) -> str:
    """Host, processor, torch's version and the device: what a measured second depends on."""
    from importlib.metadata import version
    gpu = ""
    if device == "cuda":
        import torch
        gpu = torch.cuda.get_device_name(0)
    return f"{socket.gethostname()}|{_cpu_model()}|torch {version('torch')}|{device} {gpu}".strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def _key(kind: str, setting: dict) -> str:
    return kind + ":" + hashlib.md5(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Calibration:
    """Measured seconds, read from and added to `<root>/calibration.json` for this machine."""

    def __init__(self, root: str, device: str, threads: int):
        self.path = Path(root) / CACHE
        self.device, self.threads = device, threads
        self.machine = machine_key(device)
        self.loads: list[float] = []  # the load average when each figure used was measured
        try:
            self.all = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.all = {}
        self.mine = self.all.setdefault(self.machine, {})

    def _cached(self, kind: str, setting: dict, measure) -> float:
        key = _key(kind, {**setting, "threads": self.threads})
        if key not in self.mine:
            self.mine[key] = {"seconds": measure(), "load": round(os.getloadavg()[0], 1)}
            self._save()
        self.loads.append(self.mine[key]["load"])
        return self.mine[key]["seconds"]

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.all, indent=1))
            os.replace(tmp, self.path)
        except OSError:
            pass  # an unwritable root costs a new measurement next time, nothing else

    def step_seconds(self, model, training) -> float:
        """Seconds of one generator step (with its critic steps) of this model and training."""
        setting = {"model": dataclasses.asdict(model),
                   **{k: getattr(training, k) for k in ("batch_size", "critic_steps", "optimizer",
                                                          "memory_format", "gp_lambda")},
                   # auto as the trainer resolves it here: a measured second is of one precision
                   "precision": self._training_precision(training.precision, model.family)}
        def at(batch: int) -> float:
            return self._cached("step", {**setting, "batch_size": batch},
                                lambda: self._time_steps(model, dataclasses.replace(training, batch_size=batch)))
        small, large = STEP_BATCHES
        if training.batch_size <= large:
            return at(training.batch_size)
        per_image = max(0.0, (at(large) - at(small)) / (large - small))
        return at(large) + per_image * (training.batch_size - large)

    @staticmethod
    def _training_precision(precision: str, family: str) -> str:
        """The key's precision: auto names the family's rule (on this machine's key it always
        resolves alike), without importing torch to ask the device."""
        if precision != "auto":
            return precision
        from trainables.native_precision import BF16_FAMILIES
        return f"auto:{'bf16 where native' if family in BF16_FAMILIES else 'fp32'}"

    def sample_seconds(self, evaluation, dataset_spec) -> float:
        """Seconds to embed one evaluated image (generated or real) in the sweep's embedding."""
        setting = {"embedding": evaluation.embedding, "precision": evaluation.precision,
                   "mel": dataclasses.asdict(dataset_spec.mel)}
        return self._cached("sample", setting, lambda: self._time_embedding(evaluation, dataset_spec))

    def _time_steps(self, model, training) -> float:
        import torch

        from trainables.config import EvaluationConfig, TrialConfig
        from trainables.trainer import GANTrainer
        torch.set_num_threads(self.threads)
        rows = max(4 * training.batch_size * training.critic_steps, 64)
        images = (torch.rand(rows, 1, *model.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).half()
        short = dataclasses.replace(training, iterations=10**6, steps_per_iteration=1, epochs=None,
                                    data_fraction=1.0, max_segments=None)
        device = torch.device(self.device)
        trainer = GANTrainer(TrialConfig(model, short, EvaluationConfig()), images.to(device), device)
        trainer.run_iteration()  # warm-up: allocations, kernel choices
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < MIN_SECONDS or steps < 1:
            trainer.run_iteration()
            steps += 1
        return (time.perf_counter() - started) / steps

    def _time_embedding(self, evaluation, dataset_spec) -> float:
        import torch

        from trainables.evaluation import precision
        from trainables.metrics import embeddings
        torch.set_num_threads(self.threads)
        device = torch.device(self.device)
        net = embeddings.build(evaluation.embedding, evaluation.inception_weights or None, dataset_spec,
                               precision(evaluation, device)).to(device)
        batch = torch.rand(EVAL_BATCH, 1, dataset_spec.mel.n_mels, dataset_spec.mel.frames,
                           generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
        with torch.no_grad():
            net(batch[:2])  # warm-up
            images, started = 0, time.perf_counter()
            while time.perf_counter() - started < MIN_SECONDS:
                net(batch)
                images += EVAL_BATCH
        return (time.perf_counter() - started) / images
