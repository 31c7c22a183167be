"""Read the float tensors of a TensorFlow 1 checkpoint (a tensor bundle) with numpy only.

A bundle is `PREFIX.index`, a LevelDB-format table mapping each variable name to a
`BundleEntryProto` (dtype, shape, offset and size in the data file), and
`PREFIX.data-00000-of-00001`, the raw little-endian bytes. TensorFlow writes the index
uncompressed, so reading it takes a varint decoder and the table's block layout; no
TensorFlow and no protobuf runtime (musicnn's checkpoints are the user: musicnn.py).
Nothing here executes anything from the file: it yields arrays of numbers.
"""
import struct
from pathlib import Path

import numpy as np

_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
_FOOTER = 48
_MAGIC = 0xdb4775248b80fb57


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block (prefix-compressed keys)."""
    if data[offset + size] != 0:
        raise ValueError("compressed checkpoint index blocks are not supported")
    block = data[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 * (restarts + 1)
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        fresh, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + fresh]
        pos += fresh
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int]:
    """BundleEntryProto -> (dtype, shape, shard, offset, size)."""
    dtype = shard = offset = size = 0
    shape: list[int] = []
    pos = 0
    while pos < len(value):
        tag, pos = _varint(value, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            number, pos = _varint(value, pos)
            if field == 1:
                dtype = number
            elif field == 3:
                shard = number
            elif field == 4:
                offset = number
            elif field == 5:
                size = number
        elif wire == 2:
            length, pos = _varint(value, pos)
            if field == 2:  # TensorShapeProto: repeated Dim (field 2) { int64 size = 1 }
                shape = _shape(value[pos:pos + length])
            pos += length
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in a checkpoint entry")
    return dtype, tuple(shape), shard, offset, size


def _shape(data: bytes) -> list[int]:
    dims, pos = [], 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        length, pos = _varint(data, pos)
        if tag >> 3 == 2:
            dim, inner = 0, pos
            while inner < pos + length:
                t, inner = _varint(data, inner)
                n, inner = _varint(data, inner)
                if t >> 3 == 1:
                    dim = n
            dims.append(dim)
        pos += length
    return dims


def read(prefix: str | Path) -> dict[str, np.ndarray]:
    """{variable name: array} of the checkpoint at `prefix` (the path without `.index`)."""
    prefix = str(prefix)
    index = Path(prefix + ".index").read_bytes()
    footer = index[-_FOOTER:]
    if struct.unpack_from("<Q", footer, _FOOTER - 8)[0] != _MAGIC:
        raise ValueError(f"{prefix}.index is not a TensorFlow checkpoint index")
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)  # the metaindex handle, unused
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    data = Path(prefix + ".data-00000-of-00001").read_bytes()
    tensors = {}
    for _, handle in _block(index, index_offset, index_size):
        block_offset, p = _varint(handle, 0)
        block_size, _ = _varint(handle, p)
        for key, value in _block(index, block_offset, block_size):
            if not key:  # the bundle header
                continue
            dtype, shape, shard, offset, size = _entry(value)
            if dtype not in _DTYPES or shard != 0:
                continue
            tensors[key.decode()] = np.frombuffer(data, _DTYPES[dtype], size // np.dtype(_DTYPES[dtype]).itemsize,
                                                  offset).reshape(shape).copy()
    return tensors
