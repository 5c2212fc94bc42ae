"""Compares two autosp-train --dump files (safetensors): the same tensors, in the same order,
with the same shapes and offsets (identical layout), integer tensors equal, float tensors equal
within a relative tolerance of each tensor's largest value.

A gradient whose exact value is zero (GPT-2's key bias: softmax ignores a shift of all of a
query's scores) is rounding noise in both files; such tensors (largest value below 1e-5 of the
largest gradient) are compared against that floor instead.

usage: compare_dumps.py A.safetensors B.safetensors [tolerance]
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return data[8 + n:], header


def tensor(body, entry):
    dtype = {"F32": np.float32, "I32": np.int32}[entry["dtype"]]
    lo, hi = entry["data_offsets"]
    return np.frombuffer(body[lo:hi], dtype)


def main():
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    (body_a, a), (body_b, b) = load(sys.argv[1]), load(sys.argv[2])
    if list(a.items()) != list(b.items()):
        sys.exit("layouts differ: %s vs %s" % (list(a)[:5], list(b)[:5]))
    top = max(np.abs(tensor(body_a, e)).max() for k, e in a.items() if k.endswith(".grad"))
    worst, worst_name = 0.0, ""
    for name, entry in a.items():
        x, y = tensor(body_a, entry), tensor(body_b, entry)
        if entry["dtype"] == "I32":
            if not (x == y).all():
                sys.exit("%s differs" % name)
            continue
        scale = max(np.abs(x).max(), 1e-5 * top if name.endswith(".grad") else 0, 1e-30)
        error = np.abs(x - y).max() / scale
        if error > worst:
            worst, worst_name = error, name
    print("%d tensors, identical layout, worst relative difference %.2e (%s)"
          % (len(a), worst, worst_name))
    if worst > tolerance:
        sys.exit("difference above %g" % tolerance)


main()
