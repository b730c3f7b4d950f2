"""Every loss term of the teacher and the student, each a small pure function of tensors.

Naming: ``logits`` are network outputs before the sigmoid; ``target`` is a {0,1} (or soft [0,1]) map of
the same shape, 1 = blurred. Each function returns a scalar tensor (mean over the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits (numerically safe for large logits); also takes soft targets."""
    return F.binary_cross_entropy_with_logits(logits, target)


def soft_iou(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft IoU per image, averaged. The region term: it weighs a small blurred region as much as a
    large one, which BCE alone (dominated by the majority class) does not. ``eps`` smooths the empty case."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    return (1 - (inter + eps) / (union + eps)).mean()


def dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


REGION = {"iou": soft_iou, "dice": dice}


def content_terms(logits: torch.Tensor, sides: list[torch.Tensor], target: torch.Tensor, *, bce_w: float,
                  region: str, region_w: float, side_w: float) -> dict[str, torch.Tensor]:
    """The content loss, by term: BCE + region term on the fused map and on every deep-supervision
    output. The side term is ``side_w`` times the MEAN over side outputs: DeFusionNet supervises every
    layer at every step (15 outputs here), and a plain sum would let them outweigh the fused map."""
    terms: dict[str, torch.Tensor] = {}
    region_fn = REGION.get(region)

    def one(x):
        v = bce_w * bce(x, target) if bce_w else x.new_zeros(())
        if region_fn is not None and region_w:
            v = v + region_w * region_fn(x, target)
        return v

    terms["content"] = one(logits)
    if sides and side_w:
        terms["side"] = side_w * sum(one(s) for s in sides) / len(sides)
    return terms


def consistency(student_logits: torch.Tensor, teacher_prob: torch.Tensor) -> torch.Tensor:
    """The student's map vs. the teacher's soft target: mean squared difference of probabilities.
    (Squared error on probabilities rather than soft BCE: bounded, and it does not push the student to
    copy the teacher's over-confident logits on pixels where both are already right.)"""
    return F.mse_loss(torch.sigmoid(student_logits), teacher_prob)


def attention_map(f: torch.Tensor) -> torch.Tensor:
    """Spatial attention of a feature map (Zagoruyko & Komodakis 2017): mean of squared activations over
    channels, L2-normalised per image. Channel-count agnostic, so teacher and student can differ."""
    a = f.pow(2).mean(1).flatten(1)
    return F.normalize(a, dim=1)


def match_scales(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Pairs (student index, teacher index) whose spatial sizes match best (nearest area ratio in log
    scale), one teacher feature per student feature."""
    pairs = []
    used: set[int] = set()
    for i, fs in enumerate(student):
        area = fs.shape[-1] * fs.shape[-2]
        cands = [(abs(torch.log(torch.tensor(area / (ft.shape[-1] * ft.shape[-2])))).item(), j)
                 for j, ft in enumerate(teacher) if j not in used]
        if not cands:
            break
        _, j = min(cands)
        used.add(j)
        pairs.append((i, j))
    return pairs


def _same_size(fs: torch.Tensor, ft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if fs.shape[-2:] != ft.shape[-2:]:
        ft = F.adaptive_avg_pool2d(ft, fs.shape[-2:]) if ft.shape[-1] >= fs.shape[-1] else \
            F.interpolate(ft, size=fs.shape[-2:], mode="bilinear", align_corners=False)
    return fs, ft


def attention_transfer(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Feature constraint, attention transfer: mean over matched scales of the squared distance
    between normalised attention maps. The teacher side carries no gradient."""
    pairs = match_scales(student, teacher)
    if not pairs:
        raise ValueError("feature distillation needs features from both networks (NetOutput.features)")
    total = 0.0
    for i, j in pairs:
        fs, ft = _same_size(student[i], teacher[j].detach())
        total = total + (attention_map(fs) - attention_map(ft)).pow(2).sum(1).mean()
    return total / len(pairs)


def pairwise_similarity(student: list[torch.Tensor], teacher: list[torch.Tensor], grid: int = 16) -> torch.Tensor:
    """Feature constraint, pairwise-similarity distillation (Liu et al., CVPR 2019): the cosine
    similarity between every pair of positions (pooled to ``grid`` x ``grid``) must match the teacher's."""
    pairs = match_scales(student, teacher)
    if not pairs:
        raise ValueError("feature distillation needs features from both networks (NetOutput.features)")
    total = 0.0
    for i, j in pairs:
        fs, ft = student[i], teacher[j].detach()
        g = (min(grid, fs.shape[-2]), min(grid, fs.shape[-1]))
        fs = F.normalize(F.adaptive_avg_pool2d(fs, g).flatten(2), dim=1)
        ft = F.normalize(F.adaptive_avg_pool2d(ft, g).flatten(2), dim=1)
        total = total + (fs.transpose(1, 2) @ fs - ft.transpose(1, 2) @ ft).pow(2).mean()
    return total / len(pairs)


FEATURE = {"attention": attention_transfer, "pairwise": pairwise_similarity}


def adv_generator(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial term (non-saturating GAN): make D call the generated map real."""
    return F.binary_cross_entropy_with_logits(d_fake_logits, torch.ones_like(d_fake_logits))


def adv_discriminator(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator's term: real -> 1, fake -> 0 (halved so it is on the generator term's scale)."""
    real = F.binary_cross_entropy_with_logits(d_real_logits, torch.ones_like(d_real_logits))
    fake = F.binary_cross_entropy_with_logits(d_fake_logits, torch.zeros_like(d_fake_logits))
    return 0.5 * (real + fake)
