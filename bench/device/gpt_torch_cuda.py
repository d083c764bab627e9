#!/usr/bin/env python3
"""The GPU peer of tilegrad's GPT training: the same model in PyTorch on one CUDA device.

Model: GPT-2 as tilegrad builds it (src/models/gpt.cpp) and as bench/gpt_torch.py builds it on the
CPU -- token and position embeddings, pre-LayerNorm blocks with biases (eps 1e-5), causal
self-attention, a 4x MLP with tanh GELU, dropout after the embeddings / on the attention
probabilities / after each projection, and a head tied to the token embedding; GPT-2's
initialisation (std 0.02, residual projections 0.02 / sqrt(2 L), zero biases). Here attention is
F.scaled_dot_product_attention(is_causal=True) (FlashAttention-2 or cuDNN, never the T x T
matrix), matmuls run in bf16 under autocast with float32 master weights, and AdamW is PyTorch's
fused one (decay on matrices only: embeddings and weights, not biases or LayerNorm gains).

Modes, each printing JSON lines on stdout (the last one is the result):

  throughput   GPT-2 124M (V 50257 as tilegrad's gpt2 preset; --vocab 50304 for the padded
               table), T 1024, --batch B, random tokens made on the GPU, optional torch.compile.
               Median step time from CUDA events over --steps steps after --warmup untimed ones
               (compilation happens there), tokens/s, peak memory of the timed steps.
  longctx      GPT-2 124M at B 1 and --seq-len T (position table of T rows), every block
               checkpointed (non-reentrant torch.utils.checkpoint); peak memory and step time,
               or {"oom": true, ...} when the allocator gives out.
  shakespeare  nanoGPT's shakespeare-char recipe (6 x 6 x 384, block 256, batch 64, dropout 0.2,
               lr 1e-3 -> 1e-4 cosine over 5000 iters after 100 warmup, beta2 0.99, wd 0.1, clip
               1.0) on a character-level tinyshakespeare (--text), evaluating every 250 iters on
               200 batches of each split; one line per evaluation, then wall time and the losses.
               wall_s includes torch.compile's work (first_step_s, and the first evaluation's
               compile of the eval-mode graph); ms_per_iter is the median training step.

Examples (on the device machine, from the repository root):
  python3 bench/device/gpt_torch_cuda.py --mode throughput --batch 16
  python3 bench/device/gpt_torch_cuda.py --mode longctx --seq-len 65536
  python3 bench/device/gpt_torch_cuda.py --mode shakespeare --text data/tinyshakespeare.txt
A CPU smoke run (tiny sizes; also works on old PyTorch without SDPA or torch.compile):
  python3 bench/device/gpt_torch_cuda.py --mode throughput --device cpu --no-compile \\
      --layers 2 --heads 2 --width 32 --vocab 64 --seq-len 32 --batch 2 --warmup 1 --steps 2
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpt_torch_model import _HAS_SDPA, GPT  # noqa: E402  (bench/gpt_torch_model.py)

# --- features that old PyTorch lacks (the CPU smoke run on 1.13); all present in 2.x -------------

_OOM_ERRORS = tuple({getattr(torch, "OutOfMemoryError", None),
                     getattr(torch.cuda, "OutOfMemoryError", None)} - {None})

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # PyTorch < 2.3
    SDPBackend = sdpa_kernel = None

SDPA_BACKENDS = ("auto", "flash", "cudnn", "efficient", "math")


def sdpa_context(name):
    """Pins SDPA to one kernel; 'auto' leaves PyTorch's own choice (flash or cuDNN on Hopper)."""
    if name == "auto":
        return contextlib.nullcontext()
    if sdpa_kernel is None:
        raise SystemExit(f"--sdpa-backend {name} needs torch.nn.attention (PyTorch >= 2.3)")
    backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]
    return sdpa_kernel([backend])


def make_optimizer(model, lr, betas, weight_decay, device):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    kwargs = {}
    if device.type == "cuda":
        kwargs["fused"] = True  # one multi-tensor kernel per step instead of a loop of small ones
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=betas, eps=1e-8, **kwargs)


def count_params(model):
    return sum(p.numel() for p in model.parameters())  # the tied head shares wte: counted once


def model_flops_per_token(model, L, C, T):
    """Training FLOPs per token as nanoGPT / PaLM count them: 6 N for the matmuls over the weights
    (N without the position table, which is a lookup; with wte, which is also the head) plus
    12 L C T for attention scored over all T keys (causal masking not discounted)."""
    n = count_params(model) - model.wpe.weight.numel()
    return 6 * n + 12 * L * C * T


# --- shared machinery ---------------------------------------------------------------------------


def autocast(device, amp):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def maybe_compile(model, enabled):
    if not enabled:
        return model
    if not hasattr(torch, "compile"):
        raise SystemExit("torch.compile needs PyTorch >= 2.0: pass --no-compile")
    return torch.compile(model)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Per-step times in ms: CUDA events on the GPU (no host sync between steps, so the launch queue
    stays full), wall clock on the CPU. Read them with times_ms() once the steps are done."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def start(self):
        self._t0 = self._mark()

    def stop(self):
        self.marks.append((self._t0, self._mark()))

    def _mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def times_ms(self):
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in self.marks]
        return [(b - a) * 1e3 for a, b in self.marks]


def memory_report(device):
    if device.type != "cuda":
        return {}
    gib = 1024 ** 3
    alloc, reserved = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
    return {"peak_allocated_bytes": alloc, "peak_allocated_gib": round(alloc / gib, 3),
            "peak_reserved_bytes": reserved, "peak_reserved_gib": round(reserved / gib, 3)}


def reset_peak_memory(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def environment(a, device):
    env = {"peer": "pytorch-cuda", "mode": a.mode, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "compile": a.compile, "amp": a.amp, "sdpa_backend": a.sdpa_backend if _HAS_SDPA else "explicit"}
    if device.type == "cuda":
        env["alloc_conf"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
    return env


def is_oom(e):
    # cuBLAS / cuDNN workspace failures surface as plain RuntimeErrors rather than the allocator's.
    text = str(e).lower()
    return isinstance(e, _OOM_ERRORS) or "out of memory" in text or "alloc_failed" in text


def emit(record):
    print(json.dumps(record), flush=True)


def make_train_step(model, opt, device, amp, clip):
    """forward, backward, global-norm clipping, AdamW, zero_grad(set_to_none) -- tilegrad's step.
    Returns the loss as a device tensor so the host never waits on the GPU inside a step."""

    def step(x, y):
        with autocast(device, amp):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


# --- modes ----------------------------------------------------------------------------------------


def run_timed(a, device, remat):
    """throughput and longctx: a GPT-2-sized model on random tokens; warm-up, then timed steps."""
    L, H, C, V, T, B = a.layers, a.heads, a.width, a.vocab, a.seq_len, a.batch
    dropout = a.dropout
    record = environment(a, device)
    record.update({"layers": L, "heads": H, "width": C, "vocab": V, "batch": B, "block": T,
                   "dropout": dropout, "remat": "every:1" if remat else "none"})

    torch.manual_seed(a.seed)
    model = GPT(L, H, C, V, T, dropout, remat=remat, bias=a.bias).to(device)
    model.train()
    record["params"] = count_params(model)
    flops_per_token = model_flops_per_token(model, L, C, T)
    opt = make_optimizer(model, lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, device=device)
    step = make_train_step(maybe_compile(model, a.compile), opt, device, a.amp, clip=1.0)

    # A few distinct batches, made up front on the device, so the timed steps move no data and
    # draw no random numbers of their own; random tokens cost the same as text for this step.
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    batches = [torch.randint(0, V, (B, T + 1), device=device, generator=gen) for _ in range(4)]
    batches = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in batches]

    try:
        with sdpa_context(a.sdpa_backend):
            synchronize(device)
            t0 = time.perf_counter()
            for i in range(a.warmup):  # compilation and the optimizer's lazy state happen here
                step(*batches[i % len(batches)])
            synchronize(device)
            record["warmup_s"] = round(time.perf_counter() - t0, 2)

            reset_peak_memory(device)
            timer = StepTimer(device)
            t0 = time.perf_counter()
            for i in range(a.steps):
                timer.start()
                loss = step(*batches[i % len(batches)])
                timer.stop()
            times = timer.times_ms()
            wall_s = time.perf_counter() - t0
    except RuntimeError as e:  # torch.OutOfMemoryError is one
        if not is_oom(e):
            raise
        # The peak is the one up to the failure (since the timed region began, if it got there).
        record.update({"oom": True, "error": str(e).strip().splitlines()[0][:300]})
        record.update(memory_report(device))
        return record

    ms = statistics.median(times)
    tokens_per_s = B * T / (ms / 1e3)
    record.update({
        "oom": False, "steps": a.steps, "warmup": a.warmup,
        "ms_per_step": round(ms, 3), "ms_per_step_min": round(min(times), 3),
        "ms_per_step_wall_mean": round(wall_s / a.steps * 1e3, 3),
        "tokens_per_s": round(tokens_per_s, 1),
        "model_tflops_per_s": round(flops_per_token * tokens_per_s / 1e12, 2),
        "loss": round(loss.item(), 4),
    })
    record.update(memory_report(device))
    return record


def load_chars(path, device):
    """tinyshakespeare as nanoGPT's data/shakespeare_char/prepare.py makes it: the vocabulary is the
    sorted set of characters, the first 90 % of the text is train, the rest val."""
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long, device=device)
    n = int(len(ids) * 0.9)
    return chars, ids[:n], ids[n:]


def get_batch(data, B, T, gen):
    """B random windows of T + 1 characters: inputs and the targets shifted by one (nanoGPT's
    get_batch, but gathered on the device: the whole text fits in a megabyte)."""
    ix = torch.randint(len(data) - T, (B,), device=data.device, generator=gen)
    offsets = ix[:, None] + torch.arange(T, device=data.device)  # [B, T]
    return data[offsets], data[offsets + 1]


def lr_at(it, max_lr, min_lr, warmup, decay_iters):
    """nanoGPT's get_lr, and tilegrad's WarmupCosineSchedule (src/optim/lr_schedule.h)."""
    if it < warmup:
        return max_lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def run_shakespeare(a, device):
    if not a.text:
        raise SystemExit("--mode shakespeare needs --text PATH (tinyshakespeare, e.g. data/tinyshakespeare.txt)")
    L, H, C, T, B = a.layers, a.heads, a.width, a.seq_len, a.batch
    chars, train_data, val_data = load_chars(a.text, device)
    V = len(chars)
    base = environment(a, device)
    base.update({"layers": L, "heads": H, "width": C, "vocab": V, "batch": B, "block": T,
                 "dropout": a.dropout, "bias": a.bias, "max_iters": a.max_iters, "train_tokens": len(train_data),
                 "val_tokens": len(val_data)})

    torch.manual_seed(a.seed)
    model = GPT(L, H, C, V, T, a.dropout, bias=a.bias).to(device)
    base["params"] = count_params(model)
    max_lr, min_lr = 1e-3, 1e-4
    opt = make_optimizer(model, lr=max_lr, betas=(0.9, 0.99), weight_decay=0.1, device=device)
    compiled = maybe_compile(model, a.compile)
    step = make_train_step(compiled, opt, device, a.amp, clip=1.0)
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)

    @torch.no_grad()
    def estimate_loss():
        compiled.eval()
        out = {}
        for split, data in (("train", train_data), ("val", val_data)):
            losses = torch.zeros(a.eval_iters, device=device)
            for k in range(a.eval_iters):
                with autocast(device, a.amp):
                    losses[k] = compiled(*get_batch(data, B, T, gen))
            out[split] = losses.mean().item()
        compiled.train()
        return out

    # Evaluations at iterations 0, eval_interval, ..., and after the last step. nanoGPT evaluates
    # at the same iterations but then takes one more step (its loop runs max_iters + 1 steps),
    # which no evaluation sees; here the final evaluation follows the last of max_iters steps.
    timer = StepTimer(device)
    best_val, losses, eval_s = float("inf"), None, 0.0
    synchronize(device)
    t_start = time.perf_counter()
    with sdpa_context(a.sdpa_backend):
        for it in range(a.max_iters + 1):
            if it % a.eval_interval == 0 or it == a.max_iters:
                synchronize(device)
                t0 = time.perf_counter()
                losses = estimate_loss()
                eval_s += time.perf_counter() - t0
                best_val = min(best_val, losses["val"])
                emit({"mode": "shakespeare", "iter": it, "train_loss": round(losses["train"], 4),
                      "val_loss": round(losses["val"], 4), "lr": lr_at(it, max_lr, min_lr, a.warmup_iters,
                                                                       a.lr_decay_iters),
                      "elapsed_s": round(time.perf_counter() - t_start, 2)})
            if it == a.max_iters:
                break
            lr = lr_at(it, max_lr, min_lr, a.warmup_iters, a.lr_decay_iters)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = get_batch(train_data, B, T, gen)
            timer.start()
            step(x, y)
            timer.stop()
    synchronize(device)
    wall_s = time.perf_counter() - t_start
    times = timer.times_ms()
    train_s = sum(times) / 1e3  # the training steps alone, without evaluations
    # The first step carries torch.compile's compilation; the median is the steady state.
    base.update({
        "wall_s": round(wall_s, 2), "train_s": round(train_s, 2), "eval_s": round(eval_s, 2),
        "first_step_s": round(times[0] / 1e3, 2) if times else None,
        "ms_per_iter": round(statistics.median(times), 3) if times else None,
        "tokens_per_s": round(B * T / (statistics.median(times) / 1e3), 1) if times else None,
        "final_train_loss": round(losses["train"], 4), "final_val_loss": round(losses["val"], 4),
        "best_val_loss": round(best_val, 4),
    })
    base.update(memory_report(device))
    return base


# --- command line ---------------------------------------------------------------------------------

# Per-mode defaults for the flags left unset: GPT-2 124M (tilegrad's gpt2 preset) for the timed
# modes, nanoGPT's shakespeare-char config for the training run.
MODE_DEFAULTS = {
    "throughput": dict(layers=12, heads=12, width=768, seq_len=1024, batch=16, dropout=0.0,
                       warmup=10, steps=50, remat=False),
    "longctx": dict(layers=12, heads=12, width=768, seq_len=65536, batch=1, dropout=0.0,
                    warmup=1, steps=2, remat=True),
    "shakespeare": dict(layers=6, heads=6, width=384, seq_len=256, batch=64, dropout=0.2),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=tuple(MODE_DEFAULTS), default="throughput")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu, for smoke runs")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="torch.compile the model (default on; --no-compile for eager)")
    ap.add_argument("--amp", choices=("bf16", "none"), default="bf16",
                    help="bf16 autocast over float32 weights (default), or none: float32 throughout")
    ap.add_argument("--sdpa-backend", choices=SDPA_BACKENDS, default="auto",
                    help="pin scaled_dot_product_attention to one kernel (default: PyTorch's choice)")
    ap.add_argument("--seed", type=int, default=1337)
    g = ap.add_argument_group("model (unset: the mode's default)")
    g.add_argument("--layers", type=int)
    g.add_argument("--heads", type=int)
    g.add_argument("--width", type=int)
    g.add_argument("--vocab", type=int, default=50257,
                   help="throughput / longctx vocabulary: 50257 as tilegrad's gpt2 preset, or 50304 "
                        "(padded to a multiple of 64); shakespeare takes it from the text")
    g.add_argument("--seq-len", "--block", dest="seq_len", type=int,
                   help="T, also the position table's rows (1024; longctx 65536; shakespeare 256)")
    g.add_argument("--dropout", type=float, help="0 for throughput / longctx, 0.2 for shakespeare")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True,
                   help="biases in the linear layers and layer norms (--no-bias: nanoGPT's "
                        "bias = False)")
    g = ap.add_argument_group("throughput / longctx")
    g.add_argument("--batch", type=int, help="B (16; longctx 1; shakespeare 64)")
    g.add_argument("--warmup", type=int, help="untimed steps first (10; longctx 1)")
    g.add_argument("--steps", type=int, help="timed steps (50; longctx 2)")
    g.add_argument("--remat", action=argparse.BooleanOptionalAction, default=None,
                   help="checkpoint every block (default: on for longctx only)")
    g = ap.add_argument_group("shakespeare")
    g.add_argument("--text", help="tinyshakespeare's text (the repository has data/tinyshakespeare.txt)")
    g.add_argument("--max-iters", type=int, default=5000)
    g.add_argument("--lr-decay-iters", type=int, help="end of the cosine (default: --max-iters)")
    g.add_argument("--warmup-iters", type=int, default=100)
    g.add_argument("--eval-interval", type=int, default=250)
    g.add_argument("--eval-iters", type=int, default=200, help="batches per split per evaluation")
    a = ap.parse_args(argv)
    for key, value in MODE_DEFAULTS[a.mode].items():
        if getattr(a, key, None) is None:
            setattr(a, key, value)
    if a.lr_decay_iters is None:
        a.lr_decay_iters = a.max_iters
    return a


def main(argv=None):
    a = parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda":
        if device.index is None:  # "cuda": the current device, made explicit for the memory stats
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        # Autocast already runs every matmul in bf16; this only lets any float32 matmul left
        # (--amp none) use TF32, as nanoGPT does.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if a.mode == "shakespeare":
        emit(run_shakespeare(a, device))
    else:
        emit(run_timed(a, device, remat=a.remat))


if __name__ == "__main__":
    main()
