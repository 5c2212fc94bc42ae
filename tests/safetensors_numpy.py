#!/usr/bin/env python3
"""An independent safetensors reader: numpy and the standard library only, sharing no code with
src/io/safetensors.c, so that tests can check the files the C writer makes.

    python3 tests/safetensors_numpy.py FILE

prints one line per tensor, in file order (ascending data offset):

    name dtype [d0,d1,...] sum

where sum is the exact (correctly rounded, math.fsum) float64 sum of the elements, printed with
repr so that it reads back bit for bit; a zero-size tensor sums to 0.0. Exits 0, or exits 1 with
a message on stderr when the file breaks the format: the same rules as the C reader, except that
it does not impose libautosp's limit on the number of dims.
"""
import json
import math
import struct
import sys

import numpy as np

MAX_HEADER = 100_000_000  # the reference implementation's limit
DTYPES = {  # name -> (numpy dtype of the stored bits, bytes per element)
    "F32": ("<f4", 4),
    "BF16": ("<u2", 2),  # numpy has no bfloat16: widened by hand below
    "F16": ("<f2", 2),
    "I32": ("<i4", 4),
    "I64": ("<i8", 8),
}
TENSOR_KEYS = {"dtype", "shape", "data_offsets"}


class Malformed(Exception):
    pass


def unicode_ok(s):
    """json accepts escapes of lone surrogates (\\ud800), which are not Unicode text."""
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if not unicode_ok(key):
            raise Malformed(f"key {key!r} in the header is not valid Unicode")
        if key in obj:
            raise Malformed(f"duplicate key {key!r} in the header")
        obj[key] = value
    return obj


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def read_header(blob):
    if len(blob) < 8:
        raise Malformed(f"the file is {len(blob)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        raise Malformed(f"the header length is {n} bytes, limit {MAX_HEADER}")
    if n > len(blob) - 8:
        raise Malformed(f"the header length is {n} bytes, but only {len(blob) - 8} follow it")
    try:
        text = blob[8 : 8 + n].decode("utf-8")
        header = json.loads(text, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Malformed(f"malformed JSON header: {e}") from None
    if not isinstance(header, dict):
        raise Malformed("the header is not a JSON object")
    return header, blob[8 + n :]


def check_metadata(meta):
    if not isinstance(meta, dict):
        raise Malformed("__metadata__ is not an object")
    for key, value in meta.items():
        if not isinstance(value, str) or not unicode_ok(value):
            raise Malformed(f"__metadata__ {key!r} is not a string of valid Unicode")


def check_tensor(name, info, data_size):
    """Returns (begin, end, dtype, shape) after checking everything about one entry."""
    if not isinstance(info, dict):
        raise Malformed(f"tensor {name!r} is not an object")
    if set(info) != TENSOR_KEYS:
        raise Malformed(f"tensor {name!r} has keys {sorted(info)}, expected {sorted(TENSOR_KEYS)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise Malformed(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise Malformed(f"tensor {name!r}: shape {shape!r} is not a list of integers >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(is_int, offsets))
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise Malformed(f"tensor {name!r}: data_offsets {offsets!r} are not "
                        f"[begin, end] with 0 <= begin <= end <= {data_size}")
    nbytes = math.prod(shape) * DTYPES[dtype][1]  # Python ints: no overflow
    if nbytes != offsets[1] - offsets[0]:
        raise Malformed(f"tensor {name!r}: shape {shape} of {dtype} is {nbytes} bytes, "
                        f"but data_offsets {offsets} hold {offsets[1] - offsets[0]}")
    return offsets[0], offsets[1], dtype, shape


def check_tiling(entries, data_size):
    """entries sorted by (begin, end): they must cover the data section with no gap or overlap."""
    pos, prev = 0, "the start of the data section"
    for begin, end, _, _, name in entries:
        if begin != pos:
            raise Malformed(f"tensor {name!r} starts at {begin}, expected {pos} (after {prev})")
        pos, prev = end, f"tensor {name!r}"
    if pos != data_size:
        raise Malformed(f"the tensors end at {pos}, but the data section is {data_size} bytes")


def as_float64(raw, dtype):
    stored, _ = DTYPES[dtype]
    values = np.frombuffer(raw, dtype=stored)
    if dtype == "BF16":  # the top half of an IEEE float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float64)


def exact_sum(values):
    if values.size == 0:
        return 0.0
    if not np.all(np.isfinite(values)):
        return float(np.sum(values))  # inf or nan, which fsum may refuse
    return math.fsum(values.tolist())


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    header, data = read_header(blob)
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None:  # null means none, as the reference reader allows
                check_metadata(info)
            continue
        entries.append(check_tensor(name, info, len(data)) + (name,))
    entries.sort(key=lambda e: (e[0], e[1]))  # stable: ties keep header order
    check_tiling(entries, len(data))
    return [(name, dtype, shape, exact_sum(as_float64(data[begin:end], dtype)))
            for begin, end, dtype, shape, name in entries]


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} FILE", file=sys.stderr)
        return 2
    try:
        tensors = read(argv[1])
    except OSError as e:
        print(f"{argv[1]}: {e.strerror}", file=sys.stderr)
        return 1
    except Malformed as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    for name, dtype, shape, total in tensors:
        print(f"{name} {dtype} [{','.join(map(str, shape))}] {total!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
