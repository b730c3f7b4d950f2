"""The student's objective (Distill-DBDGAN): learn from the ground truth and from a frozen teacher.

Terms (each weighted from the config's [loss] section; weight 0 switches a term off):
  content      BCE + region term vs. ground truth on the fused map (+ side outputs)  -- labelled items only
  consistency  student probability vs. the teacher's soft target (MSE)               -- every item
  feature      attention transfer / pairwise similarity across matched scales        -- every item
  adv          D2: student map vs. ground truth (conditioned on the image)          -- labelled items only
  adv_distill  D3: student map vs. the teacher's map (the distillation adversary)    -- every item
Items without a mask (``has_mask`` False) therefore still teach through the teacher's soft targets.
"""

from __future__ import annotations

import torch
from torch import nn

from dbd_core.train import losses as L
from dbd_core.train.objectives import Adversary, SupervisedObjective, check_finite, labelled_of, take


class StudentObjective(SupervisedObjective):
    def __init__(self, cfg: dict, model: nn.Module, teacher: nn.Module, *, build_d=None, wrap=None, any_rank=None):
        lw = cfg["loss"]
        super().__init__(cfg, model, build_d=None, wrap=wrap, any_rank=any_rank)
        # The teacher is fixed: eval mode (BatchNorm uses running statistics), no gradients, not checkpointed.
        self.teacher = teacher.eval().requires_grad_(False)
        self.adversaries = {}
        if lw["adv"] > 0:
            self.adversaries["d2"] = Adversary("d2", build_d(), cfg, wrap)
        if lw["adv_distill"] > 0:
            self.adversaries["d3"] = Adversary("d3", build_d(), cfg, wrap)

    def train(self) -> None:
        super().train()
        self.teacher.eval()

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        lw = self.cfg["loss"]
        image, mask = batch["image"], batch["mask"]
        labelled = labelled_of(batch, image)
        here = bool(labelled.any())
        with torch.no_grad():
            t_out = self.teacher(image)
            t_prob = torch.sigmoid(t_out.logits)
            if lw["teacher_tta"] == "hflip":  # the feature term keeps the unmirrored pass's features
                mirrored = self.teacher(image.flip(-1), sides=False).logits
                t_prob = 0.5 * (t_prob + torch.sigmoid(mirrored).flip(-1))
        out = self.model(image)
        prob = torch.sigmoid(out.logits)
        terms: dict[str, torch.Tensor] = {}
        if lw["bce"] or lw["region_weight"]:
            # No labelled item in this batch: the same terms at weight 0, so under DDP every rank's backward
            # uses the same outputs (side maps included) and launches the same gradient reductions.
            terms.update(self.content(take(out, labelled), take(mask, labelled)) if here else
                         {k: v * 0.0 for k, v in self.content(out, mask).items()})
        else:
            terms["content"] = out.logits.sum() * 0.0  # keeps every parameter in the graph (DDP)
        if lw["consistency"]:
            terms["consistency"] = lw["consistency"] * L.consistency(out.logits, t_prob)
        if lw["feature"]:
            terms["feature"] = lw["feature"] * L.FEATURE[lw["feature_kind"]](out.features, t_out.features)
        adv_on = step >= lw["adv_start"]
        if adv_on and "d2" in self.adversaries and here:
            terms["adv"] = lw["adv"] * self.adversaries["d2"].generator_term(take(image, labelled),
                                                                             take(prob, labelled))
        if adv_on and "d3" in self.adversaries:
            terms["adv_distill"] = lw["adv_distill"] * self.adversaries["d3"].generator_term(image, prob)
        total = sum(terms.values())
        check_finite({**terms, "total": total}, self.any_rank)
        self._g_step(total)
        result = {k: float(v.detach()) for k, v in terms.items()}
        if adv_on:
            # D2 sees labelled items only: some ranks may have none in this batch (see _d_step).
            if "d2" in self.adversaries:
                self._d_step("d2", image, mask, prob, labelled, result)
            if "d3" in self.adversaries:
                self._d_step("d3", image, t_prob, prob, torch.ones_like(labelled), result)
        result["total"] = float(total.detach())
        return result
