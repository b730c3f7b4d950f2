"""Conditional PatchGAN discriminator for adversarial training of blur maps (Distill-DBDGAN's D1-D3).

It judges a (photo, map) pair, not the map alone: a map is only "real" if its blurred regions are where the
photo is blurred. Each output logit covers one receptive field (70x70 pixels with the default 3 downsamplings),
so it criticises local structure (edges of blurred regions, speckle) rather than global layout, which the
pixel losses already handle. Spectral norm on every conv keeps it 1-Lipschitz-ish, which stabilises GAN
training with small CPU batches where batch norm statistics would be noisy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dbd_core.nets.registry import register


class PatchDiscriminator(nn.Module):
    takes_map = True  # forward(image, map): lets generic tools (flops.count_flops) call it correctly

    def __init__(self, width: int = 16, n_down: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        cin, cout = 4, width
        for i in range(n_down):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            cin, cout = cout, min(cout * 2, width * 8)
        layers += [spectral_norm(nn.Conv2d(cin, cin, 4, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
        layers += [spectral_norm(nn.Conv2d(cin, 1, 4, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, blur_map: torch.Tensor) -> torch.Tensor:
        """image B x 3 x H x W in [0, 1], blur_map B x 1 x H x W in [0, 1] -> patch logits B x 1 x h x w
        (h ~ H / 2**n_down - 2; "real" = high)."""
        if image.shape[-2:] != blur_map.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape)} and map {tuple(blur_map.shape)} differ in size")
        # Both inputs centred on 0 so neither dominates the first conv.
        return self.net(torch.cat([image * 2 - 1, blur_map * 2 - 1], 1))


@register("patchgan", "conditional PatchGAN discriminator over (image, map)")
def build_patchgan(width: int = 16, n_down: int = 3) -> PatchDiscriminator:
    return PatchDiscriminator(width=width, n_down=n_down)
