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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"U8": np.uint8, "BOOL": np.bool_, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
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


def memmap_tensors(path: Path, mode: str = "r") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor as a memory map, plus the metadata. `mode` "r": read-only; "c": copy-on-write (writable
    in memory, the file never changes)."""
    header, meta, data_start = read_header(path)
    arrays = {}
    for name, t in header.items():
        begin, _ = t["data_offsets"]
        shape = tuple(t["shape"])
        dtype = DTYPES[t["dtype"]]
        if int(np.prod(shape)) == 0:
            arrays[name] = np.zeros(shape, dtype)
        else:
            arrays[name] = np.memmap(path, dtype=dtype, mode=mode, offset=data_start + begin, shape=shape)
    return arrays, meta


@dataclass(frozen=True)
class TensorAt:
    """Where one tensor's bytes lie in a file, for reading a few rows without mapping the file."""

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows `index` of the tensor (along its first axis), read with plain file reads: nothing stays
        mapped, so reading many files does not accumulate resident memory."""
        row = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        with open(self.path, "rb") as f:
            for i, r in enumerate(index):
                f.seek(self.offset + int(r) * row)
                out[i] = np.frombuffer(f.read(row), self.dtype).reshape(self.shape[1:])
        return out


def locate(path: Path, name: str) -> TensorAt:
    """Where tensor `name` of a (checked) safetensors file lies."""
    header, _, data_start = read_header(path)
    if name not in header:
        raise CorruptFile(f"{path}: no tensor {name!r}")
    t = header[name]
    return TensorAt(path, data_start + t["data_offsets"][0], np.dtype(DTYPES[t["dtype"]]), tuple(t["shape"]))


Write = Callable[[str, int, np.ndarray], None]


@contextmanager
def stream_write(path: Path, specs: dict[str, tuple[np.dtype, tuple[int, ...]]], metadata: dict[str, str]
                 ) -> Iterator[Write]:  # fmt: skip
    """Write a safetensors file whose tensors' dtypes and shapes are known up front, in pieces, without ever
    holding a whole tensor in memory. Yields `write(name, first_row, rows)`, which puts `rows` at row
    `first_row` of tensor `name`. The file appears at `path` (atomically renamed from a temporary name) only
    if the block ends without an error; otherwise nothing is left behind. Every byte must be written."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offsets, end = {}, 0
    for name, (dtype, shape) in specs.items():
        nbytes = np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": NAMES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [end, end + nbytes]}
        offsets[name] = end
        end += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned
    data_start = 8 + len(raw)
    tmp = path.with_name(f".{path.name}.tmp")
    written = dict.fromkeys(specs, 0)
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.truncate(data_start + end)

            def write(name: str, first_row: int, rows: np.ndarray) -> None:
                dtype, shape = specs[name]
                rows = np.ascontiguousarray(rows, dtype=dtype)
                if rows.shape[1:] != tuple(shape[1:]) or not 0 <= first_row <= shape[0] - len(rows):
                    raise ValueError(f"{path}: rows {first_row}+{rows.shape} do not fit tensor {name} {shape}")
                row = rows.itemsize * int(np.prod(shape[1:], dtype=np.int64))
                f.seek(data_start + offsets[name] + first_row * row)
                f.write(rows.tobytes())
                written[name] += len(rows)

            yield write
            short = {n: f"{written[n]}/{specs[n][1][0]}" for n in specs if written[n] != specs[n][1][0]}
            if short:
                raise ValueError(f"{path}: tensors not completely written (rows written/expected): {short}")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # e.g. a full disk: say which file could not be written
        tmp.unlink(missing_ok=True)
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
