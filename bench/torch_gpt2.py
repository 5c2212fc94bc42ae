#!/usr/bin/env python3
"""torch_gpt2.py: the PyTorch side of bench_train's GPT-2 124M rows (optional).

    python3 bench/torch_gpt2.py [--shapes 4x64,1x1024] [--threads T] [--steps N]

GPT-2 124M written with plain torch.nn (12 layers, C=768, 12 heads, MLP 3072 with tanh-gelu,
layernorm eps 1e-5, 1024 learned positions, lm head tied to the token embedding, V=50257),
trained with AdamW at libautosp's defaults (lr 3e-4, betas (0.9, 0.95), eps 1e-8, weight
decay 0.1 on matrices only, grad clip 1.0), f32, no dropout. Each shape: one warm-up step, then
N timed steps (default: enough for >= 2 s, at least 2). Prints one row per shape with the same
columns and units as bench_train (step_ms, tokens/s). Exits 0 with a note when torch is absent.
"""
import argparse
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("PyTorch not installed (apt-get install python3-torch to compare)")
    sys.exit(0)

V, CTX, C, L, H, FFN, EPS = 50257, 1024, 768, 12, 12, 3072, 1e-5


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(C, eps=EPS)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=EPS)
        self.fc = nn.Linear(C, FFN)
        self.fc_proj = nn.Linear(FFN, C)

    def attention(self, x):
        # x (B,S,C) -> (B,S,C); causal multi-head attention
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(b, s, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B,H,S,D)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch 1.x: the plain S x S form
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
            mask = torch.ones(s, s, dtype=torch.bool).triu(1)
            att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.proj(y.transpose(1, 2).reshape(b, s, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(CTX, C)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=EPS)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, positions, labels):
        # tokens, positions, labels (B,S) -> mean cross-entropy
        x = self.wte(tokens) + self.wpe(positions)
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied lm head: (B,S,V)
        return F.cross_entropy(logits.view(-1, V), labels.view(-1))


def lcg_ids(n, vocab, state):
    out = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((state >> 33) % vocab)
    return out, state


def run_shape(b, s, steps):
    torch.manual_seed(1234)
    model = GPT2()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    ids, _ = lcg_ids(2 * b * s, V, 0x5EED)  # tokens and labels interleaved, as bench_train
    tokens = torch.tensor(ids[0::2], dtype=torch.long).view(b, s)
    labels = torch.tensor(ids[1::2], dtype=torch.long).view(b, s)
    positions = torch.arange(s).unsqueeze(0).expand(b, s)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, positions, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()  # warm-up
    n, t0, elapsed = 0, time.monotonic(), 0.0
    while (n < steps) if steps > 0 else (n < 2 or elapsed < 2.0):
        step()
        n += 1
        elapsed = time.monotonic() - t0
    params = sum(p.numel() for p in model.parameters())
    return params, n, elapsed / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="4x64,1x1024", help="BxS list, comma-separated")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: >= 2 s, >= 2)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in sh.split("x")) for sh in args.shapes.split(",")]

    print(f"PyTorch {torch.__version__} GPT-2 124M training step (f32, AdamW, plain torch.nn)")
    print(f"threads {torch.get_num_threads()} ({'--threads' if args.threads > 0 else 'torch default'})"
          f"; attention: {'scaled_dot_product_attention' if hasattr(F, 'scaled_dot_product_attention') else 'plain S x S softmax'}\n")
    print(f"{'model':<12} {'B':>2} {'S':>6} {'params':>10} {'steps':>5} {'step_ms':>10} "
          f"{'tokens/s':>10} {'maxrss_MiB':>10}")
    for b, s in shapes:
        params, n, step_s = run_shape(b, s, args.steps)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"{'torch-gpt2':<12} {b:>2} {s:>6} {params:>10} {n:>5} {1e3 * step_s:>10.1f} "
              f"{b * s / step_s:>10.0f} {rss:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
