"""PostgreSQL's binary COPY format, built with numpy (no per-row Python)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01: the origin of binary timestamps
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_BINARY = {"int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


def _big_endian(values: np.ndarray, dtype: str) -> np.ndarray:
    arr = np.ascontiguousarray(values.astype(dtype))
    return arr.view(np.uint8).reshape(len(arr), -1)


def _scatter(out: np.ndarray, pos: np.ndarray, mat: np.ndarray, lengths: Any = None) -> None:
    """Write row i of `mat` (its first lengths[i] bytes) at out[pos[i]:], for all rows at once."""
    idx = pos[:, None] + np.arange(mat.shape[1])
    if lengths is None:
        out[idx] = mat
    else:
        keep = np.arange(mat.shape[1]) < lengths[:, None]
        out[idx[keep]] = mat[keep]


def copy_payload(columns: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The rows in PostgreSQL's binary COPY format, with no per-row Python.

    Per-row `write_row` tops out near 200k rows/s on this box, below what the server takes in;
    built this way a 500k-row chunk takes ~0.6 s, overlapped with the previous chunk's COPY.
    """
    n = len(columns[0][1])
    fields: list[tuple[np.ndarray, np.ndarray | None]] = []
    for kind, values in columns:
        if kind == "text":
            arr = np.ascontiguousarray(values, dtype=np.bytes_)
            mat = arr.view(np.uint8).reshape(n, arr.dtype.itemsize)
            fields.append((mat, np.char.str_len(arr).astype(np.int64)))
        else:
            raw = values - _PG_EPOCH_US if kind == "timestamptz" else values
            fields.append((_big_endian(raw, _BINARY[kind]), None))
    row_len = np.full(n, 2, np.int64)
    for mat, lengths in fields:
        row_len += 4 + (mat.shape[1] if lengths is None else lengths)
    pos = np.zeros(n, np.int64)
    np.cumsum(row_len[:-1], out=pos[1:])
    out = np.empty(int(row_len.sum()), np.uint8)
    _scatter(out, pos, _big_endian(np.full(n, len(fields)), ">i2"))
    pos = pos + 2
    for mat, lengths in fields:
        size = np.full(n, mat.shape[1], np.int64) if lengths is None else lengths
        _scatter(out, pos, _big_endian(size, ">i4"))
        pos += 4
        _scatter(out, pos, mat, lengths)
        pos += size
    return _COPY_HEADER + out.tobytes() + _COPY_TRAILER
