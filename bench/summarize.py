#!/usr/bin/env python3
"""Reads the Google Benchmark JSON that bench/run.sh writes and prints the three performance
requirements with their medians, ratios and pass/fail.

Usage: summarize.py [DIR] [--markdown]     (DIR defaults to build/bench)

Only the median aggregates are used (run.sh runs 5 repetitions): a median shrugs off the odd slow
repetition that another process causes, where a mean would not.
"""
import json
import os
import sys

MATMUL_MIN_RATIO = 0.90  # engine GFLOP/s over direct cblas_sgemm GFLOP/s
BANDWIDTH_MIN_RATIO = 0.5  # "within 2x of memcpy": at least half its bytes/s
BACKWARD_MAX_MS = 50.0  # 10,000-node chain
CHAIN_NODES = 10000


def load(directory, program):
    path = os.path.join(directory, program + ".json")
    with open(path) as f:
        data = json.load(f)
    medians = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        medians[b["run_name"]] = b  # an aggregate, or a single run if repetitions were off
    return data["context"], medians


def get(medians, run_name):
    if run_name not in medians:
        sys.exit(f"summarize.py: no result for {run_name} (was it filtered out?)")
    return medians[run_name]


def ms(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * scale


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in sys.argv[1:]
    directory = args[0] if args else os.path.join("build", "bench")

    rows = []  # (requirement, measured, peer, ratio / limit, verdict)

    # 1. matmul
    ctx, m = load(directory, "matmul")
    eng = get(m, "BM_MatmulEngine/1024/real_time")
    blas = get(m, "BM_MatmulCblas/1024/real_time")
    ratio = eng["FLOP"] / blas["FLOP"]
    rows.append((
        "matmul 1024³ f32, engine vs cblas_sgemm",
        f"{eng['FLOP'] / 1e9:.1f} GFLOP/s",
        f"{blas['FLOP'] / 1e9:.1f} GFLOP/s",
        f"{ratio:.3f} (≥ {MATMUL_MIN_RATIO})",
        verdict(ratio >= MATMUL_MIN_RATIO),
    ))

    # 2. elementwise: judged against the faster of the two memcpy peers (the stricter reading of
    # "memcpy bandwidth"); both ratios are shown.
    _, e = load(directory, "elementwise")
    copy1 = get(e, "BM_Memcpy/real_time")["bytes"]
    copyn_b = get(e, "BM_MemcpyParallel/real_time")
    copyn = copyn_b["bytes"]
    threads = int(copyn_b.get("omp_threads", 0))
    best = max(copy1, copyn)
    rows.append(("memcpy 64 MiB, 1 thread", f"{copy1 / 1e9:.2f} GB/s", "", "", ""))
    rows.append((f"memcpy 64 MiB, {threads} threads", f"{copyn / 1e9:.2f} GB/s", "", "", ""))
    raw = get(e, "BM_AddRawLoop/real_time")["bytes"]
    rows.append((f"reference: bare OpenMP add loop", f"{raw / 1e9:.2f} GB/s", "", "", ""))
    for name, label in (("BM_Add", "add"), ("BM_Mul", "mul"), ("BM_Exp", "exp"),
                        ("BM_AddRowBroadcast", "add [4096,4096] + [4096]")):
        bw = get(e, name + "/real_time")["bytes"]
        rows.append((
            f"{label}, 64 MiB f32",
            f"{bw / 1e9:.2f} GB/s",
            f"×{bw / copy1:.2f} of 1-thr, ×{bw / copyn:.2f} of {threads}-thr memcpy",
            f"{bw / best:.2f} (≥ {BANDWIDTH_MIN_RATIO})",
            verdict(bw / best >= BANDWIDTH_MIN_RATIO),
        ))

    # 3. autograd chain
    _, a = load(directory, "autograd")
    for chain in ("affine", "tanh"):
        fwd = ms(get(a, f"BM_ChainForward/{chain}/{CHAIN_NODES}/manual_time"))
        bwd = ms(get(a, f"BM_ChainBackward/{chain}/{CHAIN_NODES}/manual_time"))
        rows.append((
            f"{CHAIN_NODES}-node {chain} chain backward",
            f"{bwd:.2f} ms",
            f"forward build {fwd:.2f} ms",
            f"< {BACKWARD_MAX_MS:.0f} ms",
            verdict(bwd < BACKWARD_MAX_MS),
        ))

    header = ("requirement", "measured (median)", "peer / detail", "ratio (limit)", "result")
    load_avg = ", ".join(f"{x:.2f}" for x in ctx.get("load_avg", []))
    print(f"# {ctx.get('date', '?')}, {ctx.get('num_cpus', '?')} CPUs, load average {load_avg}")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    failed = [r for r in rows if r[4] == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
