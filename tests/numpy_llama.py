#!/usr/bin/env python3
"""An independent NumPy reimplementation of the Llama forward loss, to check the C kernels
against code we did not write in C.

usage: numpy_llama.py GRAPH.json DUMP.safetensors

GRAPH.json is the forward graph autosp-train ran (for the hyper-parameters: layer count and
sizes from the parameter shapes, rope theta, norm eps and head counts from the node
attributes); DUMP.safetensors is what `autosp-train --dump` wrote: tokens, labels, positions,
every parameter and the loss. Recomputes the loss in float64 and exits 1 if it differs from
the dumped one by more than 1e-4 relative (the C side runs in float32).
"""
import json
import struct
import sys

import numpy as np

NUMPY_DTYPES = {"F32": "<f4", "I32": "<i4", "I64": "<i8", "F16": "<f2"}


def read_safetensors(path):
    """name -> array; the format's full checks live in safetensors_numpy.py."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header, data = json.loads(blob[8:8 + n]), blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"])
    return out


def node_attr(graph, op, attr):
    for node in graph["nodes"]:
        if node["op"] == op:
            return node["attrs"][attr]
    raise SystemExit(f"the graph has no {op} node")


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta):  # x (B,S,H,D), rotate-half pairing (i, i + D/2)
    half = x.shape[-1] // 2
    freq = theta ** (-2.0 * np.arange(half) / x.shape[-1])
    angle = positions[:, :, None, None] * freq  # (B,S,1,D/2)
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def attention(q, k, v):  # causal, GQA: query head h reads kv head h // (Hq // Hkv)
    group = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    scores = np.einsum("bshd,bthd->bhst", q, k) / np.sqrt(q.shape[-1])
    S = q.shape[1]
    scores = np.where(np.tril(np.ones((S, S), dtype=bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhst,bthd->bshd", p, v)


def silu(x):
    return x / (1 + np.exp(-x))


def llama_loss(graph, t):
    eps = node_attr(graph, "rmsnorm", "eps")
    theta = node_attr(graph, "rope", "theta")
    hq = node_attr(graph, "attention", "num_heads")
    hkv = node_attr(graph, "attention", "num_kv_heads") or hq
    layers = sum(1 for name in t if name.endswith(".attn_norm"))
    tokens, labels, pos = t["tokens"], t["labels"], t["positions"].astype(np.float64)
    x = t["tok_emb"][tokens]
    B, S, C = x.shape
    D = C // hq
    for i in range(layers):
        p = lambda n: t[f"blk{i}.{n}"]  # noqa: E731
        h = rmsnorm(x, p("attn_norm"), eps)
        q = rope((h @ p("wq").T).reshape(B, S, hq, D), pos, theta)
        k = rope((h @ p("wk").T).reshape(B, S, hkv, D), pos, theta)
        v = (h @ p("wv").T).reshape(B, S, hkv, D)
        x = x + attention(q, k, v).reshape(B, S, C) @ p("wo").T
        h = rmsnorm(x, p("ffn_norm"), eps)
        x = x + (silu(h @ p("w1").T) * (h @ p("w3").T)) @ p("w2").T
    head = t["lm_head"] if "lm_head" in t else t["tok_emb"]
    logits = rmsnorm(x, t["out_norm"], eps) @ head.T
    logits -= logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    valid = labels != -100
    picked = np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return -picked[valid].mean()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    graph = json.load(open(sys.argv[1]))
    tensors = {name: array.astype(np.float64) if array.dtype.kind == "f" else array
               for name, array in read_safetensors(sys.argv[2]).items()}
    expected = llama_loss(graph, tensors)
    found = float(tensors["loss"])
    rel = abs(found - expected) / abs(expected)
    print(f"numpy loss {expected:.7f}, autosp loss {found:.7f}, relative difference {rel:.2e}")
    sys.exit(0 if rel < 1e-4 else 1)


if __name__ == "__main__":
    main()
