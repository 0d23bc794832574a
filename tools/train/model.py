"""DiffusionVL-QwenVL at small width, in plain PyTorch: Qwen2.5-VL vision tower (no merger) + PatchMerger projector +
Qwen2.5-style decoder. Every operation mirrors what the project's converter builds into ONNX (RMSNorm in float32 with
the weight applied after the cast, 1-D text RoPE with rotate_half, GQA, 2-D vision RoPE, exact-erf GELU in the
merger, SwiGLU MLPs), so the converted model reproduces this one.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TextDims:
    vocab_size: int
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads


@dataclass
class VisionDims:
    depth: int = 2
    hidden_size: int = 64
    num_heads: int = 2
    intermediate_size: int = 128
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    in_channels: int = 3
    window_size: int = 112
    out_hidden_size: int = 128
    # Every block attends to the whole image: window attention then needs no emulation here.
    fullatt_block_indexes: list = field(default_factory=list)

    @property
    def head_dim(self):
        return self.hidden_size // self.num_heads


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attention(q, k, v, mask):
    """q [B,h,S,D], k/v [B,h,T,D], additive mask broadcastable to [B,h,S,T]."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(q.dtype), v)


# ----------------------------------------------------------------------------- vision


def vision_rotary(grid_h, grid_w, head_dim, merge=2):
    """cos/sin [N, head_dim] in processor row order (2x2 merge units in raster order, then inside each unit)."""
    dim = head_dim // 2
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    lw = grid_w // merge
    n = grid_h * grid_w
    row = torch.arange(n)
    unit, inner = row // (merge * merge), row % (merge * merge)
    hp = (unit // lw) * merge + inner // merge
    wp = (unit % lw) * merge + inner % merge
    ang = torch.cat([hp[:, None].float() * inv[None], wp[:, None].float() * inv[None]], dim=-1)
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


class VisionBlock(nn.Module):
    def __init__(self, d: VisionDims):
        super().__init__()
        c, i = d.hidden_size, d.intermediate_size
        self.heads = d.num_heads
        self.norm1 = RMSNorm(c)
        self.norm2 = RMSNorm(c)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(c, 3 * c)
        self.attn.proj = nn.Linear(c, c)
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(c, i)
        self.mlp.up_proj = nn.Linear(c, i)
        self.mlp.down_proj = nn.Linear(i, c)

    def forward(self, x, cos, sin):
        b, n, c = x.shape
        h = self.norm1(x)
        qkv = self.attn.qkv(h).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [b, heads, n, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = attention(q, k, v, None).transpose(1, 2).reshape(b, n, c)
        x = x + self.attn.proj(o)
        h = self.norm2(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class VisionTower(nn.Module):
    """Qwen2.5-VL ViT without its merger (the projector below is the merger)."""

    def __init__(self, d: VisionDims):
        super().__init__()
        self.d = d
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Module()
        fan = d.in_channels * d.temporal_patch_size * d.patch_size ** 2
        self.patch_embed.proj.weight = nn.Parameter(
            torch.randn(d.hidden_size, d.in_channels, d.temporal_patch_size, d.patch_size, d.patch_size) / math.sqrt(fan)
        )
        self.blocks = nn.ModuleList([VisionBlock(d) for _ in range(d.depth)])

    def forward(self, patches, grid_h, grid_w):
        """patches [B, N, C*T*P*P] (same grid for the batch) -> [B, N, hidden]."""
        w = self.patch_embed.proj.weight.reshape(self.d.hidden_size, -1)
        x = patches @ w.t()
        cos, sin = vision_rotary(grid_h, grid_w, self.d.head_dim, self.d.spatial_merge_size)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return x


class Projector(nn.Module):
    """Qwen2.5-VL PatchMerger: ln_q, 2x2 concat, Linear, GELU (erf), Linear."""

    def __init__(self, d: VisionDims):
        super().__init__()
        m = d.hidden_size * d.spatial_merge_size ** 2
        self.unit = d.spatial_merge_size ** 2
        self.ln_q = RMSNorm(d.hidden_size)
        self.mlp = nn.Sequential(nn.Linear(m, m), nn.GELU(approximate="none"), nn.Linear(m, d.out_hidden_size))

    def forward(self, x):
        b, n, c = x.shape
        return self.mlp(self.ln_q(x).reshape(b, n // self.unit, c * self.unit))


# ----------------------------------------------------------------------------- text


def text_rotary(positions, head_dim, theta):
    """positions [..., S] (int) -> cos/sin [..., S, head_dim], angles as exact float32 products."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = positions.float()[..., None] * inv
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


class DecoderLayer(nn.Module):
    def __init__(self, t: TextDims):
        super().__init__()
        h, hd = t.hidden_size, t.head_dim
        self.nh, self.nkv, self.hd = t.num_attention_heads, t.num_key_value_heads, hd
        self.input_layernorm = RMSNorm(h, t.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(h, t.rms_norm_eps)
        self.self_attn = nn.Module()
        self.self_attn.q_proj = nn.Linear(h, self.nh * hd)
        self.self_attn.k_proj = nn.Linear(h, self.nkv * hd)
        self.self_attn.v_proj = nn.Linear(h, self.nkv * hd)
        self.self_attn.o_proj = nn.Linear(self.nh * hd, h, bias=False)
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(h, t.intermediate_size, bias=False)
        self.mlp.up_proj = nn.Linear(h, t.intermediate_size, bias=False)
        self.mlp.down_proj = nn.Linear(t.intermediate_size, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        a = self.self_attn
        h = self.input_layernorm(x)
        q = a.q_proj(h).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = a.k_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = a.v_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        c, sn = cos[:, None], sin[:, None]
        q = q * c + rotate_half(q) * sn
        k = k * c + rotate_half(k) * sn
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        o = attention(q, k, v, mask).transpose(1, 2).reshape(b, s, self.nh * self.hd)
        x = x + a.o_proj(o)
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class DiffusionVL(nn.Module):
    def __init__(self, t: TextDims, v: VisionDims):
        super().__init__()
        self.t, self.v = t, v
        self.vision_tower = VisionTower(v)
        self.mm_projector = Projector(v)
        self.embed_tokens = nn.Embedding(t.vocab_size, t.hidden_size)
        nn.init.normal_(self.embed_tokens.weight, std=0.02 * math.sqrt(t.hidden_size) / 4)
        self.layers = nn.ModuleList([DecoderLayer(t) for _ in range(t.num_hidden_layers)])
        self.norm = RMSNorm(t.hidden_size, t.rms_norm_eps)
        self.lm_head = nn.Linear(t.hidden_size, t.vocab_size, bias=False)

    def encode_images(self, patches, grid_h, grid_w):
        return self.mm_projector(self.vision_tower(patches, grid_h, grid_w))

    def decode(self, embeds, positions, mask):
        """embeds [B,S,H], positions [B,S] (int), additive mask [B,1,S,S] -> hidden after the final norm."""
        cos, sin = text_rotary(positions, self.t.head_dim, self.t.rope_theta)
        x = embeds
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)
