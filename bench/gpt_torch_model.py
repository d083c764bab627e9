"""tilegrad's GPT in PyTorch: the model the benchmark peers train (bench/gpt_torch.py on the CPU,
bench/device/gpt_torch_cuda.py on the GPU).

GPT-2's architecture as tilegrad builds it (src/models/gpt.cpp): token and position embeddings,
pre-LayerNorm blocks with biases (eps 1e-5), causal self-attention, a 4x MLP with tanh GELU,
dropout after the embeddings / on the attention probabilities / after each projection, and a head
tied to the token embedding; GPT-2's initialisation (std 0.02, residual projections
0.02 / sqrt(2 L), zero biases). bias=False drops every bias of the linear layers and layer norms
(nanoGPT's bias = False; tilegrad's GPTConfig::bias).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")  # absent in old PyTorch (Debian's 1.13)


def causal_attention(q, k, v, p, explicit=False):
    """softmax(q k^T / sqrt(D), causal) v with dropout p on the probabilities; q, k, v [B, H, T, D].
    SDPA (FlashAttention-2 or cuDNN on the GPU, never the T x T matrix) unless `explicit` or this
    PyTorch has none: then the explicit matrix of nanoGPT's non-flash path."""
    if _HAS_SDPA and not explicit:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    att = F.dropout(F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1), p)
    return att @ v


class BiasFreeLayerNorm(nn.Module):
    """A layer norm with a weight and no bias (old PyTorch, the CPU peer's 1.13, has no
    nn.LayerNorm(bias=False))."""

    def __init__(self, C):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


def LayerNorm(C, bias):
    return nn.LayerNorm(C) if bias else BiasFreeLayerNorm(C)


class Block(nn.Module):
    def __init__(self, C, H, p, explicit_attention=False, bias=True):
        super().__init__()
        self.H, self.p, self.explicit_attention = H, p, explicit_attention
        self.ln_1 = LayerNorm(C, bias)
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = LayerNorm(C, bias)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp_proj = nn.Linear(4 * C, C, bias=bias)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v, self.p if self.training else 0.0,
                             self.explicit_attention)  # [B, H, T, D]
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return F.dropout(self.c_proj(y), self.p, self.training)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        h = self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x + F.dropout(h, self.p, self.training)


class GPT(nn.Module):
    def __init__(self, L, H, C, V, T, p, remat=False, explicit_attention=False, bias=True):
        super().__init__()
        assert C % H == 0, f"width {C} must be a multiple of the heads {H}"
        self.p, self.remat = p, remat
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, H, p, explicit_attention, bias) for _ in range(L))
        self.ln_f = LayerNorm(C, bias)
        for name, w in self.named_parameters():
            if w.dim() >= 2:
                # Residual projections are scaled so that the residual stream's variance does not
                # grow with depth (GPT-2's initialisation, tilegrad's too).
                residual = name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight")
                nn.init.normal_(w, 0.0, 0.02 / math.sqrt(2 * L) if residual else 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(w)

    def forward(self, idx, targets):
        T = idx.size(1)
        pos = torch.arange(T, device=idx.device)
        x = F.dropout(self.wte(idx) + self.wpe(pos), self.p, self.training)  # [B, T, C]
        for block in self.h:
            if self.remat and self.training:
                # Keeps only each block's input; the backward replays the block (dropout masks
                # included: checkpoint restores the RNG state), as tilegrad's remat every:1.
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # the tied head: [B, T, V]
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
