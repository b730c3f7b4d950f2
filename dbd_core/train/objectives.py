"""What one training step does: the supervised objective (teacher recipe, fine-tuning) and the shared
adversary machinery. The student's distillation objective lives in distill.py.

An objective owns its networks and optimizers; ``train_step(batch)`` runs the generator update, then
the discriminator updates, and returns the loss terms as floats. Losses are checked for NaN/Inf
before any optimizer step, so a diverging step never reaches the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from dbd_core.train import losses as L


class NonFiniteLoss(RuntimeError):
    def __init__(self, term: str, value: float):
        self.term, self.value = term, value
        super().__init__(f"loss term {term!r} is {value}")


def check_finite(terms: dict[str, torch.Tensor], any_rank=None) -> None:
    bad = [(k, float(v.detach())) for k, v in terms.items() if not torch.isfinite(v.detach()).all()]
    # In DDP every rank must stop together, or the others would hang in the next all-reduce.
    flag = any_rank(bool(bad)) if any_rank is not None else bool(bad)
    if flag:
        raise NonFiniteLoss(*(bad[0] if bad else ("(another rank)", float("nan"))))


def labelled_of(batch: dict, like: torch.Tensor) -> torch.Tensor:
    """Boolean per item: has a ground-truth mask (unlabelled items carry an all-zero placeholder)."""
    flags = batch.get("has_mask", True)
    return torch.as_tensor(flags, dtype=torch.bool, device=like.device).reshape(-1).expand(like.shape[0])


def take(x, keep: torch.Tensor):
    """Items ``keep`` of a tensor or NetOutput; all items = the object itself (bit-identical losses)."""
    if bool(keep.all()):
        return x
    if torch.is_tensor(x):
        return x[keep]
    return type(x)(x.logits[keep], [s[keep] for s in x.sides])


def unwrap(m: nn.Module) -> nn.Module:
    return getattr(m, "module", m)


def make_optimizer(params, lr: float, cfg: dict, network: bool = True) -> torch.optim.Optimizer:
    """AdamW, or for the network alone ``optim.name = "sgd"`` (Nesterov momentum ``optim.momentum``), which
    moves each weight in proportion to its gradient where a fresh Adam state steps every weight by up to lr.
    (Continuing the released teacher with SGD degraded it just as AdamW did, teacher_stage6.toml: the cause was
    the BatchNorm statistics, teacher_stage7.toml.) Discriminators, new in every run, stay on AdamW."""
    o = cfg["optim"]
    trainable = [p for p in params if p.requires_grad]
    if network and o["name"] == "sgd":
        return torch.optim.SGD(trainable, lr=lr, momentum=o["momentum"], nesterov=o["momentum"] > 0,
                               weight_decay=o["weight_decay"])
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=o["weight_decay"], betas=tuple(o["betas"]))


class Adversary:
    """One discriminator and its optimizer: D(image, map) judges ``real`` maps against ``fake`` ones.

    Generator terms call the raw network with its parameters frozen (requires_grad False), so the
    generator's backward pass never writes a gradient into D; D's own step sees only detached maps,
    so it never writes into the generator."""

    def __init__(self, name: str, d: nn.Module, cfg: dict, wrap=None):
        self.name = name
        self.raw = d
        self.net = wrap(d) if wrap is not None else d
        self.opt = make_optimizer(d.parameters(), cfg["discriminator"]["lr"], cfg, network=False)

    def generator_term(self, image: torch.Tensor, fake_prob: torch.Tensor) -> torch.Tensor:
        self.raw.requires_grad_(False)
        try:
            return L.adv_generator(self.raw(image, fake_prob))
        finally:
            self.raw.requires_grad_(True)

    def discriminator_loss(self, image, real_prob, fake_prob) -> torch.Tensor:
        # One forward on real and fake together: one DDP reduction per step.
        logits = self.net(torch.cat([image, image]), torch.cat([real_prob, fake_prob.detach()]))
        n = image.shape[0]
        return L.adv_discriminator(logits[:n], logits[n:])

    def step(self, loss: torch.Tensor, grad_clip: float) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), grad_clip)
        self.opt.step()


class SupervisedObjective:
    """Teacher recipe (content loss on fused + side outputs, optional D1 adversary) and fine-tuning."""

    def __init__(self, cfg: dict, model: nn.Module, *, build_d=None, wrap=None, any_rank=None):
        self.cfg, self.any_rank = cfg, any_rank
        self.raw = model
        self.model = wrap(model) if wrap is not None else model
        self.opt = make_optimizer(model.parameters(), cfg["optim"]["lr"], cfg)
        lw = cfg["loss"]
        self.adversaries: dict[str, Adversary] = {}
        if lw["adv"] > 0 and build_d is not None:
            self.adversaries["d1"] = Adversary("d1", build_d(), cfg, wrap)

    # --- what the loop checkpoints -------------------------------------------------------------
    def state_modules(self) -> dict[str, nn.Module]:
        return {"model": self.raw, **{k: a.raw for k, a in self.adversaries.items()}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.opt, **{k: a.opt for k, a in self.adversaries.items()}}

    def train(self) -> None:
        self.model.train()
        for a in self.adversaries.values():
            a.net.train()

    # --- one step --------------------------------------------------------------------------------
    def content(self, out, target) -> dict[str, torch.Tensor]:
        lw = self.cfg["loss"]
        return L.content_terms(out.logits, out.sides, target, bce_w=lw["bce"], region=lw["region"],
                               region_w=lw["region_weight"], side_w=lw["side_weight"])

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        image, mask = batch["image"], batch["mask"]
        labelled = labelled_of(batch, image)
        here = bool(labelled.any())
        out = self.model(image)
        # Photos without a mask (e.g. not yet annotated in the studio) teach nothing here; a batch without
        # any still runs every term at weight 0, so under DDP each rank's backward uses the same outputs
        # and launches the same gradient reductions.
        terms = self.content(take(out, labelled), take(mask, labelled)) if here else \
            {k: v * 0.0 for k, v in self.content(out, mask).items()}
        adv_on = self.adversaries and step >= self.cfg["loss"]["adv_start"]
        prob = torch.sigmoid(out.logits)
        if adv_on and here:
            terms["adv"] = self.cfg["loss"]["adv"] * self.adversaries["d1"].generator_term(
                take(image, labelled), take(prob, labelled))
        total = sum(terms.values())
        check_finite({**terms, "total": total}, self.any_rank)
        self._g_step(total)
        result = {k: float(v.detach()) for k, v in terms.items()}
        if adv_on:
            self._d_step("d1", image, mask, prob, labelled, result)
        result["total"] = float(total.detach())
        return result

    def _d_step(self, name: str, image, real, fake, keep: torch.Tensor, result: dict) -> None:
        """One update of adversary ``name`` on the items ``keep``. Under DDP its forward/backward are
        collective, so every rank must take it or none: when only some ranks hold such items, the others
        run it on their whole batch with a zero weight (zero gradient, same collectives)."""
        here = bool(keep.any())
        if not (self.any_rank(here) if self.any_rank is not None else here):
            return
        adv = self.adversaries[name]
        if here:
            dl = adv.discriminator_loss(take(image, keep), take(real, keep), take(fake, keep))
        else:
            dl = adv.discriminator_loss(image, real, fake) * 0.0
        check_finite({name: dl}, self.any_rank)
        adv.step(dl, self.cfg["optim"]["grad_clip"])
        if here:
            result[name] = float(dl.detach())

    def _g_step(self, total: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg["optim"]["grad_clip"]:
            torch.nn.utils.clip_grad_norm_([p for p in self.raw.parameters() if p.requires_grad],
                                           self.cfg["optim"]["grad_clip"])
        self.opt.step()

    @torch.no_grad()
    def val_loss(self, batch: dict) -> float:
        """Content loss of the current network on a validation batch (eval mode)."""
        out = unwrap(self.model)(batch["image"])
        return float(sum(self.content(out, batch["mask"]).values()))
