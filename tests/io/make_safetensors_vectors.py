#!/usr/bin/env python3
"""Test vectors for tilegrad's safetensors reader and writer, made with the reference implementation.

    python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install safetensors numpy
    /tmp/st-venv/bin/python tests/io/make_safetensors_vectors.py            # writes reference.safetensors
    /tmp/st-venv/bin/python tests/io/make_safetensors_vectors.py --check F  # reads a tilegrad-written F

reference.safetensors (committed beside this script, made with safetensors 0.8.0 and numpy 2.4.6)
holds one tensor per tilegrad dtype plus a 0-d tensor, empty tensors and a GPT-2 style name. Every
value is a simple formula of the element index i (row-major), written out again independently in
tests/io/safetensors_test.cpp, so that test checks tilegrad's reader against bytes this package
wrote, and tilegrad's writer against them byte for byte.

--check reads a file that tests/io/safetensors_test.cpp (SafetensorsReference.WritesFileForPython)
wrote with tilegrad and checks names, dtypes, shapes and values with this package: the two
implementations agree in both directions.
"""
import os
import sys

import numpy as np
from safetensors import TensorSpec, deserialize, serialize


def bf16_bits(values):
    """bfloat16 bit patterns of float32 values that bfloat16 represents exactly."""
    f = np.asarray(values, dtype=np.float32)
    bits = f.view(np.uint32)
    assert np.all(bits & 0xFFFF == 0), "value not exact in bfloat16"
    return (bits >> 16).astype(np.uint16)


def idx(n):
    return np.arange(n, dtype=np.float64)


# name -> (safetensors dtype, shape, little-endian bytes); the formulas are the contract with the
# C++ test.
def vectors():
    v = {}
    v["f64.odd"] = ("F64", [3, 5], (idx(15) * 0.5 - 3.25).astype("<f8"))
    v["transformer.h.0.attn.c_attn.weight"] = ("F32", [2, 3, 4], ((idx(24) - 7) / 8).astype("<f4"))
    v["f32.scalar"] = ("F32", [], np.array([3.5], dtype="<f4"))
    v["f32.empty"] = ("F32", [0, 3], np.zeros(0, dtype="<f4"))
    v["bf16.vec"] = ("BF16", [7], bf16_bits((idx(7) - 3) * 0.25).astype("<u2"))
    v["f16.mat"] = ("F16", [2, 5], ((idx(10) - 4) * 0.125).astype("<f2"))
    v["i64.vec"] = ("I64", [4], np.array([-(2**40), -1, 0, 2**62 + 5], dtype="<i8"))
    v["i32.col"] = ("I32", [3, 1], np.array([-7, 0, 2**31 - 1], dtype="<i4"))
    v["u8.vec"] = ("U8", [5], np.array([0, 1, 127, 128, 255], dtype="u1"))
    v["u8.empty"] = ("U8", [0], np.zeros(0, dtype="u1"))
    return v


SPEC_DTYPE = {"F64": "float64", "F32": "float32", "BF16": "bfloat16", "F16": "float16",
              "I64": "int64", "I32": "int32", "U8": "uint8"}


def write_reference(path):
    v = vectors()
    specs = {}
    for name, (dt, shape, arr) in v.items():
        arr = np.ascontiguousarray(arr)
        specs[name] = TensorSpec(dtype=SPEC_DTYPE[dt], shape=shape, data_ptr=arr.ctypes.data,
                                 data_len=arr.nbytes)
    # One metadata key: the reference writer keeps metadata in a hash map, so several keys would
    # come out in an unspecified order.
    data = bytes(serialize(specs, metadata={"format": "pt"}))
    with open(path, "wb") as f:
        f.write(data)
    # Read it back with the package itself before committing it.
    check(path, expect_metadata={"format": "pt"})
    print(f"wrote {path}: {len(data)} bytes")


def check(path, expect_metadata=None):
    with open(path, "rb") as f:
        data = f.read()
    header_len = int.from_bytes(data[:8], "little")
    assert (8 + header_len) % 8 == 0, "data section not 8-byte aligned"
    got = dict(deserialize(data))
    want = vectors()
    assert set(got) == set(want), f"names differ: {sorted(got)} vs {sorted(want)}"
    for name, (dt, shape, arr) in want.items():
        g = got[name]
        assert g["dtype"] == dt, f"{name}: dtype {g['dtype']} != {dt}"
        assert list(g["shape"]) == shape, f"{name}: shape {g['shape']} != {shape}"
        assert bytes(g["data"]) == arr.tobytes(), f"{name}: bytes differ"
    if expect_metadata is not None:
        import json
        meta = json.loads(data[8:8 + header_len]).get("__metadata__")
        assert meta == expect_metadata, f"metadata {meta} != {expect_metadata}"
    print(f"{path}: {len(want)} tensors match")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2], expect_metadata={"format": "pt", "writer": "tilegrad"})
    else:
        write_reference(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "reference.safetensors"))
