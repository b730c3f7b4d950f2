"""A deliberately small network for tests and smoke runs: same contract as the real ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dbd_core.nets.registry import NetOutput, register


class TinyNet(nn.Module):
    """Two-scale conv net (~10k parameters). Not a product model: tests use it to stay fast."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.enc2 = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.side = nn.Conv2d(width, 1, 1)
        self.head = nn.Conv2d(2 * width, 1, 1)

    def forward(self, x: torch.Tensor, sides: bool = True) -> NetOutput:
        h, w = x.shape[-2:]
        f1 = self.enc1(x - 0.5)
        f2 = self.enc2(f1)
        up = F.interpolate(f2, size=(h, w), mode="bilinear", align_corners=False)
        side = [F.interpolate(self.side(f2), size=(h, w), mode="bilinear", align_corners=False)] if sides else []
        return NetOutput(logits=self.head(torch.cat([f1, up], 1)), sides=side, features=[f1, f2])


@register("tiny", "tiny test network (not for real use)")
def build_tiny(width: int = 16) -> TinyNet:
    return TinyNet(width)
