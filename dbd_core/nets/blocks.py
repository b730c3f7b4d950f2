"""Building blocks of the blur detectors: channel attention (CAM), feature adaptation (FAM), feature fusing and
refining (FFRM), DenseASPP and non-local self-attention, plus the small conv helpers they share.

Where a 3x3 conv is applied to wide or high-resolution maps we use depthwise-separable convs: on a 2-core CPU
they cost about 1/C of a full conv and the accuracy loss for dense prediction is small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to the spatial size of ``ref`` (a tensor or an (H, W) tuple); no-op when equal."""
    size = tuple(ref.shape[-2:]) if isinstance(ref, torch.Tensor) else tuple(ref)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Resize to ``ref``'s size: average pooling when shrinking (keeps all evidence), bilinear when growing."""
    h, w = ref.shape[-2:]
    if x.shape[-2] >= h and x.shape[-1] >= w:
        return x if x.shape[-2:] == (h, w) else F.adaptive_avg_pool2d(x, (h, w))
    return upsample_to(x, (h, w))


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``; in eval mode with the batch norm folded into the conv's weights.

    On a CPU an eval-mode batch norm is a full extra pass over the feature map (about a fifth of the
    student's time at 320x320). Folding gives the same function (to float rounding) in one conv. Without
    gradients the folded weights are cached; the cache is dropped by any training-mode forward (running
    statistics change there) and recomputed when a tensor's identity, storage or version changes
    (load_state_dict, optimiser steps and .to() all bump or replace them)."""
    if bn.training:
        # A training-mode batch norm updates its running statistics inside the kernel, without bumping their
        # version counters: drop the cache here rather than trust the key.
        bn._fold_cache = None
        return bn(conv(x))
    if torch.is_grad_enabled():
        weight, bias = _fold(conv, bn)
    else:
        # The key is built from the modules' own dicts: Module.__getattr__ and a generator made the
        # check cost 18 us per conv (0.9 ms of the student's ~15 ms forward); this form costs 5 us.
        cp, bp, bb = conv._parameters, bn._parameters, bn._buffers
        tensors = (cp["weight"], cp.get("bias"), bp["weight"], bp["bias"], bb["running_mean"], bb["running_var"])
        stamps = [None if t is None else (t.data_ptr(), t._version) for t in tensors]
        cache = bn.__dict__.get("_fold_cache")
        if cache is None or cache[1] != stamps or any(a is not b for a, b in zip(cache[0], tensors)):
            bn._fold_cache = (tensors, stamps, *_fold(conv, bn))
        _, _, weight, bias = bn._fold_cache
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    # Elementwise ops keep the weight's memory format (channels_last stays channels_last).
    return conv.weight * scale.view(-1, 1, 1, 1), bias


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, dilation: int = 1, groups: int = 1):
        pad = dilation * (kernel // 2)
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[2](conv_bn(self[0], self[1], x))


class SeparableConv(nn.Sequential):
    """Depthwise k x k (with optional dilation) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1):
        super().__init__(
            ConvBNReLU(cin, cin, kernel, dilation=dilation, groups=cin),
            ConvBNReLU(cin, cout, 1),
        )


class CAM(nn.Module):
    """Channel attention (DeFusionNet TPAMI): GAP and GMP through one shared MLP, summed, sigmoid gate.

    GAP summarises how much of the image a channel's response covers (size of blurred regions), GMP its peak
    strength (defocus intensity); the gate lets the fusion favour the channels that matter for this photo."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gap = F.adaptive_avg_pool2d(x, 1)
        gmp = F.adaptive_max_pool2d(x, 1)
        return x * torch.sigmoid(self.mlp(gap) + self.mlp(gmp))


class FAM(nn.Module):
    """Feature adaptation: two convs predict a per-position weight map; features are multiplied by it and the
    product is added back (residual), so fused features can be re-weighted where they help without being
    able to wipe out what they carry."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Sequential(
            SeparableConv(channels, max(8, channels // 2)),
            nn.Conv2d(max(8, channels // 2), 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x * torch.sigmoid(self.weight(x))


class FFRM(nn.Module):
    """Feature fusing and refining module: CAM over the concatenated features, then a 1x1 conv to ``cout``."""

    def __init__(self, cin: int, cout: int, reduction: int = 4):
        super().__init__()
        self.cam = CAM(cin, reduction)
        self.proj = ConvBNReLU(cin, cout, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.proj(self.cam(torch.cat(features, 1)))


class DenseASPP(nn.Module):
    """Densely connected atrous spatial pyramid (Yang et al. 2018, as in Distill-DBDGAN's teacher).

    Each branch sees the input plus every earlier branch's output, reduces it with a 1x1 conv and applies a
    dilated 3x3 conv (dilations 2/4/6/8 by default), so later branches combine several receptive fields.
    Output: ``cin + len(dilations) * width`` channels (input and all branches concatenated), see ``out_channels``.
    """

    def __init__(self, cin: int, width: int = 32, dilations: tuple[int, ...] = (2, 4, 6, 8),
                 separable: bool = False):
        super().__init__()
        self.branches = nn.ModuleList()
        ch = cin
        for d in dilations:
            if separable:  # depthwise dilated 3x3, then a 1x1 mixes channels again
                conv = [ConvBNReLU(width * 2, width * 2, 3, dilation=d, groups=width * 2),
                        ConvBNReLU(width * 2, width, 1)]
            else:
                conv = [ConvBNReLU(width * 2, width, 3, dilation=d)]
            self.branches.append(nn.Sequential(ConvBNReLU(ch, width * 2, 1), *conv))
            ch += width
        self.out_channels = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for branch in self.branches:
            feats.append(branch(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class NonLocal(nn.Module):
    """Self-attention over all positions (SAGAN form): query/key at C/8, value at C, output scaled by a learnable
    gamma that starts at 0 so the block begins as the identity and lets the network opt into global context."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # B x N x C/8
        k = self.key(x).flatten(2)  # B x C/8 x N
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # B x N x N, rows sum to 1
        v = self.value(x).flatten(2)  # B x C x N
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out
