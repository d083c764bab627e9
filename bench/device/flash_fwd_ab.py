"""Same-run A/B of the default forward of two or more builds, with PyTorch's forwards as peers.

Each --lib NAME=PATH is a libtilegrad_flash_capi.so; the first is the baseline. For every (D, N,
causal) (bf16, 16k tokens per batch, H = 2048 / D) every build's automatic forward (the Hopper
kernel on sm_90) and SDPA's FLASH_ATTENTION (FlashAttention-2) and CUDNN_ATTENTION forwards are
timed in turn, --rounds times, on the same inputs; the figure is the median over the rounds of each
round's median. Before timing, each build's o and lse are compared with the baseline's (o: max
|difference| / max |baseline|; lse: max |difference|), poisoned outputs first so that an unwritten
element shows.
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
    ap.add_argument("--lib", action="append", required=True,
                    help="NAME=PATH; the first is the base")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--ns", default="1024,4096,8192,16384")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    libs = [(s.split("=", 1)[0], FlashLib(s.split("=", 1)[1])) for s in args.lib]
    base = libs[0][0]
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cudnn": torch.backends.cudnn.version(), "builds": args.lib}), flush=True)
    peers = [] if args.no_peers else [("fa2", SDPBackend.FLASH_ATTENTION),
                                      ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    rows = []
    for D in (int(x) for x in args.dims.split(",")):
        for causal in (False, True):
            for N in (int(x) for x in args.ns.split(",")):
                B, H = 16384 // N, 2048 // D
                scale = 1.0 / math.sqrt(D)
                torch.manual_seed(7 * N + D + causal)
                q, k, v = (torch.randn(B, N, H, D, device="cuda", dtype=torch.bfloat16)
                           for _ in range(3))
                runs, outs = {}, {}
                for name, lib in libs:
                    o = torch.full_like(q, float("nan"))
                    lse = torch.full((B, H, N), float("nan"), device="cuda")
                    lib.forward(q, k, v, o, lse, causal, scale)
                    torch.cuda.synchronize()
                    outs[name] = (o.clone(), lse.clone())
                    runs[name] = lambda lib=lib, o=o, lse=lse: lib.forward(
                        q, k, v, o, lse, causal, scale)
                diffs = {}
                o0, lse0 = outs[base]
                for name, (o, lse) in outs.items():
                    ok = torch.isfinite(o).all().item() and torch.isfinite(lse).all().item()
                    d_o = ((o.float() - o0.float()).abs().max() / o0.float().abs().max()).item()
                    d_lse = (lse - lse0).abs().max().item()
                    diffs[name] = (d_o, d_lse) if ok else (float("inf"), float("inf"))
                qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
                for name, backend in peers:
                    def peer(backend=backend):
                        with sdpa_kernel([backend]):
                            return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                                  scale=scale)
                    runs[name] = peer
                times = {n: [] for n in runs}
                for _ in range(args.rounds):
                    for n, fn in runs.items():
                        times[n].append(time_ms(fn, warmup=3, reps=15))
                flops = 4.0 * B * H * N * N * D / (2.0 if causal else 1.0)
                r = {"D": D, "N": N, "causal": int(causal)}
                for n in runs:
                    ms = statistics.median(times[n])
                    r[f"{n}_tflops"] = flops / (ms * 1e-3) / 1e12
                    r[f"{n}_spread"] = (max(times[n]) - min(times[n])) / ms
                for n, (d_o, d_lse) in diffs.items():
                    r[f"{n}_diff_o"], r[f"{n}_diff_lse"] = d_o, d_lse
                rows.append(r)
                print(json.dumps({k: (round(x, 5) if isinstance(x, float) else x)
                                  for k, x in r.items()}), flush=True)
                del runs, outs
                torch.cuda.empty_cache()
    names = [n for n, _ in libs] + [n for n, _ in peers]
    print(f"\nforward A/B, TFLOP/s (bf16, 16k tokens; median of {args.rounds} rounds); "
          f"x = ÷ {base}; spread = max round-to-round spread of the builds")
    head = f"{'D':>4} {'N':>6} {'c':>2} | " + " ".join(f"{n[:7]:>7}" for n in names)
    head += " | " + " ".join(f"{'x' + n[:6]:>7}" for n, _ in libs[1:])
    if peers:
        head += " | " + " ".join(f"{n[:4] + '/fa2':>8} {n[:4] + '/cud':>8}" for n, _ in libs)
    print(head + " | spread | max diff o, lse")
    for r in rows:
        line = f"{r['D']:>4} {r['N']:>6} {r['causal']:>2} | "
        line += " ".join(f"{r[n + '_tflops']:7.1f}" for n in names)
        line += " | " + " ".join(f"{r[n + '_tflops'] / r[base + '_tflops']:7.3f}"
                                 for n, _ in libs[1:])
        if peers:
            line += " | " + " ".join(f"{r[n + '_tflops'] / r['fa2_tflops']:8.2f} "
                                     f"{r[n + '_tflops'] / r['cudnn_tflops']:8.2f}"
                                     for n, _ in libs)
        line += f" | {max(r[n + '_spread'] for n, _ in libs):6.3f}"
        line += " | " + " ".join(f"{r[n + '_diff_o']:.1e},{r[n + '_diff_lse']:.1e}"
                                 for n, _ in libs[1:])
        print(line)
    bad = [r for r in rows for n, _ in libs[1:]
           if not (r[n + "_diff_o"] < 2e-2 and r[n + "_diff_lse"] < 1e-2)]
    if bad:
        print(f"{len(bad)} configurations where a build's outputs differ from the base's")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
