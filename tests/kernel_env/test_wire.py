"""The pickle-free channel between sandbox and trusted side."""

import os

import pytest
import torch

from kernel_env import wire


def roundtrip(header, blobs=()):
    r, w = os.pipe()
    try:
        wire.send(w, header, list(blobs))
        os.close(w)
        return wire.recv(r)
    finally:
        os.close(r)


def test_tensors_of_every_dtype_roundtrip():
    values = [torch.randn(3, 4), torch.randn(2).to(torch.bfloat16), torch.arange(5), torch.tensor([True, False]),
              torch.empty(0, 3), 1.5, None, [torch.ones(2), 3]]
    blobs = []
    packed = [wire.pack_value(v, blobs) for v in values]
    header, got_blobs = roundtrip({"outputs": packed}, blobs)
    back = [wire.unpack_value(d, got_blobs) for d in header["outputs"]]
    for a, b in zip(values[:5], back[:5]):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    assert back[5:7] == [1.5, None] and torch.equal(back[7][0], torch.ones(2))


def test_unsupported_values_become_markers_not_objects():
    blobs = []
    desc = wire.pack_value(object(), blobs)
    assert isinstance(wire.unpack_value(desc, blobs), wire.Unsupported)


def test_lying_shapes_and_oversized_messages_are_rejected():
    with pytest.raises(wire.WireError, match="do not match"):
        wire.unpack_value({"kind": "tensor", "dtype": "float32", "shape": [100], "blob": 0}, [b"1234"])
    r, w = os.pipe()
    wire.send(w, {"x": 1}, [b"a" * 100])
    os.close(w)
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.recv(r, limit=10)
    os.close(r)
