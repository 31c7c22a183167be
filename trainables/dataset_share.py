"""A trial's mel images without a copy of its own: one read-only copy per node, shared.

Every trial on a node memory-maps the same `.npy` file, the node's own copy of the dataset
(data.node_cache.mel_array), so the node's page cache holds the images once, whatever the
number of trials, where reading the Parquet into each trial would hold one copy per trial.
Tune's object store (`ray.put`) would share one copy too, but its array must first be read
whole by one process, and the store is a fixed share of the host's memory; the file is
written one track at a time, outlives a sweep, and its pages can be dropped and read again
under memory pressure. Measured in benchmarks/data_memory.py (docs/data.md, "Memory").

Where a batch comes from:
- on a GPU, when the trial's rows take at most `training.data_device_share` of the GPU's
  memory: copied to the GPU once, batches drawn there (no host traffic);
- otherwise (a CPU trial, or a dataset too large for its share): gathered from the shared
  host copy into pinned memory and sent to the device asynchronously.

`training.data_dtype: uint8` keeps the mels quantised (data.dataset.quantise: 255 steps over
the mel's dB range), half the bytes of float16; a batch is turned back into [-1, 1] floats
on the device.
"""
import logging
import warnings

import numpy as np
import torch

from data.dataset import selected_rows
from data.node_cache import mel_array

log = logging.getLogger(__name__)


def _to_float(batch: torch.Tensor) -> torch.Tensor:
    """A batch as stored -> [-1, 1]: uint8 levels are dequantised, float16 is cast up later by the trainer."""
    if batch.dtype == torch.uint8:
        return batch.float().mul_(2 / 255).sub_(1)
    return batch


class SharedImages:
    """(segments, 1, n_mels, frames) for GANTrainer and the evaluator: `images[index]` is
    that batch on `device` ([-1, 1]; float16 or float32), `len(images)` the segments."""

    def __init__(self, host: np.ndarray, rows: np.ndarray | None, device: torch.device,
                 on_device: bool):
        self.device = device
        self.on_device = on_device
        self.stored_dtype = str(host.dtype)
        self.rows = None if rows is None else torch.from_numpy(rows.astype(np.int64))
        count = len(host) if rows is None else len(rows)
        self.shape = torch.Size((count, 1, *host.shape[1:]))
        with warnings.catch_warnings():  # the map is read-only; torch warns, and nothing here writes it
            warnings.simplefilter("ignore", UserWarning)
            self.host = torch.from_numpy(host)
        self.resident = None
        if on_device:  # one private copy on the GPU, written in slices so the host never holds a second one
            self.resident = torch.empty((count, *host.shape[1:]), dtype=self.host.dtype, device=device)
            for start in range(0, count, 4096):
                index = torch.arange(start, min(count, start + 4096))
                self.resident[start:start + len(index)] = self._gather(index).to(device)
        self._staging = []  # pinned buffers, each with the event of its last copy (GPU host path)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return len(self) * self.host[0].nbytes

    def _gather(self, index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        index = index.cpu()
        if self.rows is not None:
            index = self.rows[index]
        return torch.index_select(self.host, 0, index, out=out) if out is not None else self.host[index]

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            batch = self.resident[index.to(self.device)]
        elif self.device.type == "cuda":
            batch = self._through_pinned(index)
        else:
            batch = self._gather(index)  # a private batch, gathered from the shared pages
        return _to_float(batch).unsqueeze(1)

    def _through_pinned(self, index: torch.Tensor) -> torch.Tensor:
        """Gather into a pinned buffer, copy it to the GPU without waiting; two buffers in
        turn, each reused only once the copy out of it has finished."""
        shape = (len(index), *self.host.shape[1:])
        if not self._staging or self._staging[0][0].shape != shape:
            self._staging = [(torch.empty(shape, dtype=self.host.dtype).pin_memory(), None) for _ in range(2)]
        buffer, copied = self._staging.pop(0)
        if copied is not None:
            copied.synchronize()
        self._gather(index, out=buffer)
        batch = buffer.to(self.device, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self._staging.append((buffer, done))
        return batch


def device_budget(device: torch.device, share: float) -> int:
    """Bytes of the dataset a trial may copy onto `device`: `share` of its memory; 0 on a CPU,
    where the shared host copy already is the device's memory."""
    if device.type != "cuda" or share <= 0:
        return 0
    return int(share * torch.cuda.get_device_properties(device).total_memory)


def shared_images(dataset_path: str, max_segments: int | None, device: torch.device, fraction: float = 1.0,
                  batch_size: int = 1, dtype: str = "float16", device_share: float = 0.15) -> SharedImages:
    """The trial's rows (the seeded subset `load_mels` would return) from the node's shared
    copy, on the device when they fit its share of the device's memory."""
    host = mel_array(dataset_path, dtype)
    rows = selected_rows(len(host), max_segments, 0, fraction, batch_size)
    if max_segments is not None and len(rows) < max_segments:
        log.warning("training.max_segments is %d but the dataset at %s has %d segments: training on all of them",
                    max_segments, dataset_path, len(rows))
    wanted = len(rows) * host[0].nbytes
    on_device = 0 < wanted <= device_budget(device, device_share)
    if device.type == "cuda" and not on_device:
        log.info("the dataset's %.1f GB exceed training.data_device_share (%.2f) of the GPU: batches come "
                 "from the node's shared copy through pinned memory", wanted / 1e9, device_share)
    return SharedImages(host, None if len(rows) == len(host) else rows, device, on_device)
