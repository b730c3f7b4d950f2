"""The student: a compact blur detector for small devices (budget: <= 1.5 M parameters, <= 1 GFLOP and about
15 ms on a 2-core CPU at 320x320), trained by distillation from the teacher.

Design, driven by what costs time on a CPU (memory traffic of wide high-resolution maps, not multiply-adds):
  * context path: the pretrained Lite0 encoder up to stride 16 (levels 1-4) runs on the image at half
    resolution, so its outputs sit at strides 4, 8, 16, 32 of the photo. The expensive part of Lite0 is its
    96/144-channel expansions at strides 2-4; at half resolution they cost a quarter;
  * detail path: the same pretrained stem (shared weights: 32 edge/texture filters) on the full-resolution
    image gives stride-2 features, where fine blur cues (a 1.5 px disk) survive. Lite0's first block is
    left out here: its 32-channel depthwise pass at stride 2 alone cost 1.4 ms;
  * a light top-down decoder (1x1 laterals, depthwise-separable merges, a CAM on the deepest level), side
    outputs at strides 16 and 4 for deep supervision, a stride-2 head;
  * ``detail_blocks`` residual blocks on the merged stride-2 map (0 up to v0.4, 2 from v0.5: student_stage8.toml
    grew v0.4 by them; they start as the identity, so the grown network begins with its parent's maps);
  * no full-resolution stage: a 4->8->1 conv refinement on (image, map) at 320x320 cost 2 ms (a quarter of
    the whole network) for edges that the stride-2 detail path already resolves; the stride-2 map is
    upsampled bilinearly.
Feature correspondence for distillation: ``features[i]`` has stride ``feature_strides[i]`` = 2, 4, 8, 16, 32,
the same as the teacher's ``features[i]``; channels are in ``feature_channels`` (adapters are the trainer's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dbd_core.nets.backbone import LEVEL_CHANNELS, EfficientNetLite0
from dbd_core.nets.blocks import CAM, ConvBNReLU, SeparableConv, upsample_to
from dbd_core.nets.registry import NetOutput, register


class DetailBlock(nn.Module):
    """Residual block at stride 2: depthwise 3x3 then 1x1 (with a 1x1 expansion first if ``expand`` > 1),
    added to the input. A 3x expansion cost 3.4 ms a block at 320x320, the plain form 0.5 ms. The last
    BatchNorm starts at zero scale, so a new block is the identity: a grown network computes
    exactly what the weights it grew from did, and training decides what the block adds."""

    def __init__(self, channels: int, expand: int = 1):
        super().__init__()
        hidden = channels * expand
        expansion = [ConvBNReLU(channels, hidden, 1)] if expand > 1 else []
        self.body = nn.Sequential(
            *expansion,
            ConvBNReLU(hidden, hidden, 3, groups=hidden),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class CompactStudent(nn.Module):
    def __init__(self, width: int = 24, detail_width: int = 16, pretrained: bool = True, freeze_levels: int = 0,
                 detail_blocks: int = 0):
        super().__init__()
        # levels=4: Lite0 up to its stride-16 stage (112 channels), no 192/320-channel stages.
        self.encoder = EfficientNetLite0(pretrained=pretrained, levels=4, head=False, freeze_levels=freeze_levels)
        enc_ch = LEVEL_CHANNELS[:4]  # 16, 24, 40, 112 -> photo strides 4, 8, 16, 32
        self.feature_channels = (detail_width, width, width, width, width)
        self.feature_strides = (2, 4, 8, 16, 32)

        self.top = nn.Sequential(ConvBNReLU(enc_ch[3], width, 1), CAM(width))
        self.laterals = nn.ModuleList(ConvBNReLU(c, width, 1) for c in enc_ch[:3])
        self.merges = nn.ModuleList(SeparableConv(width, width) for _ in enc_ch[:3])
        self.detail_lateral = ConvBNReLU(32, detail_width, 1)
        self.detail_reduce = ConvBNReLU(width, detail_width, 1)
        self.detail_merge = SeparableConv(detail_width, detail_width)
        # Optional depth at stride 2, the finest level, where a 1.5 px blur is still visible (the context path
        # sees the photo at half size). 0 = the shipped v0.1-v0.4 architecture.
        self.detail_blocks = nn.Sequential(*(DetailBlock(detail_width) for _ in range(detail_blocks)))

        self.side16 = nn.Conv2d(width, 1, 1)
        self.side4 = nn.Conv2d(width, 1, 1)
        self.head = nn.Conv2d(detail_width, 1, 1)  # a 3x3 head with 1 output channel cost 0.4 ms at stride 2
        # NHWC ("channels_last") weights and activations: oneDNN's depthwise and 1x1 convs run about 25-30%
        # faster in this layout on CPU. Loading a state dict keeps the layout (copy_ preserves strides).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, sides: bool = True) -> NetOutput:
        size = x.shape[-2:]
        # Normalise and halve in plain NCHW, then switch layout: both are elementwise/linear (so the order
        # does not change the result) and both ran 3-5x slower on a channels-last 3-channel image.
        x = EfficientNetLite0.normalize(x)
        # Half size rounded up: ceil(ceil(H/2)/2^k) == ceil(H/2^(k+1)), so every level matches the teacher's.
        # (Bilinear at exactly 1/2 is the 2x2 mean, and 5x cheaper than avg_pool2d with ceil_mode here.)
        half = F.interpolate(x, size=((size[0] + 1) // 2, (size[1] + 1) // 2), mode="bilinear",
                             align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        half = half.contiguous(memory_format=torch.channels_last)
        detail = self.encoder.stem(x, normalized=True)  # stride 2, 32 channels
        e = self.encoder.features(half, normalized=True)  # strides 4, 8, 16, 32 of the photo

        p = [None, None, None, None, self.top(e[3])]
        for i in (2, 1, 0):  # strides 16, 8, 4
            p[i + 1] = self.merges[i](self.laterals[i](e[i]) + upsample_to(p[i + 2], e[i]))
        p[0] = self.detail_merge(self.detail_lateral(detail) + upsample_to(self.detail_reduce(p[1]), detail))
        if len(self.detail_blocks):
            p[0] = self.detail_blocks(p[0])

        logits = upsample_to(self.head(p[0]), size)
        side_maps = [upsample_to(self.side16(p[3]), size), upsample_to(self.side4(p[1]), size)] if sides else []
        return NetOutput(logits=logits, sides=side_maps, features=p)


@register("student", "compact Lite0-based student (<= 1.5 M params, <= 1 GFLOP at 320x320)")
def build_student(width: int = 24, detail_width: int = 16, pretrained: bool = True,
                  freeze_levels: int = 0, detail_blocks: int = 0) -> CompactStudent:
    return CompactStudent(width=width, detail_width=detail_width, pretrained=pretrained,
                          freeze_levels=freeze_levels, detail_blocks=detail_blocks)
