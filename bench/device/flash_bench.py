"""Checks and times tilegrad's CUDA FlashAttention kernels against PyTorch on one GPU.

The kernels come from libtilegrad_flash_capi.so (bench/cuda/flash_capi.cpp), loaded with ctypes and
given PyTorch's device pointers, so PyTorch is only the reference and the peer, never part of the
build. Run by bench/device/flash.sh, which builds the library first.

Correctness (flash-attention's criterion): against a float64 reference (float32 for N >= 4096),
the output's max abs error must be at most 2x that of the same attention computed by PyTorch in the
inputs' precision, and dq, dk, dv at most 3x. The default forward (the Hopper kernel on sm_90) feeds
the default backward (likewise the Hopper kernel on sm_90, where the sm_80 backward is checked too,
from the same forward outputs); the sm_80 forward and, for bf16 D = 128, the Hopper ablation variants are checked on
every case against the same references. Every output is poisoned with NaN before the run and
must be written. Speed: forward and backward TFLOP/s (forward 4 B H N^2 D, halved when causal;
backward 2.5x the forward) against SDPA's FLASH_ATTENTION (FlashAttention-2) and CUDNN_ATTENTION
backends, timed with CUDA events after warm-up, medians; a large bf16 matmul gives the ceiling.
"""

import argparse
import csv
import ctypes
import datetime
import json
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DTYPES = {"bf16": (torch.bfloat16, 0), "f16": (torch.float16, 1)}


class FlashLib:
    """The C entry points: dims = {B, H, Hkv, Nq, Nk, D, causal}; (batch, row, head) strides."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        vp, ip = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)
        lp = ctypes.POINTER(ctypes.c_int64)
        self.lib.tg_flash_error.restype = ctypes.c_char_p
        for name in ("tg_flash_forward", "tg_flash_backward"):
            fn = getattr(self.lib, name)
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int, ip, ctypes.c_float, ctypes.POINTER(vp), lp, vp]
        for name in ("tg_flash_forward_variant", "tg_flash_backward_variant",
                     "tg_flash_forward_kernel"):
            fn = getattr(self.lib, name)
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ip, ctypes.c_float, ctypes.POINTER(vp), lp,
                           vp]
        self.lib.tg_flash_backward_workspace.restype = ctypes.c_size_t
        self.lib.tg_flash_backward_workspace.argtypes = [ctypes.c_int, ip]

    @staticmethod
    def _arrays(dims, tensors, strided):
        c_dims = (ctypes.c_int * 7)(*dims)
        c_ptrs = (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])
        strides = []
        for t in strided:  # (B, N, heads, D) views
            strides += [t.stride(0), t.stride(1), t.stride(2)]
        return c_dims, c_ptrs, (ctypes.c_int64 * len(strides))(*strides)

    def _check(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: {rc} {self.lib.tg_flash_error().decode()}")

    def forward(self, q, k, v, o, lse, causal, scale, variant=None, kernel=None):
        B, Nq, H, D = q.shape
        dims = (B, H, k.shape[2], Nq, k.shape[1], D, int(causal))
        c_dims, c_ptrs, c_strides = self._arrays(dims, (q, k, v, o, lse), (q, k, v, o))
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        dt = DTYPES[dtype_name(q.dtype)][1]
        if kernel is not None:  # 0 automatic, 1 sm_80, 2 sm_90
            rc = self.lib.tg_flash_forward_kernel(kernel, dt, c_dims, scale, c_ptrs, c_strides,
                                                  stream)
        elif variant is None:
            rc = self.lib.tg_flash_forward(dt, c_dims, scale, c_ptrs, c_strides, stream)
        else:
            rc = self.lib.tg_flash_forward_variant(variant, dt, c_dims, scale, c_ptrs, c_strides,
                                                   stream)
        self._check(rc, "tg_flash_forward")

    def workspace(self, q, k, causal):
        B, Nq, H, D = q.shape
        dims = (ctypes.c_int * 7)(B, H, k.shape[2], Nq, k.shape[1], D, int(causal))
        n = self.lib.tg_flash_backward_workspace(DTYPES[dtype_name(q.dtype)][1], dims)
        return torch.empty(n, dtype=torch.uint8, device=q.device)

    def backward(self, q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=None):
        B, Nq, H, D = q.shape
        dims = (B, H, k.shape[2], Nq, k.shape[1], D, int(causal))
        c_dims, c_ptrs, c_strides = self._arrays(
            dims, (q, k, v, o, lse, dout, dq, dk, dv, ws), (q, k, v, o, dout, dq, dk, dv))
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        dt = DTYPES[dtype_name(q.dtype)][1]
        if variant is None:
            rc = self.lib.tg_flash_backward(dt, c_dims, scale, c_ptrs, c_strides, stream)
        else:
            rc = self.lib.tg_flash_backward_variant(variant, dt, c_dims, scale, c_ptrs, c_strides,
                                                    stream)
        self._check(rc, "tg_flash_backward")


def dtype_name(dt):
    return {torch.bfloat16: "bf16", torch.float16: "f16"}[dt]


def ref_attention(q, k, v, causal, scale):
    """Attention from the definition in the tensors' own dtype; (B, N, heads, D) layout.

    Causal is bottom-right aligned; a query that sees no key gets O = 0 and lse = -inf.
    """
    B, Nq, H, D = q.shape
    Nk, Hkv = k.shape[1], k.shape[2]
    k = k.repeat_interleave(H // Hkv, dim=2)
    v = v.repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q, k) * scale
    if causal:
        i = torch.arange(Nq, device=q.device)[:, None]
        j = torch.arange(Nk, device=q.device)[None, :]
        visible = j <= i + (Nk - Nq)
        row_any = visible.any(-1, keepdim=True)
        # Empty rows get finite scores and then P = 0, so that no NaN reaches the gradients.
        s = s.masked_fill(~visible & row_any, float("-inf")).masked_fill(~row_any, 0.0)
        p = torch.softmax(s, dim=-1).masked_fill(~row_any, 0.0)
        lse = torch.logsumexp(s.float(), dim=-1).masked_fill(~row_any[:, 0], float("-inf"))
    else:
        p = torch.softmax(s, dim=-1)
        lse = torch.logsumexp(s.float(), dim=-1)
    o = torch.einsum("bhij,bjhd->bihd", p, v)
    return o, lse


def ref_with_grads(q, k, v, dout, causal, scale, dtype):
    qr, kr, vr = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    o, lse = ref_attention(qr, kr, vr, causal, scale)
    grads = torch.autograd.grad(o, (qr, kr, vr), dout.to(dtype))
    return o.detach(), lse.detach(), grads


def max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


def hopper():
    return torch.cuda.get_device_capability() == (9, 0)


# Extra forwards checked on every case (name, forward keyword arguments, applies to (dtype, D)).
EXTRA_FORWARDS = [
    ("sm80", {"kernel": 1}, lambda dt, D: True),
    ("sm90_overlap", {"variant": 4}, lambda dt, D: hopper() and dt == "bf16" and D == 128),
    ("sm90_plain", {"variant": 5}, lambda dt, D: hopper() and dt == "bf16" and D == 128),
]
SM90_VARIANTS = ((5, "sm90_plain"), (4, "sm90_overlap"))


def forward_ok(o, lse, o_ref, o_pt, lse_ref):
    """The forward's criterion: o within 2x PyTorch's same-precision error, all written, lse -inf
    exactly where a row sees no key and within 1e-3 elsewhere. Returns (ok, o error, lse error)."""
    unwritten = int(torch.isnan(o).sum().item())
    e_o, e_pt = max_err(o, o_ref), max_err(o_pt, o_ref)
    finite = torch.isfinite(lse_ref)
    lse_nan = int(torch.isnan(lse).sum().item())
    inf_match = bool(torch.equal(lse == float("-inf"), ~finite))
    lse_err = max_err(lse[finite], lse_ref[finite]) if finite.any() else 0.0
    ok = (unwritten == 0 and e_o <= 2.0 * e_pt + 1e-5 and lse_nan == 0 and inf_match
          and lse_err <= 1e-3)
    return ok, e_o, lse_err


def check_case(lib, B, H, Hkv, Nq, Nk, D, causal, dtype_s, gen):
    dtype = DTYPES[dtype_s][0]
    dev = "cuda"
    scale = 1.0 / math.sqrt(D)
    q = torch.randn(B, Nq, H, D, device=dev, generator=gen).to(dtype)
    k = torch.randn(B, Nk, Hkv, D, device=dev, generator=gen).to(dtype)
    v = torch.randn(B, Nk, Hkv, D, device=dev, generator=gen).to(dtype)
    dout = torch.randn(B, Nq, H, D, device=dev, generator=gen).to(dtype)

    o = torch.full_like(q, float("nan"))
    lse = torch.full((B, H, Nq), float("nan"), device=dev)
    dq, dk, dv = (torch.full_like(t, float("nan")) for t in (q, k, v))
    lib.forward(q, k, v, o, lse, causal, scale)
    ws = lib.workspace(q, k, causal)
    lib.backward(q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale)
    torch.cuda.synchronize()

    hi = torch.float64 if max(Nq, Nk) <= 2048 else torch.float32
    o_ref, lse_ref, g_ref = ref_with_grads(q, k, v, dout, causal, scale, hi)
    o_pt, _, g_pt = ref_with_grads(q, k, v, dout, causal, scale, dtype)

    row = {"B": B, "H": H, "Hkv": Hkv, "Nq": Nq, "Nk": Nk, "D": D, "causal": int(causal),
           "dtype": dtype_s, "ref": "f64" if hi == torch.float64 else "f32"}
    ok = True
    for name, ours, ref, pt, factor in (("o", o, o_ref, o_pt, 2.0),
                                        ("dq", dq, g_ref[0], g_pt[0], 3.0),
                                        ("dk", dk, g_ref[1], g_pt[1], 3.0),
                                        ("dv", dv, g_ref[2], g_pt[2], 3.0)):
        unwritten = int(torch.isnan(ours).sum().item())
        e_ours, e_pt = max_err(ours, ref), max_err(pt, ref)
        passed = unwritten == 0 and e_ours <= factor * e_pt + 1e-5
        row[f"{name}_err"] = e_ours
        row[f"{name}_pt_err"] = e_pt
        row[f"{name}_ratio"] = e_ours / max(e_pt, 1e-30)
        row[f"{name}_unwritten"] = unwritten
        ok &= passed
    # lse: -inf exactly where a row sees nothing, otherwise close to the reference.
    finite = torch.isfinite(lse_ref)
    lse_nan = int(torch.isnan(lse).sum().item())
    inf_match = bool(torch.equal(lse == float("-inf"), ~finite))
    lse_err = max_err(lse[finite], lse_ref[finite]) if finite.any() else 0.0
    row["lse_err"] = lse_err
    ok &= lse_nan == 0 and inf_match and lse_err <= 1e-3
    for name, kwargs, applies in EXTRA_FORWARDS:
        if not applies(dtype_s, D):
            continue
        o2 = torch.full_like(q, float("nan"))
        lse2 = torch.full((B, H, Nq), float("nan"), device=dev)
        lib.forward(q, k, v, o2, lse2, causal, scale, **kwargs)
        torch.cuda.synchronize()
        f_ok, e_o, e_lse = forward_ok(o2, lse2, o_ref, o_pt, lse_ref)
        row[f"{name}_o_ratio"] = e_o / max(row["o_pt_err"], 1e-30)
        row[f"{name}_lse_err"] = e_lse
        row[f"{name}_pass"] = int(f_ok)
        ok &= f_ok
    # Where the default backward is the Hopper kernel (sm_90), the sm_80 one too (variant 0 names
    # it), from the same forward outputs.
    if hopper():
        dq2, dk2, dv2 = (torch.full_like(t, float("nan")) for t in (q, k, v))
        lib.backward(q, k, v, o, lse, dout, dq2, dk2, dv2, ws, causal, scale, variant=0)
        torch.cuda.synchronize()
        b_ok = True
        for name, ours, ref, pt in (("dq", dq2, g_ref[0], g_pt[0]), ("dk", dk2, g_ref[1], g_pt[1]),
                                    ("dv", dv2, g_ref[2], g_pt[2])):
            unwritten = int(torch.isnan(ours).sum().item())
            e_ours, e_pt = max_err(ours, ref), max_err(pt, ref)
            row[f"sm80bwd_{name}_ratio"] = e_ours / max(e_pt, 1e-30)
            b_ok &= unwritten == 0 and e_ours <= 3.0 * e_pt + 1e-5
        row["sm80bwd_pass"] = int(b_ok)
        ok &= b_ok
    row["pass"] = int(ok)
    return row


def correctness(lib, out_dir, dims=(64, 128, 256)):
    gen = torch.Generator(device="cuda")
    gen.manual_seed(int.from_bytes(os.urandom(4), "little"))  # fresh inputs every run
    shapes = [(113, 203), (128, 217), (1, 239), (3, 799), (127, 513), (1023, 1024), (1024, 1023),
              (2048, 2048)]
    cases = []
    idx = 0
    for Nq, Nk in shapes:
        for D in (x for x in (64, 128, 256) if x in dims):
            for causal in (False, True):
                for dt in ("bf16", "f16"):
                    Hkv = (4, 2, 1)[idx % 3]  # MHA, GQA and MQA in turn
                    cases.append((2, 4, Hkv, Nq, Nk, D, causal, dt))
                    idx += 1
    for N in (4096, 8192, 16384):
        for D in (x for x in (64, 128, 256) if x in dims):
            for causal in (False, True):
                cases.append((1, 2, 1 if causal else 2, N, N, D, causal, "bf16"))
    if 128 in dims:
        cases.append((1, 2, 2, 4096, 4096, 128, True, "f16"))
    # More query tiles than SMs (several CTAs per SM over the run).
    for D in (x for x in (64, 128, 256) if x in dims):
        for causal in (False, True):
            cases.append((4, 16, 4, 1000, 1000 + 37 * causal, D, causal, "bf16"))
    if 128 in dims:
        cases.append((4, 16, 16, 1000, 1000, 128, True, "f16"))
    rows = []
    for c in cases:
        try:
            row = check_case(lib, *c, gen)
        except Exception as e:  # a crash in one case must not hide the others
            row = {"B": c[0], "H": c[1], "Hkv": c[2], "Nq": c[3], "Nk": c[4], "D": c[5],
                   "causal": int(c[6]), "dtype": c[7], "pass": 0, "error": repr(e)[:200]}
            print("ERROR", c, repr(e), flush=True)
        rows.append(row)
        print("check {dtype} B={B} H={H} Hkv={Hkv} Nq={Nq} Nk={Nk} D={D} causal={causal}: "
              .format(**row) +
              " ".join(f"{n} {row.get(n + '_err', float('nan')):.2e}/{row.get(n + '_pt_err', float('nan')):.2e}"
                       for n in ("o", "dq", "dk", "dv")) +
              f" lse {row.get('lse_err', float('nan')):.1e} " +
              "".join(f"{n} {'ok' if row[n + '_pass'] else 'FAIL'} " for n, _, _ in EXTRA_FORWARDS
                      if n + "_pass" in row) +
              ("ok" if row["pass"] else "FAIL"),
              flush=True)
        torch.cuda.empty_cache()
    write_csv(os.path.join(out_dir, "flash_correctness.csv"), rows)
    return rows


def write_csv(path, rows):
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def time_ms(fn, warmup=5, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        events.append((s, e))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def time_config(lib, B, H, N, D, causal, variants=False, fwd_only=False):
    dtype = torch.bfloat16
    scale = 1.0 / math.sqrt(D)
    q, k, v, dout = (torch.randn(B, N, H, D, device="cuda", dtype=dtype) for _ in range(4))
    o = torch.empty_like(q)
    lse = torch.empty(B, H, N, device="cuda")
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    ws = lib.workspace(q, k, causal)
    fwd_flops = 4.0 * B * H * N * N * D / (2.0 if causal else 1.0)
    bwd_flops = 2.5 * fwd_flops
    res = {"B": B, "H": H, "N": N, "D": D, "causal": int(causal)}

    res["ours_fwd_ms"] = time_ms(lambda: lib.forward(q, k, v, o, lse, causal, scale))
    res["sm80_fwd_ms"] = time_ms(lambda: lib.forward(q, k, v, o, lse, causal, scale, kernel=1))
    if hopper() and D == 128:
        for vid, vname in SM90_VARIANTS:
            res[f"{vname}_fwd_ms"] = time_ms(
                lambda vid=vid: lib.forward(q, k, v, o, lse, causal, scale, variant=vid))
    res["ours_bwd_ms"] = float("nan") if fwd_only else time_ms(
        lambda: lib.backward(q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale))
    if hopper() and not fwd_only:
        res["sm90_bwd_ms"] = time_ms(
            lambda: lib.backward(q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=3))
        res["sm80_bwd_ms"] = time_ms(
            lambda: lib.backward(q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=0))
        if D == 128:  # the Hopper backward with per-thread dQ reductions (ablation)
            res["sm90red_bwd_ms"] = time_ms(lambda: lib.backward(
                q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=4))
    if variants and D == 256:  # the other tiles of the sm_80 forward at D = 256 (fwd_shape)
        for vid, vname in ((1, "m64_n32_2stage"), (3, "m128_n32_8warps")):
            res[f"var_{vname}_fwd_ms"] = time_ms(
                lambda vid=vid: lib.forward(q, k, v, o, lse, causal, scale, variant=vid))
        res["var_tuned_fwd_ms"] = res["ours_fwd_ms"]
    elif variants:
        for vid, vname in ((1, "single_stage"), (2, "unpadded"), (3, "block_n32")):
            res[f"var_{vname}_fwd_ms"] = time_ms(
                lambda vid=vid: lib.forward(q, k, v, o, lse, causal, scale, variant=vid))
        res["var_tuned_fwd_ms"] = time_ms(
            lambda: lib.forward(q, k, v, o, lse, causal, scale, kernel=1))  # the sm_80 kernel
        for vid, vname in ((1, "scalar_atomics"), (2, "pair_atomics")):
            res[f"var_{vname}_bwd_ms"] = time_ms(lambda vid=vid: lib.backward(
                q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=vid))
        res["var_tuned_bwd_ms"] = time_ms(lambda: lib.backward(
            q, k, v, o, lse, dout, dq, dk, dv, ws, causal, scale, variant=0))  # sm_80 kernel

    # PyTorch peers on the same memory: (B, H, N, D) views of the (B, N, H, D) tensors.
    qg, kg, vg = (t.detach().clone().requires_grad_() for t in (q, k, v))
    qt, kt, vt, dt = (t.transpose(1, 2) for t in (qg, kg, vg, dout))
    for name, backend in (("fa2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel([backend]):
                res[f"{name}_fwd_ms"] = time_ms(
                    lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                           scale=scale))
                out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, scale=scale)
                res[f"{name}_bwd_ms"] = float("nan") if fwd_only else time_ms(
                    lambda: torch.autograd.grad(out, (qg, kg, vg), dt, retain_graph=True))
                del out
        except Exception as e:
            print(f"{name} failed at N={N} D={D} causal={causal}: {e!r}"[:300], flush=True)
            res[f"{name}_fwd_ms"] = res[f"{name}_bwd_ms"] = float("nan")
    for who in ("sm80",) + tuple(v for _, v in SM90_VARIANTS):
        if f"{who}_fwd_ms" in res:
            res[f"{who}_fwd_tflops"] = fwd_flops / (res[f"{who}_fwd_ms"] * 1e-3) / 1e12
    for who in ("ours", "fa2", "cudnn"):
        res[f"{who}_fwd_tflops"] = fwd_flops / (res[f"{who}_fwd_ms"] * 1e-3) / 1e12
        res[f"{who}_bwd_tflops"] = bwd_flops / (res[f"{who}_bwd_ms"] * 1e-3) / 1e12
    for who in ("sm80", "sm90", "sm90red"):
        if f"{who}_bwd_ms" in res:
            res[f"{who}_bwd_tflops"] = bwd_flops / (res[f"{who}_bwd_ms"] * 1e-3) / 1e12
    if variants and D == 256:
        for vname in ("tuned", "m64_n32_2stage", "m128_n32_8warps"):
            res[f"var_{vname}_fwd_tflops"] = fwd_flops / (res[f"var_{vname}_fwd_ms"] * 1e-3) / 1e12
    elif variants:
        for vname in ("tuned", "single_stage", "unpadded", "block_n32"):
            res[f"var_{vname}_fwd_tflops"] = fwd_flops / (res[f"var_{vname}_fwd_ms"] * 1e-3) / 1e12
        for vname in ("tuned", "scalar_atomics", "pair_atomics"):
            res[f"var_{vname}_bwd_tflops"] = bwd_flops / (res[f"var_{vname}_bwd_ms"] * 1e-3) / 1e12
    return res


def ceilings():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = time_ms(lambda: a @ b, warmup=5, reps=20)
    mm = 2.0 * n ** 3 / (ms * 1e-3) / 1e12
    x = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16)  # 2 GiB
    y = torch.empty_like(x)
    ms = time_ms(lambda: y.copy_(x), warmup=3, reps=10)
    bw = 2.0 * x.numel() * 2 / (ms * 1e-3) / 1e12
    return {"matmul_bf16_tflops": mm, "copy_tbps": bw}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", default="out")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--skip-time", action="store_true")
    ap.add_argument("--dims", default="64,128,256", help="head dims to time, comma-separated")
    ap.add_argument("--check-dims", default="64,128,256", help="head dims to check")
    ap.add_argument("--fwd-only", action="store_true",
                    help="time forwards only, without the sm_80 ablations")
    ap.add_argument("--profile", action="store_true",
                    help="one forward and one backward (bf16, B=4, H=16, N=4096, D=128) for ncu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    lib = FlashLib(args.lib)
    if args.profile:
        for causal in (False,):
            q, k, v, dout = (torch.randn(4, 4096, 16, 128, device="cuda", dtype=torch.bfloat16)
                             for _ in range(4))
            o, lse = torch.empty_like(q), torch.empty(4, 16, 4096, device="cuda")
            dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            lib.forward(q, k, v, o, lse, causal, 128 ** -0.5)
            lib.backward(q, k, v, o, lse, dout, dq, dk, dv, lib.workspace(q, k, causal), causal,
                         128 ** -0.5)
        torch.cuda.synchronize()
        return 0
    props = torch.cuda.get_device_properties(0)
    meta = {"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(meta), flush=True)

    n_fail = 0
    if not args.skip_check:
        rows = correctness(lib, args.out, [int(x) for x in args.check_dims.split(",")])
        n_fail = sum(1 for r in rows if not r["pass"])
        worst = {n: max(r.get(f"{n}_ratio", float("nan")) for r in rows) for n in ("o", "dq", "dk", "dv")}
        print(f"correctness: {len(rows) - n_fail}/{len(rows)} cases pass; worst error ratio to "
              f"PyTorch same precision: " + ", ".join(f"{n} {x:.2f}" for n, x in worst.items()),
              flush=True)
        meta["check_cases"], meta["check_failures"], meta["worst_ratio"] = len(rows), n_fail, worst
        for name, _, _ in EXTRA_FORWARDS:
            mine = [r for r in rows if f"{name}_pass" in r]
            if mine:
                print(f"forward {name}: {sum(r[f'{name}_pass'] for r in mine)}/{len(mine)} cases "
                      f"pass; worst o error ratio "
                      f"{max(r[f'{name}_o_ratio'] for r in mine):.2f}, worst lse error "
                      f"{max(r[f'{name}_lse_err'] for r in mine):.1e}", flush=True)
        mine = [r for r in rows if "sm80bwd_pass" in r]
        if mine:
            print(f"backward sm80: {sum(r['sm80bwd_pass'] for r in mine)}/{len(mine)} cases "
                  "pass; worst error ratios " + ", ".join(
                      f"{n} {max(r[f'sm80bwd_{n}_ratio'] for r in mine):.2f}"
                      for n in ("dq", "dk", "dv")), flush=True)
        print(f"default forward worst lse error {max(r.get('lse_err', 0) for r in rows):.1e}",
              flush=True)

    results = []
    if not args.skip_time:
        meta.update(ceilings())
        print(json.dumps(meta), flush=True)
        for D in (int(x) for x in args.dims.split(",")):
            for causal in (False, True):
                for N in (512, 1024, 2048, 4096, 8192, 16384):
                    B, H = 16384 // N, 2048 // D
                    variants = D in (128, 256) and N in (2048, 8192) and not args.fwd_only
                    try:
                        r = time_config(lib, B, H, N, D, causal, variants, args.fwd_only)
                    except Exception as e:
                        print(f"timing failed D={D} N={N} causal={causal}: {e!r}", flush=True)
                        continue
                    results.append(r)
                    print(json.dumps({k: (round(x, 4) if isinstance(x, float) else x)
                                      for k, x in r.items()}), flush=True)
                    torch.cuda.empty_cache()
        write_csv(os.path.join(args.out, "flash_timing.csv"), results)
    with open(os.path.join(args.out, "flash_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)

    if results:
        print(f"\n{meta['device']}, bf16, 16k tokens per batch, TFLOP/s (ratio ours/FA2, ours/cuDNN); "
              f"bf16 matmul ceiling {meta['matmul_bf16_tflops']:.0f}")
        print(f"{'D':>4} {'N':>6} {'causal':>6} | {'sm80':>5} {'plain':>5} {'ovlp':>5} {'fwd':>5}"
              f" {'FA2':>5} {'cuDNN':>5} {'/FA2':>5} {'/cuDNN':>6}"
              f" | {'bwd':>5} {'FA2':>5} {'cuDNN':>5} {'/FA2':>5} {'/cuDNN':>6}")
        for r in results:
            print(f"{r['D']:>4} {r['N']:>6} {r['causal']:>6} | "
                  f"{r['sm80_fwd_tflops']:5.0f} {r.get('sm90_plain_fwd_tflops', float('nan')):5.0f} "
                  f"{r.get('sm90_overlap_fwd_tflops', float('nan')):5.0f} "
                  f"{r['ours_fwd_tflops']:5.0f} {r['fa2_fwd_tflops']:5.0f} {r['cudnn_fwd_tflops']:5.0f} "
                  f"{r['ours_fwd_tflops'] / r['fa2_fwd_tflops']:5.2f} "
                  f"{r['ours_fwd_tflops'] / r['cudnn_fwd_tflops']:6.2f} | "
                  f"{r['ours_bwd_tflops']:5.0f} {r['fa2_bwd_tflops']:5.0f} {r['cudnn_bwd_tflops']:5.0f} "
                  f"{r['ours_bwd_tflops'] / r['fa2_bwd_tflops']:5.2f} "
                  f"{r['ours_bwd_tflops'] / r['cudnn_bwd_tflops']:6.2f}")
        print(f"\nbackward, sm_80 kernel vs Hopper (wgmma) kernel, TFLOP/s (ratios of the Hopper one)")
        print(f"{'D':>4} {'N':>6} {'causal':>6} | {'sm80':>5} {'sm90':>5} {'FA2':>5} {'cuDNN':>5}"
              f" {'/sm80':>5} {'/FA2':>5} {'/cuDNN':>6} {'red':>5}")
        for r in results:
            if "sm90_bwd_tflops" in r:
                x = r["sm90_bwd_tflops"]
                print(f"{r['D']:>4} {r['N']:>6} {r['causal']:>6} | {r['sm80_bwd_tflops']:5.0f} {x:5.0f} "
                      f"{r['fa2_bwd_tflops']:5.0f} {r['cudnn_bwd_tflops']:5.0f} "
                      f"{x / r['sm80_bwd_tflops']:5.2f} {x / r['fa2_bwd_tflops']:5.2f} "
                      f"{x / r['cudnn_bwd_tflops']:6.2f} {r.get('sm90red_bwd_tflops', float('nan')):5.0f}")
        for r in results:
            if "var_m64_n32_2stage_fwd_tflops" in r:
                print(f"forward tiles D={r['D']} N={r['N']} causal={r['causal']}: " +
                      ", ".join(f"{v} {r[f'var_{v}_fwd_tflops']:.0f}"
                                for v in ("tuned", "m64_n32_2stage", "m128_n32_8warps")))
            elif "var_tuned_fwd_tflops" in r:
                print(f"forward ablations D={r['D']} N={r['N']} causal={r['causal']}: " +
                      ", ".join(f"{v} {r[f'var_{v}_fwd_tflops']:.0f}"
                                for v in ("tuned", "single_stage", "unpadded", "block_n32")) +
                      "; backward: " + ", ".join(f"{v} {r[f'var_{v}_bwd_tflops']:.0f}"
                                                 for v in ("tuned", "scalar_atomics", "pair_atomics")))
    if not args.skip_check:
        print(f"correctness: {meta['check_cases'] - n_fail}/{meta['check_cases']} cases pass")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
