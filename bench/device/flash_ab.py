"""Same-run A/B of the default forward and backward of two or more builds (no PyTorch peers).

Each --lib NAME=PATH is a libtilegrad_flash_capi.so; the first is the baseline. For every (D, N,
causal) (bf16, 16k tokens per batch, H = 2048 / D) the automatic forward and backward (the Hopper
kernels on sm_90) and the forced sm_80 ones of every build are timed in turn, --rounds times, on
the same inputs; the figure is the median over the rounds of each round's median. Before timing,
each build's o, dq, dk, dv are compared with the baseline's (max |difference| / max |baseline|).
Used to show that a change elsewhere (D = 256, packed batches) left the D = 64 / 128 kernels' speed
where it was.
"""

import argparse
import json
import math
import statistics
import sys

import torch

from flash_bench import FlashLib, time_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", action="append", required=True, help="NAME=PATH; the first is the base")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dims", default="128,64")
    ap.add_argument("--ns", default="1024,4096,16384")
    args = ap.parse_args()
    libs = [(s.split("=", 1)[0], FlashLib(s.split("=", 1)[1])) for s in args.lib]
    base = libs[0][0]
    kinds = ("fwd", "fwd80", "bwd", "bwd80")
    print(json.dumps({"device": torch.cuda.get_device_name(0), "builds": args.lib}), flush=True)
    rows = []
    for D in (int(x) for x in args.dims.split(",")):
        for causal in (False, True):
            for N in (int(x) for x in args.ns.split(",")):
                B, H = 16384 // N, 2048 // D
                scale = 1.0 / math.sqrt(D)
                torch.manual_seed(N + D + causal)
                q, k, v, dout = (torch.randn(B, N, H, D, device="cuda", dtype=torch.bfloat16)
                                 for _ in range(4))
                o0, lse0 = torch.empty_like(q), torch.empty(B, H, N, device="cuda")
                libs[0][1].forward(q, k, v, o0, lse0, causal, scale)
                runs, outs = {}, {}
                for name, lib in libs:
                    ws = lib.workspace(q, k, causal)
                    o, lse = torch.empty_like(q), torch.empty_like(lse0)
                    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
                    lib.forward(q, k, v, o, lse, causal, scale)
                    lib.backward(q, k, v, o0, lse0, dout, dq, dk, dv, ws, causal, scale)
                    torch.cuda.synchronize()
                    outs[name] = (o.clone(), dq.clone(), dk.clone(), dv.clone())
                    runs[(name, "fwd")] = lambda lib=lib, o=o, lse=lse: lib.forward(
                        q, k, v, o, lse, causal, scale)
                    runs[(name, "fwd80")] = lambda lib=lib, o=o, lse=lse: lib.forward(
                        q, k, v, o, lse, causal, scale, kernel=1)
                    runs[(name, "bwd")] = lambda lib=lib, ws=ws, dq=dq, dk=dk, dv=dv: lib.backward(
                        q, k, v, o0, lse0, dout, dq, dk, dv, ws, causal, scale)
                    runs[(name, "bwd80")] = lambda lib=lib, ws=ws, dq=dq, dk=dk, dv=dv: lib.backward(
                        q, k, v, o0, lse0, dout, dq, dk, dv, ws, causal, scale, variant=0)
                diffs = {}
                for name, g in outs.items():
                    diffs[name] = max(((a.float() - b.float()).abs().max() /
                                       b.float().abs().max()).item() for a, b in zip(g, outs[base]))
                times = {key: [] for key in runs}
                for _ in range(args.rounds):
                    for key, fn in runs.items():
                        times[key].append(time_ms(fn, warmup=3, reps=15))
                fwd_flops = 4.0 * B * H * N * N * D / (2.0 if causal else 1.0)
                r = {"D": D, "N": N, "causal": int(causal)}
                for (name, kind), ts in times.items():
                    ms = statistics.median(ts)
                    flops = fwd_flops * (2.5 if kind.startswith("bwd") else 1.0)
                    r[f"{name}_{kind}_tflops"] = flops / (ms * 1e-3) / 1e12
                    r[f"{name}_{kind}_spread"] = (max(ts) - min(ts)) / ms
                r.update({f"{n}_diff": d for n, d in diffs.items()})
                rows.append(r)
                print(json.dumps({k: (round(x, 5) if isinstance(x, float) else x)
                                  for k, x in r.items()}), flush=True)
                del runs, outs
                torch.cuda.empty_cache()
    print(f"\nA/B TFLOP/s (bf16, 16k tokens): automatic and forced-sm_80 forward and backward; "
          f"x = ÷ {base}; diff = max |Δ| / max |{base}| over o, dq, dk, dv")
    head = f"{'D':>4} {'N':>6} {'c':>2} | " + " ".join(
        f"{n[:5] + ' ' + kd:>11}" for kd in kinds for n, _ in libs)
    print(head + " | " + " ".join(f"{'x ' + kd:>8}" for kd in kinds for _ in libs[1:]) + " | diff")
    for r in rows:
        line = f"{r['D']:>4} {r['N']:>6} {r['causal']:>2} | "
        line += " ".join(f"{r[f'{n}_{kd}_tflops']:11.1f}" for kd in kinds for n, _ in libs)
        line += " | " + " ".join(f"{r[f'{n}_{kd}_tflops'] / r[f'{base}_{kd}_tflops']:8.3f}"
                                 for kd in kinds for n, _ in libs[1:])
        line += " | " + " ".join(f"{r[n + '_diff']:.1e}" for n, _ in libs[1:])
        print(line)
    bad = [r for r in rows for n, _ in libs[1:] if not r[n + "_diff"] < 2e-2]
    if bad:
        print(f"{len(bad)} configurations where a build's outputs differ from the base's")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
