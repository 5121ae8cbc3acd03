"""How values cross the sandbox boundary, without pickle: frames, tensors, digests, fingerprints.

Unpickling bytes written by candidate code would hand it the trusted process, so every message is a
JSON header plus raw byte blobs; tensors travel as (dtype, shape, bytes) and are rebuilt with
``torch.frombuffer``. A length cap keeps a hostile worker from exhausting the reader's memory.
Digests and fingerprints are computed the same way on both sides, so they live here too.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import torch

_HEAD = struct.Struct("<II")  # header length, number of blobs
_LEN = struct.Struct("<Q")
MAX_MESSAGE_BYTES = 1 << 33  # 8 GiB: larger than any sane output, small enough to refuse a bomb
MAX_HEADER_BYTES = 1 << 26
MAX_BLOBS = 1 << 16


class WireError(RuntimeError):
    """A message was truncated, oversized or malformed."""


class ResultLimitExceeded(WireError):
    """More bytes arrived than the reader's limit allows."""


def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 24))
        if not chunk:
            raise EOFError("peer closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd: int, header: dict, blobs: list[bytes] = ()) -> None:
    head = json.dumps(header).encode()
    parts = [_HEAD.pack(len(head), len(blobs)), head]
    for blob in blobs:
        parts += [_LEN.pack(len(blob)), blob]
    _write_all(fd, b"".join(parts))


def _check_sizes(head_len: int, n_blobs: int) -> None:
    if head_len > MAX_HEADER_BYTES or n_blobs > MAX_BLOBS:
        raise WireError("message header too large")


def _header(raw: bytes) -> dict:
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"malformed header: {exc}") from exc
    if not isinstance(header, dict):
        raise WireError("header is not an object")
    return header


def recv(fd: int, limit: int = MAX_MESSAGE_BYTES) -> tuple[dict, list[bytes]]:
    head_len, n_blobs = _HEAD.unpack(_read_exact(fd, _HEAD.size))
    _check_sizes(head_len, n_blobs)
    header = _header(_read_exact(fd, head_len))
    blobs, total = [], 0
    for _ in range(n_blobs):
        (size,) = _LEN.unpack(_read_exact(fd, _LEN.size))
        total += size
        if total > limit:
            raise WireError(f"message exceeds {limit} bytes")
        blobs.append(_read_exact(fd, size))
    return header, blobs


class FrameBuffer:
    """Incremental parsing of frames from a non-blocking pipe, with a cap on the total bytes: the
    sandboxed worker reads its child (candidate code) through this."""

    def __init__(self, limit: int):
        self.buf = bytearray()
        self.limit = limit
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            raise ResultLimitExceeded(f"more than {self.limit} bytes of results")
        self.buf += chunk

    def frames(self):
        """Yield complete (header, blobs) frames; raises WireError on a malformed one."""
        while len(self.buf) >= _HEAD.size:
            head_len, n_blobs = _HEAD.unpack_from(self.buf)
            _check_sizes(head_len, n_blobs)
            pos, blobs = _HEAD.size + head_len, []
            if len(self.buf) < pos:
                return
            for _ in range(n_blobs):
                if len(self.buf) < pos + _LEN.size:
                    return
                (size,) = _LEN.unpack_from(self.buf, pos)
                if len(self.buf) < pos + _LEN.size + size:
                    return
                blobs.append(bytes(self.buf[pos + _LEN.size:pos + _LEN.size + size]))
                pos += _LEN.size + size
            header = _header(bytes(self.buf[_HEAD.size:_HEAD.size + head_len]))
            del self.buf[:pos]
            yield header, blobs


# -- tensors -------------------------------------------------------------------------------------

_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8,
    torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128,
)}


# Tensor methods bound at import, before any candidate exists: serialising, hashing and
# fingerprinting a candidate's tensor never looks a method up on it (or on its class) at call time.
_T = torch.Tensor
_detach, _to, _contiguous, _reshape, _view = _T.detach, _T.to, _T.contiguous, _T.reshape, _T.view
_numpy, _numel, _sum, _abs, _tolist, _index = _T.numpy, _T.numel, _T.sum, _T.abs, _T.tolist, _T.__getitem__
_item = _T.item


def _cpu_copy(value: torch.Tensor) -> torch.Tensor:
    return _contiguous(_to(_detach(value), "cpu"))


def _bytes(t: torch.Tensor) -> bytes:
    return _numpy(_view(_reshape(t, -1), torch.uint8)).tobytes() if _numel(t) else b""


def pack_value(value, blobs: list[bytes]):
    """JSON-able description of a value; tensors append their bytes to ``blobs``."""
    if isinstance(value, torch.Tensor):
        t = _cpu_copy(value)
        name = str(t.dtype).removeprefix("torch.")
        if name not in _DTYPES:
            return {"kind": "unsupported", "type": f"tensor of {name}"}
        blobs.append(_bytes(t))
        return {"kind": "tensor", "dtype": name, "shape": list(t.shape), "blob": len(blobs) - 1,
                "type": type(value).__name__}
    if isinstance(value, (bool, int, float)) or value is None:
        return {"kind": "scalar", "value": value}
    if isinstance(value, (list, tuple)):
        return {"kind": "seq", "items": [pack_value(v, blobs) for v in value]}
    return {"kind": "unsupported", "type": type(value).__name__}


def unpack_value(desc: dict, blobs: list[bytes]):
    """Rebuild a value; anything malformed raises WireError (the sender may be hostile)."""
    if not isinstance(desc, dict):
        raise WireError("value description is not an object")
    kind = desc.get("kind")
    if kind == "tensor":
        try:
            dtype = _DTYPES.get(desc["dtype"])
            shape = [int(s) for s in desc["shape"]]
            index = int(desc["blob"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"malformed tensor description: {exc}") from exc
        if dtype is None:
            raise WireError(f"unknown dtype {desc['dtype']!r}")
        if any(d < 0 for d in shape) or not 0 <= index < len(blobs):
            raise WireError("tensor description out of range")
        raw = blobs[index]
        count = 1
        for s in shape:
            count *= s
        if len(raw) != count * torch.empty((), dtype=dtype).element_size():
            raise WireError("tensor bytes do not match its shape")
        if not raw:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
    if kind == "scalar":
        return desc.get("value")
    if kind == "seq":
        items = desc.get("items")
        if not isinstance(items, list):
            raise WireError("malformed sequence")
        return [unpack_value(d, blobs) for d in items]
    return Unsupported(str(desc.get("type")))


class Unsupported(str):
    """Stands for a value that cannot cross the boundary (its type name)."""


# -- digests and fingerprints --------------------------------------------------------------------

def digest(value) -> str:
    """Content hash of a tensor (bytes, dtype and shape) or a repr for anything else."""
    if isinstance(value, torch.Tensor):
        t = _cpu_copy(value)
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(_bytes(t))
        return h.hexdigest()[:24]
    return repr(value)[:200]


def fingerprint(value: torch.Tensor, key: int, samples: int = 32) -> list[float]:
    """Sum, absolute sum and ``samples`` elements at positions drawn from ``key`` (secret per seed
    set), so timed outputs can be checked against the reference's without shipping either."""
    flat = _to(_reshape(_detach(value), -1), "cpu", torch.float64)
    n = _numel(flat)
    if n == 0:
        return [0.0, 0.0]
    idx = torch.randint(0, n, (min(samples, n),), generator=torch.Generator().manual_seed(key))
    return [_item(_sum(flat)), _item(_sum(_abs(flat))), *_tolist(_index(flat, idx))]


def fingerprints_close(got: list[float], want: list[float], atol: float, rtol: float, n: int) -> bool:
    """Sums are compared with tolerances scaled by the element count; samples element-wise."""
    if len(got) != len(want):
        return False
    (gs, ga, *gv), (ws, wa, *wv) = got, want
    tol = n * atol + rtol * wa
    if not (abs(gs - ws) <= tol and abs(ga - wa) <= tol):  # written so that NaN fails
        return False
    return all(abs(g - w) <= atol + rtol * abs(w) for g, w in zip(gv, wv))
