"""Same-run A/B timing of several builds of the FlashAttention backward, with PyTorch's peers.

Each --lib NAME=PATH is a libtilegrad_flash_capi.so (bench/device/flash_bwd_ab.sh builds the
baseline sources and the working tree's variants); the first is the baseline. For every (D, N,
causal) of flash_bench.py's backward table (bf16, 16k tokens per batch, H = 2048 / D) the builds'
default backwards (the Hopper kernel on sm_90) and SDPA's FLASH_ATTENTION (FlashAttention-2) and
CUDNN_ATTENTION backends are timed in turn, --rounds times, on the same inputs; the figure is the
median over the rounds of each round's median. Before timing, each build's dq, dk, dv are compared
with the baseline's on the same inputs (max |difference| / max |baseline|), so that a variant that
computes something else cannot pass unnoticed at sizes the unit test does not reach.
"""

import argparse
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from flash_bench import FlashLib, time_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", action="append", required=True, help="NAME=PATH; the first is the base")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--ns", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    libs = [(s.split("=", 1)[0], FlashLib(s.split("=", 1)[1])) for s in args.lib]
    names = [n for n, _ in libs] + ([] if args.no_peers else ["fa2", "cudnn"])
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cudnn": torch.backends.cudnn.version(), "builds": args.lib}), flush=True)
    rows = []
    for D in (int(x) for x in args.dims.split(",")):
        for causal in (False, True):
            for N in (int(x) for x in args.ns.split(",")):
                B, H = 16384 // N, 2048 // D
                scale = 1.0 / math.sqrt(D)
                torch.manual_seed(N + D + causal)
                q, k, v, dout = (torch.randn(B, N, H, D, device="cuda", dtype=torch.bfloat16)
                                 for _ in range(4))
                o, lse = torch.empty_like(q), torch.empty(B, H, N, device="cuda")
                libs[0][1].forward(q, k, v, o, lse, causal, scale)
                grads, runs = {}, {}
                for name, lib in libs:
                    ws = lib.workspace(q, k, causal)
                    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
                    lib.backward(q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale)
                    torch.cuda.synchronize()
                    grads[name] = (dq.clone(), dk.clone(), dv.clone())
                    runs[name] = (lambda lib=lib, ws=ws, dq=dq, dk=dk, dv=dv: lib.backward(
                        q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale))
                base = grads[libs[0][0]]
                diffs = {}
                for name, g in grads.items():
                    diffs[name] = max(((a.float() - b.float()).abs().max() /
                                       b.float().abs().max()).item() for a, b in zip(g, base))
                    if not all(torch.isfinite(x).all().item() for x in g):
                        diffs[name] = float("inf")
                if not args.no_peers:
                    qg, kg, vg = (t.detach().clone().requires_grad_() for t in (q, k, v))
                    qt, kt, vt, dt = (t.transpose(1, 2) for t in (qg, kg, vg, dout))
                    for name, backend in (("fa2", SDPBackend.FLASH_ATTENTION),
                                          ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                        with sdpa_kernel([backend]):
                            out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                                 scale=scale)
                        runs[name] = (lambda out=out: torch.autograd.grad(
                            out, (qg, kg, vg), dt, retain_graph=True))
                times = {n: [] for n in runs}
                for _ in range(args.rounds):
                    for n, fn in runs.items():
                        times[n].append(time_ms(fn, warmup=3, reps=15))
                flops = 2.5 * 4.0 * B * H * N * N * D / (2.0 if causal else 1.0)
                r = {"D": D, "N": N, "causal": int(causal)}
                for n in runs:
                    r[f"{n}_ms"] = statistics.median(times[n])
                    r[f"{n}_spread"] = (max(times[n]) - min(times[n])) / r[f"{n}_ms"]
                    r[f"{n}_tflops"] = flops / (r[f"{n}_ms"] * 1e-3) / 1e12
                r.update({f"{n}_diff": d for n, d in diffs.items()})
                rows.append(r)
                print(json.dumps({k: (round(x, 5) if isinstance(x, float) else x)
                                  for k, x in r.items()}), flush=True)
                del runs, grads
                torch.cuda.empty_cache()
    base = libs[0][0]
    print(f"\nbackward TFLOP/s (bf16, 16k tokens); x = ÷ {base}; diff = max |Δgrad| / max |grad| "
          f"against {base}")
    head = f"{'D':>4} {'N':>6} {'c':>2} | " + " ".join(f"{n:>7}" for n in names)
    head += " | " + " ".join(f"{'x ' + n:>8}" for n, _ in libs[1:])
    if not args.no_peers:
        head += " | " + " ".join(f"{n[:6] + '/FA2':>10} {n[:6] + '/cuDNN':>12}" for n, _ in libs)
    print(head + " | max diff")
    for r in rows:
        line = f"{r['D']:>4} {r['N']:>6} {r['causal']:>2} | "
        line += " ".join(f"{r[n + '_tflops']:7.1f}" for n in names)
        line += " | " + " ".join(f"{r[n + '_tflops'] / r[base + '_tflops']:8.3f}"
                                 for n, _ in libs[1:])
        if not args.no_peers:
            line += " | " + " ".join(
                f"{r[n + '_tflops'] / r['fa2_tflops']:10.2f} "
                f"{r[n + '_tflops'] / r['cudnn_tflops']:12.2f}" for n, _ in libs)
        line += " | " + " ".join(f"{r[n + '_diff']:.1e}" for n, _ in libs[1:])
        print(line)
    bad = [r for r in rows for n, _ in libs[1:] if not r[n + "_diff"] < 2e-2]
    if bad:
        print(f"{len(bad)} configurations where a build's gradients differ from the base's")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
