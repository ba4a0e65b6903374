#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# make_train_fixture.py: writes tests/data/train/ref.bin, the independent PyTorch reference
# for test_model — a small Llama (GQA, untied) written here from scratch in torch, its initial
# weights, one batch with masked targets, the mean cross-entropy loss, the gradient of every
# parameter, and the losses of 10 AdamW steps (torch.optim.AdamW, clip_grad_norm_, warmup +
# cosine schedule as in kiln's lr_at). Run once with Debian's python3-torch:
#
#     /usr/bin/python3 tests/tools/make_train_fixture.py tests/data/train/ref.bin
#
# Byte layout (little-endian): "KILNREF1"; int32 vocab, dim, layers, heads, kv_heads, ffn, B,
# T, tied, n_params; float64 lr, weight_decay, beta1, beta2, eps, clip, min_ratio; int32
# warmup, total; float32 params[n_params] in kiln's slab order (embed, per layer ln1 q k v o
# ln2 gate up down, norm, lm_head); int32 tokens[B*T], targets[B*T] (-1 = not scored);
# float64 loss; float32 grads[n_params]; int32 steps; float64 losses[steps].
import math
import struct
import sys

import torch

V, D, L, H, KV, F, B, T = 64, 32, 2, 4, 2, 64, 3, 12
HD = D // H
EPS, THETA = 1e-5, 10000.0
LR, WD, B1, B2, AEPS, CLIP, MINR, WARM, TOTAL = 1e-2, 0.1, 0.9, 0.95, 1e-8, 1.0, 0.1, 2, 10

torch.manual_seed(1234)


def param(*shape, std=0.05):
    return torch.nn.Parameter(torch.randn(*shape) * std)


def norm_param():
    return torch.nn.Parameter(1.0 + 0.1 * torch.randn(D))


names, params = [], []


def add(name, p):
    names.append(name)
    params.append(p)
    return p


emb = add("model.embed_tokens.weight", param(V, D))
layers = []
for l in range(L):
    pre = f"model.layers.{l}."
    layers.append(dict(
        ln1=add(pre + "input_layernorm.weight", norm_param()),
        q=add(pre + "self_attn.q_proj.weight", param(H * HD, D)),
        k=add(pre + "self_attn.k_proj.weight", param(KV * HD, D)),
        v=add(pre + "self_attn.v_proj.weight", param(KV * HD, D)),
        o=add(pre + "self_attn.o_proj.weight", param(D, H * HD)),
        ln2=add(pre + "post_attention_layernorm.weight", norm_param()),
        gate=add(pre + "mlp.gate_proj.weight", param(F, D)),
        up=add(pre + "mlp.up_proj.weight", param(F, D)),
        down=add(pre + "mlp.down_proj.weight", param(D, F)),
    ))
normw = add("model.norm.weight", norm_param())
head = add("lm_head.weight", param(V, D))


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2).float() / HD))
freqs = torch.outer(torch.arange(T).float(), inv_freq)
cos = torch.cat([freqs, freqs], -1).cos()
sin = torch.cat([freqs, freqs], -1).sin()


def rotate_half(x):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return torch.cat([-x2, x1], -1)


def forward(tokens):
    x = emb[tokens]  # (B,T,D)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for w in layers:
        h = rmsnorm(x, w["ln1"])
        q = (h @ w["q"].T).view(B, T, H, HD).transpose(1, 2)
        k = (h @ w["k"].T).view(B, T, KV, HD).transpose(1, 2)
        v = (h @ w["v"].T).view(B, T, KV, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + mask, -1)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * HD)
        x = x + o @ w["o"].T
        h = rmsnorm(x, w["ln2"])
        x = x + (torch.nn.functional.silu(h @ w["gate"].T) * (h @ w["up"].T)) @ w["down"].T
    return rmsnorm(x, normw) @ head.T


tokens = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B, T))
targets[0, :4] = -1  # completion-only style mask
targets[2, 9:] = -1  # padding style mask


def loss_fn():
    logits = forward(tokens)
    return torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1),
                                             ignore_index=-1)


def lr_at(step):
    if WARM > 0 and step <= WARM:
        return LR * step / WARM
    prog = min(1.0, max(0.0, (step - WARM) / (TOTAL - WARM)))
    return LR * (MINR + (1 - MINR) * 0.5 * (1 + math.cos(math.pi * prog)))


init = [p.detach().clone() for p in params]
loss = loss_fn()
loss.backward()
grads = [p.grad.detach().clone() for p in params]

decay = [p for p in params if p.dim() == 2]
no_decay = [p for p in params if p.dim() == 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=LR, betas=(B1, B2), eps=AEPS)
losses = []
for step in range(1, TOTAL + 1):
    opt.zero_grad()
    l = loss_fn()
    l.backward()
    torch.nn.utils.clip_grad_norm_(params, CLIP)
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    opt.step()
    losses.append(l.item())

n_params = sum(p.numel() for p in init)
out = bytearray(b"KILNREF1")
out += struct.pack("<10i", V, D, L, H, KV, F, B, T, 0, n_params)
out += struct.pack("<7d", LR, WD, B1, B2, AEPS, CLIP, MINR)
out += struct.pack("<2i", WARM, TOTAL)
for p in init:
    out += p.contiguous().view(-1).numpy().astype("<f4").tobytes()
out += tokens.view(-1).numpy().astype("<i4").tobytes()
out += targets.view(-1).numpy().astype("<i4").tobytes()
out += struct.pack("<d", loss.item())
for g in grads:
    out += g.contiguous().view(-1).numpy().astype("<f4").tobytes()
out += struct.pack("<i", len(losses))
out += struct.pack(f"<{len(losses)}d", *losses)
with open(sys.argv[1], "wb") as f:
    f.write(out)
print(f"{sys.argv[1]}: {len(out)} bytes, loss {loss.item():.6f}, "
      f"losses {losses[0]:.4f} .. {losses[-1]:.4f}")
