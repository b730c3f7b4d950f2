"""Every loss term: known inputs give known values, and gradients reach only the right network."""

import math

import pytest
import torch

from dbd_core.train import losses as L
from dbd_core.train.objectives import Adversary
from train_fixtures import MiniCritic, tiny_config


def test_bce_known_value():
    logits = torch.zeros(1, 1, 2, 2)
    assert L.bce(logits, torch.ones_like(logits)).item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 100.0)  # saturated logits must not overflow
    assert L.bce(big, torch.ones_like(big)).item() == pytest.approx(0.0, abs=1e-6)


def test_iou_and_dice_known_values():
    t = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    perfect = (t * 2 - 1) * 50  # sigmoid ~ t
    assert L.soft_iou(perfect, t, eps=0).item() == pytest.approx(0.0, abs=1e-6)
    assert L.dice(perfect, t, eps=0).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.zeros_like(t)  # p = 0.5 everywhere: inter 1, union 2 + 2 - 1 = 3 -> IoU 1/3
    assert L.soft_iou(half, t, eps=0).item() == pytest.approx(1 - 1 / 3)
    assert L.dice(half, t, eps=0).item() == pytest.approx(1 - 2 * 1 / (2 + 2))


def test_content_terms_cover_side_outputs():
    t = torch.ones(1, 1, 2, 2)
    z = torch.zeros(1, 1, 2, 2)
    terms = L.content_terms(z, [z, z], t, bce_w=1.0, region="none", region_w=0.0, side_w=0.5)
    assert terms["content"].item() == pytest.approx(math.log(2))
    assert terms["side"].item() == pytest.approx(0.5 * math.log(2))  # mean over the two sides


def test_consistency_known_value():
    assert L.consistency(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)).item() == pytest.approx(0.25)


def test_attention_transfer_zero_for_identical_and_scaled_features():
    f = torch.rand(2, 4, 8, 8)
    # Attention maps are normalised: a student feature with other channels and scale matches too.
    assert L.attention_transfer([f * 3], [f]).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.rand(2, 7, 8, 8)
    assert L.attention_transfer([other], [f]).item() > 0
    # Matched across sizes: a 16x16 teacher feature pools onto the 8x8 student one.
    assert L.attention_transfer([f], [f.repeat_interleave(2, -1).repeat_interleave(2, -2)]).item() < 1e-6


def test_pairwise_similarity_known_value():
    f = torch.rand(1, 3, 4, 4)
    assert L.pairwise_similarity([f], [f * 5]).item() == pytest.approx(0.0, abs=1e-6)
    a = torch.ones(1, 2, 1, 2)
    b = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # orthogonal positions: off-diagonal sim 0 vs 1
    assert L.pairwise_similarity([a], [b]).item() == pytest.approx(0.5)


def test_feature_terms_carry_no_gradient_to_teacher():
    fs = torch.rand(1, 4, 8, 8, requires_grad=True)
    ft = torch.rand(1, 6, 8, 8, requires_grad=True)
    for fn in (L.attention_transfer, L.pairwise_similarity):
        fs.grad = ft.grad = None
        fn([fs], [ft]).backward()
        assert fs.grad is not None and fs.grad.abs().sum() > 0
        assert ft.grad is None


def test_adversarial_known_values():
    z = torch.zeros(1, 1, 4, 4)
    assert L.adv_generator(z).item() == pytest.approx(math.log(2))
    assert L.adv_discriminator(z, z).item() == pytest.approx(math.log(2))
    assert L.adv_discriminator(torch.full_like(z, 50), torch.full_like(z, -50)).item() == pytest.approx(0, abs=1e-6)


def test_generator_term_never_touches_discriminator_and_vice_versa():
    torch.manual_seed(0)
    cfg = tiny_config()
    adv = Adversary("d1", MiniCritic(), cfg)
    gen = torch.nn.Conv2d(3, 1, 3, padding=1)
    image = torch.rand(2, 3, 16, 16)
    fake = torch.sigmoid(gen(image))
    adv.generator_term(image, fake).backward()
    assert all(p.grad is None for p in adv.raw.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    assert all(p.requires_grad for p in adv.raw.parameters())  # unfrozen again afterwards

    gen.zero_grad(set_to_none=True)
    fake = torch.sigmoid(gen(image))
    before = [p.detach().clone() for p in adv.raw.parameters()]
    adv.step(adv.discriminator_loss(image, (torch.rand(2, 1, 16, 16) > 0.5).float(), fake), grad_clip=0)
    assert all(p.grad is None for p in gen.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, adv.raw.parameters()))
