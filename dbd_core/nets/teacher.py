"""The teacher: DeFusionNet (Tang et al., CVPR 2019 / TPAMI 2020) rebuilt on EfficientNet-Lite0, with the
DenseASPP + non-local bottleneck of Distill-DBDGAN's teacher, sized to train on a 2-core CPU.

Data flow (levels 0..4 = backbone strides 2, 4, 8, 16, 32):
  1. every level is reduced to a common width (level 0, at stride 2, to half of it: it holds 3/4 of all
     positions and dominates the cost); the deepest level first goes through DenseASPP and non-local
     attention for image-wide context;
  2. shallow levels 0-2 are fused into FSHF (at stride 4) and deep levels 3-4 into FSEF (at stride 16), each
     by an FFRM (CAM on the concatenation, then 1x1) followed by a FAM;
  3. cross-layer refinement, ``steps`` times with shared weights (recurrent): FSEF refines each shallow level
     (semantics suppress low-contrast sharp areas that look blurred), FSHF refines each deep level (detail
     sharpens coarse boundaries); every level predicts a side map; FSHF/FSEF are then re-fused from the
     refined levels for the next step;
  4. the final map is a learnt 1x1 fusion of all levels' last-step side maps.
Outputs (see registry.NetOutput): ``logits`` = fused map; ``sides`` = steps x 5 side maps, step-major,
shallow->deep within a step (all B x 1 x H x W logits); ``features`` = the 5 refined level features after
the last step, shallow->deep (strides in ``feature_strides``, channels in ``feature_channels``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dbd_core.nets.backbone import LEVEL_CHANNELS, LEVEL_STRIDES, EfficientNetLite0
from dbd_core.nets.blocks import FAM, FFRM, ConvBNReLU, DenseASPP, NonLocal, SeparableConv, resize_to, upsample_to
from dbd_core.nets.registry import NetOutput, register

SHALLOW = (0, 1, 2)
DEEP = (3, 4)


class Refine(nn.Module):
    """Residual refinement of one level by a fused guide: relu(f + BN(1x1(dw3x3([f, guide]))))."""

    def __init__(self, channels: int, guide_channels: int):
        super().__init__()
        cin = channels + guide_channels
        self.body = nn.Sequential(
            ConvBNReLU(cin, cin, 3, groups=cin),
            nn.Conv2d(cin, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, f: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return F.relu(f + self.body(torch.cat([f, guide], 1)))


class DeFusionTeacher(nn.Module):
    def __init__(self, width: int = 48, steps: int = 3, aspp_width: int = 32, pretrained: bool = True,
                 freeze_levels: int = 0):
        super().__init__()
        if steps < 1:
            raise ValueError("steps must be >= 1")
        self.steps = steps
        self.encoder = EfficientNetLite0(pretrained=pretrained, levels=5, head=False, freeze_levels=freeze_levels)
        widths = (max(8, width // 2), width, width, width, width)
        self.feature_channels = widths
        self.feature_strides = LEVEL_STRIDES

        # Deepest level: 320 -> 96 channels, DenseASPP (multi-scale context), non-local (global context).
        deep_in = 96
        self.context = nn.Sequential(ConvBNReLU(LEVEL_CHANNELS[4], deep_in, 1), DenseASPP(deep_in, aspp_width))
        ctx_ch = self.context[1].out_channels
        self.nonlocal_attn = NonLocal(ctx_ch)
        self.reduce = nn.ModuleList(
            [SeparableConv(c, w) for c, w in zip(LEVEL_CHANNELS[:4], widths[:4])] + [ConvBNReLU(ctx_ch, widths[4], 1)]
        )

        self.fuse_shallow = FFRM(sum(widths[i] for i in SHALLOW), width)
        self.fuse_deep = FFRM(sum(widths[i] for i in DEEP), width)
        self.fam_shallow = FAM(width)
        self.fam_deep = FAM(width)
        self.refine = nn.ModuleList(Refine(w, width) for w in widths)
        self.side_heads = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in widths)
        self.fuse_out = nn.Conv2d(len(widths), 1, 1)
        # Start the fusion as the mean of the side maps: a sensible map from step one of training.
        nn.init.constant_(self.fuse_out.weight, 1.0 / len(widths))
        nn.init.zeros_(self.fuse_out.bias)
        # NHWC ("channels_last") layout: oneDNN's depthwise/1x1 convs run ~30% faster on CPU, in training too.
        # Loading a state dict keeps the layout (copy_ preserves strides).
        self.to(memory_format=torch.channels_last)

    def _fshf(self, feats: list[torch.Tensor]) -> torch.Tensor:
        ref = feats[1]  # stride 4: fine enough for edges, 4x cheaper than stride 2
        return self.fam_shallow(self.fuse_shallow([resize_to(feats[i], ref) for i in SHALLOW]))

    def _fsef(self, feats: list[torch.Tensor]) -> torch.Tensor:
        ref = feats[3]  # stride 16
        return self.fam_deep(self.fuse_deep([resize_to(feats[i], ref) for i in DEEP]))

    def forward(self, x: torch.Tensor, sides: bool = True) -> NetOutput:
        size = x.shape[-2:]
        x = x.contiguous(memory_format=torch.channels_last)
        enc = self.encoder.features(x)
        deepest = self.nonlocal_attn(self.context(enc[4]))
        feats = [r(f) for r, f in zip(self.reduce, enc[:4] + [deepest])]

        fshf, fsef = self._fshf(feats), self._fsef(feats)
        side_maps: list[torch.Tensor] = []
        last: list[torch.Tensor] = []
        for step in range(self.steps):
            feats = [
                self.refine[i](f, resize_to(fsef if i in SHALLOW else fshf, f)) for i, f in enumerate(feats)
            ]
            final = step + 1 == self.steps
            if sides or final:  # inference needs only the last step's maps, which the fusion reads
                last = [upsample_to(head(f), size) for head, f in zip(self.side_heads, feats)]
                if sides:
                    side_maps.extend(last)
            if not final:
                fshf, fsef = self._fshf(feats), self._fsef(feats)
        fused = self.fuse_out(torch.cat(last, 1))
        return NetOutput(logits=fused, sides=side_maps, features=feats)


@register("teacher", "DeFusionNet-style teacher on EfficientNet-Lite0 (FFRM/FAM cross-layer refinement, "
                     "DenseASPP + non-local, deep supervision)")
def build_teacher(width: int = 48, steps: int = 3, aspp_width: int = 32, pretrained: bool = True,
                  freeze_levels: int = 0) -> DeFusionTeacher:
    return DeFusionTeacher(width=width, steps=steps, aspp_width=aspp_width, pretrained=pretrained,
                           freeze_levels=freeze_levels)
