#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# torch_train.py: the PyTorch side of bench_train.sh — trains the same Llama-style model
# (RMSNorm, rotate-half RoPE, SwiGLU, untied, AdamW + clipping) in float32 on random tokens and
# prints the median tokens/s over the steps after two warm-up steps.
#   torch_train.py VOCAB DIM LAYERS HEADS FFN T B STEPS THREADS
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

V, D, L, H, FF, T, B, STEPS, THREADS = map(int, sys.argv[1:10])
torch.set_num_threads(THREADS)
torch.manual_seed(0)
HD = D // H


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.Parameter(torch.ones(D))
        self.ln2 = torch.nn.Parameter(torch.ones(D))
        self.qkv = torch.nn.Linear(D, 3 * D, bias=False)
        self.o = torch.nn.Linear(D, D, bias=False)
        self.gu = torch.nn.Linear(D, 2 * FF, bias=False)
        self.down = torch.nn.Linear(FF, D, bias=False)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, D)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(L)])
        self.norm = torch.nn.Parameter(torch.ones(D))
        self.head = torch.nn.Linear(D, V, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
        f = torch.outer(torch.arange(T).float(), inv)
        self.register_buffer("cos", torch.cat([f, f], -1).cos())
        self.register_buffer("sin", torch.cat([f, f], -1).sin())
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def rope(self, x):
        x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
        return x * self.cos + torch.cat([-x2, x1], -1) * self.sin

    def forward(self, idx):
        x = self.emb(idx)
        for b in self.blocks:
            q, k, v = b.qkv(rms(x, b.ln1)).view(B, T, 3, H, HD).permute(2, 0, 3, 1, 4)
            q, k = self.rope(q), self.rope(k)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + self.mask, -1)
            x = x + b.o((att @ v).transpose(1, 2).reshape(B, T, D))
            g, u = b.gu(rms(x, b.ln2)).chunk(2, -1)
            x = x + b.down(F.silu(g) * u)
        return self.head(rms(x, self.norm))


m = Model()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
rates = []
for step in range(STEPS):
    idx = torch.randint(0, V, (B, T + 1))
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(idx[:, :-1]).reshape(-1, V), idx[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    rates.append(B * T / (time.perf_counter() - t0))
print(f"{statistics.median(rates[2:]):.1f}")
