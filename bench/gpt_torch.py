#!/usr/bin/env python3
"""The peer of bench_gpt: the same GPT and the same training step in PyTorch on the CPU.

Model: GPT-2's architecture as tilegrad builds it (models/gpt.cpp) -- token and position
embeddings, pre-LayerNorm blocks with biases, causal self-attention, a 4x MLP with tanh GELU,
dropout after the embeddings, on the attention probabilities, after each projection, and a head
tied to the token embedding. Attention is the explicit softmax(QK^T)V of nanoGPT's non-flash path
(PyTorch 1.13, Debian's, has no fused CPU attention). Step: forward, cross-entropy, backward,
global-norm clipping at 1.0, AdamW (decay on matrices only), zero_grad(set_to_none=True).

Prints one JSON line: {"tokens_per_s": ..., "ms_per_step": ..., ...} from the median of --steps
timed steps after --warmup untimed ones.
"""
import argparse
import json
import statistics
import time

import torch

from gpt_torch_model import GPT  # bench/gpt_torch_model.py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = GPT(a.layers, a.heads, a.width, a.vocab, a.block, a.dropout, explicit_attention=True)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    x = torch.randint(0, a.vocab, (a.batch, a.block))
    y = torch.randint(0, a.vocab, (a.batch, a.block))

    def step():
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "batch": a.batch, "block": a.block, "ms_per_step": round(ms, 2),
        "tokens_per_s": round(a.batch * a.block / (ms / 1e3), 1), "loss": round(loss, 4),
        "steps": a.steps,
    }))


if __name__ == "__main__":
    main()
