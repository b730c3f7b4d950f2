"""Small data and networks for the training tests (made here, never from shared data)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from dbd_core.nets.registry import _REGISTRY, register
from dbd_core.train.config import validate


class BlurHalves(Dataset):
    """Random textures with the left or right part box-blurred; mask = the blurred part (1 = blurred).
    Item i is a pure function of (seed, i). ``unlabelled`` items report has_mask False."""

    def __init__(self, n: int = 16, size: int = 32, seed: int = 0, unlabelled: bool = False):
        self.n, self.size, self.seed, self.unlabelled = n, size, seed, unlabelled

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        s = self.size
        img = torch.rand(3, s, s, generator=g)
        blurred = F.avg_pool2d(F.pad(img[None], (2, 2, 2, 2), mode="replicate"), 5, stride=1)[0]
        cut = int(s * (0.3 + 0.4 * torch.rand(1, generator=g).item()))
        mask = torch.zeros(1, s, s)
        if i % 2:
            mask[..., :cut] = 1
        else:
            mask[..., cut:] = 1
        image = img * (1 - mask) + blurred * mask
        return {"image": image.float(), "mask": mask if not self.unlabelled else torch.zeros_like(mask),
                "has_mask": not self.unlabelled, "name": f"item{i:03d}"}


class MiniCritic(nn.Module):
    """A minimal conditional PatchGAN-like critic: D(image, map) -> patch logits."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, image, prob):
        return self.net(torch.cat([image - 0.5, prob - 0.5], 1))


def discriminator_name() -> str:
    """The product's "patchgan" once it exists, else the test critic registered under a test name."""
    from dbd_core.nets.registry import model_names

    if "patchgan" in model_names():
        return "patchgan"
    if "test_critic" not in _REGISTRY:
        register("test_critic", "tests only")(lambda width=8: MiniCritic(width))
    return "test_critic"


def tiny_config(kind: str = "teacher", steps: int = 40, **over) -> dict:
    raw = {
        "run": {"kind": kind, "steps": steps, "seed": 0, "threads": 1, "log_every": 1, "checkpoint_every": 0},
        "model": {"name": "tiny", "kwargs": {"width": 8}},
        "discriminator": {"name": discriminator_name(), "lr": 2e-4},
        "optim": {"lr": 1e-2, "warmup_steps": 2, "schedule": "cosine", "weight_decay": 0.0},
        "data": {"batch_size": 4, "size": 32},
        "loss": {"side_weight": 0.5},
    }
    for sec, vals in over.items():
        raw.setdefault(sec, {}).update(vals)
    return validate(raw, "test")


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_sharp_photos(root, names, size=(96, 80)) -> None:
    """scikit-image's bundled photos, shrunk to ``size`` (w, h), as PNGs in ``root``: a folder of sharp source
    photos for synthetic-data runs (grey ones become 3-channel, binary ones 0/255)."""
    import cv2
    import numpy as np
    from skimage import data as skdata

    for name in names:
        img = getattr(skdata, name)()
        img = (img * 255).astype(np.uint8) if img.dtype == bool else img.astype(np.uint8)
        img = np.dstack([img] * 3) if img.ndim == 2 else img[..., :3]
        cv2.imwrite(str(root / f"{name}.png"), cv2.resize(img, size, interpolation=cv2.INTER_AREA)[..., ::-1])
