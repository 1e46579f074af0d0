"""Memory-mapped reads of safetensors files, with structural checks.

The format (see the safetensors spec): an 8-byte little-endian header length N, N bytes of JSON
mapping tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the end of the
header) plus an optional "__metadata__" string map, then the raw tensor bytes. Reading the header
alone is cheap, so an index over thousands of episodes touches a few KB per file.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"U8": np.uint8, "BOOL": np.bool_, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}
MAX_HEADER = 100 * 1024 * 1024


class CorruptFile(ValueError):
    """A file is not a complete, well-formed safetensors file."""


@contextmanager
def os_errors(path: str | Path) -> Iterator[None]:
    """Re-raise the safetensors writer's I/O failures (its own error type, "... (os error 28)") as the
    OSError they are, naming `path`, so a full disk is reported like any other."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        m = re.search(r"os error (\d+)", str(e))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """(tensor table, metadata, data start offset); raises CorruptFile naming the problem."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFile(f"{path}: truncated ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise CorruptFile(f"{path}: truncated or corrupt header (claims {n} bytes, file has {size})")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorruptFile(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CorruptFile(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    data_start = 8 + n
    end = 0
    for name, t in header.items():
        try:
            begin, stop = t["data_offsets"]
            nbytes = int(np.prod(t["shape"], dtype=np.int64)) * np.dtype(DTYPES[t["dtype"]]).itemsize
        except (KeyError, TypeError, ValueError):
            raise CorruptFile(f"{path}: tensor {name!r} has a malformed entry {t!r}") from None
        if stop - begin != nbytes:
            raise CorruptFile(f"{path}: tensor {name!r} spans {stop - begin} bytes but its shape needs {nbytes}")
        end = max(end, stop)
    if data_start + end != size:
        raise CorruptFile(f"{path}: truncated or padded (expected {data_start + end} bytes, found {size})")
    return header, meta, data_start


def memmap_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor as a read-only memory map, plus the metadata."""
    header, meta, data_start = read_header(path)
    arrays = {}
    for name, t in header.items():
        begin, _ = t["data_offsets"]
        shape = tuple(t["shape"])
        dtype = DTYPES[t["dtype"]]
        if int(np.prod(shape)) == 0:
            arrays[name] = np.zeros(shape, dtype)
        else:
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin, shape=shape)
    return arrays, meta
