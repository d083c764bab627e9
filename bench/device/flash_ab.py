"""Same-run A/B of FlashAttention builds: the forward, the backward or both, with PyTorch's peers.

Each --lib NAME=PATH is a libtilegrad_flash_capi.so (bench/device/flash_ab.sh builds the baseline
sources and the working tree's variants); the first is the baseline. For every (D, N, causal)
(bf16, 16k tokens per batch, H = 2048 / D) the runs below are timed in turn on the same inputs,
--rounds times, and the figure is the median over the rounds of each round's median:
  every build's automatic forward and/or backward (--pass fwd, bwd or both; the Hopper kernels on
  sm_90), with --sm80 also its forced sm_80 ones, then SDPA's FLASH_ATTENTION (FlashAttention-2) and
  CUDNN_ATTENTION forward and/or backward (left out with --no-peers).
Every build's backward reads the baseline's forward o and lse.

Before timing, each build's outputs are compared with the baseline's of the same kernel choice,
every output poisoned with NaN first so that an unwritten element shows: a forward's o (max
|difference| / max |baseline|) and lse (max |difference|), a backward's dq, dk, dv (the largest of
max |difference| / max |baseline|). A build whose outputs are not finite or differ (o or a gradient
by 2e-2 or more, lse by 1e-2 or more) makes the exit status 1, so that a variant that computes
something else cannot pass unnoticed at sizes the unit test does not reach.
"""

import argparse
import json
import math
import statistics
import sys

# The defaults of each pass: rounds, sequence lengths.
DEFAULTS = {
    "fwd": (5, "1024,4096,8192,16384"),
    "bwd": (3, "512,1024,2048,4096,8192,16384"),
    "both": (3, "1024,4096,16384"),
}
# Tolerances of the cross-check against the baseline.
TOL_REL, TOL_LSE = 2e-2, 1e-2


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", action="append", required=True,
                    help="NAME=PATH of a libtilegrad_flash_capi.so; the first is the baseline")
    ap.add_argument("--pass", dest="pass_", choices=("fwd", "bwd", "both"), default="both",
                    help="what to time and cross-check (default both)")
    ap.add_argument("--rounds", type=int,
                    help="rounds of median-of-15 (default 5 for fwd, 3 for bwd and both)")
    ap.add_argument("--dims", default="128,64", help="head dims, comma-separated")
    ap.add_argument("--ns", help="sequence lengths, comma-separated (default fwd "
                    f"{DEFAULTS['fwd'][1]}; bwd {DEFAULTS['bwd'][1]}; both {DEFAULTS['both'][1]})")
    ap.add_argument("--sm80", action="store_true",
                    help="also time and cross-check the forced sm_80 kernels of every build")
    ap.add_argument("--no-peers", action="store_true",
                    help="no FlashAttention-2 and cuDNN timings")
    args = ap.parse_args()
    rounds, ns = DEFAULTS[args.pass_]
    args.rounds = args.rounds or rounds
    args.ns = args.ns or ns
    return args


def rel_diff(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def build_runs(libs, kinds, q, k, v, dout, o0, lse0, causal, scale):
    """Every (build, kind)'s call on poisoned outputs, run once: {(name, kind): fn} and the
    outputs' copies {(name, kind): tensors}."""
    import torch

    def nan_like(x):
        return torch.full_like(x, float("nan"))

    runs, outs = {}, {}
    for name, lib in libs:
        for kind in kinds:
            sm80 = kind.endswith("80")
            if kind.startswith("fwd"):
                o, lse = nan_like(o0), nan_like(lse0)

                def fn(lib=lib, o=o, lse=lse, sm80=sm80):
                    lib.forward(q, k, v, o, lse, causal, scale, kernel=1 if sm80 else None)
                res = (o, lse)
            else:
                ws = lib.workspace(q, k, causal)
                dq, dk, dv = nan_like(q), nan_like(k), nan_like(v)

                def fn(lib=lib, ws=ws, dq=dq, dk=dk, dv=dv, sm80=sm80):
                    lib.backward(q, k, v, o0, lse0, dout, dq, dk, dv, ws, causal, scale,
                                 variant=0 if sm80 else None)
                res = (dq, dk, dv)
            fn()
            torch.cuda.synchronize()
            outs[(name, kind)] = tuple(x.clone() for x in res)
            runs[(name, kind)] = fn
    return runs, outs


def cross_check(outs, base):
    """{(name, kind): (max relative difference of o or of dq, dk, dv; lse's max difference)}
    against the baseline's outputs of the same kind; inf for outputs that are not finite."""
    import torch

    diffs = {}
    for (name, kind), res in outs.items():
        ref = outs[(base, kind)]
        if not all(torch.isfinite(x).all().item() for x in res):
            diffs[(name, kind)] = (float("inf"), float("inf"))
        elif kind.startswith("fwd"):
            diffs[(name, kind)] = (rel_diff(res[0], ref[0]), (res[1] - ref[1]).abs().max().item())
        else:
            diffs[(name, kind)] = (max(rel_diff(a, b) for a, b in zip(res, ref)), 0.0)
    return diffs


def peer_runs(peers, dirs, q, k, v, dout, causal, scale):
    """SDPA's forward and/or backward for each peer backend: {(peer, "fwd" | "bwd"): fn}."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    runs = {}
    qt, kt, vt, dt = (t.transpose(1, 2) for t in (q, k, v, dout))
    for peer, backend in peers:
        if "fwd" in dirs:
            def fwd(backend=backend):
                with sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                          scale=scale)
            runs[(peer, "fwd")] = fwd
        if "bwd" in dirs:
            qg, kg, vg = (t.detach().clone().requires_grad_() for t in (q, k, v))
            with sdpa_kernel([backend]):
                out = F.scaled_dot_product_attention(
                    qg.transpose(1, 2), kg.transpose(1, 2), vg.transpose(1, 2), is_causal=causal,
                    scale=scale)

            def bwd(out=out, qg=qg, kg=kg, vg=vg):
                return torch.autograd.grad(out, (qg, kg, vg), dt, retain_graph=True)
            runs[(peer, "bwd")] = bwd
    return runs


def main():
    args = parse_args()
    # PyTorch only past the options, so that --help works without it.
    import torch
    from torch.nn.attention import SDPBackend

    from flash_bench import FlashLib, time_ms

    libs = [(s.split("=", 1)[0], FlashLib(s.split("=", 1)[1])) for s in args.lib]
    base = libs[0][0]
    dirs = ("fwd", "bwd") if args.pass_ == "both" else (args.pass_,)
    kinds = [k for d in dirs for k in ((d, d + "80") if args.sm80 else (d,))]
    peers = [] if args.no_peers else [("fa2", SDPBackend.FLASH_ATTENTION),
                                      ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cudnn": torch.backends.cudnn.version(), "pass": args.pass_,
                      "kinds": kinds, "builds": args.lib}), flush=True)
    rows = []
    for D in (int(x) for x in args.dims.split(",")):
        for causal in (False, True):
            for N in (int(x) for x in args.ns.split(",")):
                B, H = 16384 // N, 2048 // D
                scale = 1.0 / math.sqrt(D)
                torch.manual_seed(N + D + causal)
                q, k, v, dout = (torch.randn(B, N, H, D, device="cuda", dtype=torch.bfloat16)
                                 for _ in range(4))
                # The backward's inputs: the baseline's forward.
                o0, lse0 = torch.empty_like(q), torch.empty(B, H, N, device="cuda")
                libs[0][1].forward(q, k, v, o0, lse0, causal, scale)
                runs, outs = build_runs(libs, kinds, q, k, v, dout, o0, lse0, causal, scale)
                diffs = cross_check(outs, base)
                runs.update(peer_runs(peers, dirs, q, k, v, dout, causal, scale))
                times = {key: [] for key in runs}
                for _ in range(args.rounds):
                    for key, fn in runs.items():
                        times[key].append(time_ms(fn, warmup=3, reps=15))
                fwd_flops = 4.0 * B * H * N * N * D / (2.0 if causal else 1.0)
                r = {"D": D, "N": N, "causal": int(causal)}
                for (name, kind), ts in times.items():
                    ms = statistics.median(ts)
                    flops = fwd_flops * (2.5 if kind.startswith("bwd") else 1.0)
                    r[f"{name}_{kind}_ms"] = ms
                    r[f"{name}_{kind}_tflops"] = flops / (ms * 1e-3) / 1e12
                    r[f"{name}_{kind}_spread"] = (max(ts) - min(ts)) / ms
                for (name, kind), (d, d_lse) in diffs.items():
                    r[f"{name}_{kind}_diff"] = d
                    if kind.startswith("fwd"):
                        r[f"{name}_{kind}_diff_lse"] = d_lse
                rows.append(r)
                print(json.dumps({key: (round(x, 5) if isinstance(x, float) else x)
                                  for key, x in r.items()}), flush=True)
                del runs, outs
                torch.cuda.empty_cache()

    print_tables(args, rows, [n for n, _ in libs], [p for p, _ in peers], kinds)
    bad = [(r, n, kind) for r in rows for n, _ in libs[1:] for kind in kinds
           if not (r[f"{n}_{kind}_diff"] < TOL_REL and
                   r.get(f"{n}_{kind}_diff_lse", 0.0) < TOL_LSE)]
    if bad:
        print(f"{len(bad)} (configuration, build, kernel) where a build's outputs differ from "
              f"{base}'s")
    return 1 if bad else 0


def print_tables(args, rows, names, peers, kinds):
    """One table per kind: TFLOP/s of the builds and the peers, ratios to the baseline and to the
    peers, the largest round-to-round spread of the builds, the cross-check against the baseline."""
    base = names[0]
    for kind in kinds:
        d = kind[:3]
        what = {"fwd": "automatic forward", "fwd80": "forward, sm_80 forced",
                "bwd": "automatic backward", "bwd80": "backward, sm_80 forced"}[kind]
        diff = "o, lse" if d == "fwd" else "dq, dk, dv"
        print(f"\n{what}: TFLOP/s (bf16, 16k tokens; median of {args.rounds} rounds);"
              f" x = ÷ {base}; spread = the builds' largest round-to-round spread;"
              f" diff = max |Δ| of {diff} against {base}")
        cols = [(n, kind) for n in names] + [(p, d) for p in peers]
        head = f"{'D':>4} {'N':>6} {'c':>2} | " + " ".join(f"{n[:7]:>7}" for n, _ in cols)
        head += " | " + " ".join(f"{'x' + n[:6]:>7}" for n in names[1:])
        if peers:
            head += " | " + " ".join(f"{n[:4] + '/fa2':>8} {n[:4] + '/cud':>8}" for n in names)
        print(head + " | spread | diff")
        for r in rows:
            t = {n: r[f"{n}_{k}_tflops"] for n, k in cols}
            line = f"{r['D']:>4} {r['N']:>6} {r['causal']:>2} | "
            line += " ".join(f"{t[n]:7.1f}" for n, _ in cols)
            line += " | " + " ".join(f"{t[n] / t[base]:7.3f}" for n in names[1:])
            if peers:
                line += " | " + " ".join(f"{t[n] / t['fa2']:8.2f} {t[n] / t['cudnn']:8.2f}"
                                         for n in names)
            line += f" | {max(r[f'{n}_{kind}_spread'] for n in names):6.3f}"
            line += " | " + " ".join(
                f"{r[f'{n}_{kind}_diff']:.1e}" +
                (f",{r[f'{n}_{kind}_diff_lse']:.1e}" if d == "fwd" else "") for n in names[1:])
            print(line)


if __name__ == "__main__":
    sys.exit(main())
