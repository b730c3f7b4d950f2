"""Networks: output contract at odd sizes, gradients, budgets, discriminator, registry, determinism.

Random-init backbones (pretrained=False) keep these fast; ImageNet loading is covered by test_backbone.py.
"""

import pytest
import torch

from dbd_core.nets import blocks
from dbd_core.nets.flops import count_flops, describe_model
from dbd_core.nets.registry import NetOutput, build_model, count_parameters, model_names, predict_logits

SEG_NETS = {"teacher": dict(pretrained=False), "student": dict(pretrained=False), "tiny": {}}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: build_model(name, **kw) for name, kw in SEG_NETS.items()}


@pytest.mark.parametrize("name", sorted(SEG_NETS))
@pytest.mark.parametrize("size", [(97, 131), (320, 320)])
def test_output_contract(nets, name, size):
    net = nets[name].eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, *size))
    assert isinstance(out, NetOutput)
    assert out.logits.shape == (2, 1, *size) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    for side in out.sides:
        assert side.shape == (2, 1, *size)
    assert out.features and all(f.shape[0] == 2 for f in out.features)


@pytest.mark.parametrize("name", sorted(SEG_NETS))
def test_inference_without_sides_gives_the_same_map(nets, name):
    """``sides=False`` (what the Predictor, the latency bench and the ONNX export run) must only drop the
    deep-supervision outputs, never change the fused map."""
    net = nets[name].eval()
    x = torch.rand(1, 3, 97, 131)
    with torch.inference_mode():
        full, lean = net(x), net(x, sides=False)
        via_helper = predict_logits(net, x)
    assert len(full.sides) > 0 and lean.sides == []
    assert torch.equal(full.logits, lean.logits) and torch.equal(full.logits, via_helper)


def test_predict_logits_accepts_plain_modules():
    conv = torch.nn.Conv2d(3, 1, 1)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(predict_logits(conv, x), conv(x))


def test_teacher_deep_supervision_and_feature_pyramid(nets):
    net = nets["teacher"].eval()
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 96, 128))
    assert len(out.sides) == net.steps * 5 == 15
    assert [f.shape[1] for f in out.features] == list(net.feature_channels)
    assert [tuple(f.shape[-2:]) for f in out.features] == [(96 // s, 128 // s) for s in net.feature_strides]


def test_student_features_align_with_teacher_strides(nets):
    teacher, student = nets["teacher"].eval(), nets["student"].eval()
    assert student.feature_strides == teacher.feature_strides == (2, 4, 8, 16, 32)
    x = torch.rand(1, 3, 97, 131)
    with torch.inference_mode():
        ft, fs = teacher(x).features, student(x).features
    assert [f.shape[-2:] for f in ft] == [f.shape[-2:] for f in fs]
    assert [f.shape[1] for f in fs] == list(student.feature_channels)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_gradients_reach_backbone_and_head(nets, name):
    net = nets[name].train()
    out = net(torch.rand(2, 3, 64, 80))
    target = (torch.rand(2, 1, 64, 80) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = bce(out.logits, target) + sum(bce(s, target) for s in out.sides)
    net.zero_grad()
    loss.backward()
    stem = net.encoder._conv_stem.weight.grad
    assert stem is not None and stem.abs().sum() > 0
    head = net.fuse_out.weight.grad if name == "teacher" else net.head.weight.grad
    assert head is not None and head.abs().sum() > 0
    n_with_grad = sum(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # Everything trains except what starts at zero on purpose (non-local gamma path, student's zero-init
    # residual refinement): both get gradients on their output side.
    assert n_with_grad >= 0.85 * sum(1 for _ in net.parameters())


def test_student_budgets(nets):
    student = nets["student"]
    desc = describe_model(student)
    assert desc["params"] <= 1_500_000
    assert desc["gflops_320"] <= 1.0
    teacher_flops = count_flops(nets["teacher"])
    assert teacher_flops <= 3.0e9 and count_flops(student) * 4 <= teacher_flops
    shipped = build_model("student", pretrained=False, detail_blocks=2)  # the v0.5 architecture
    grown = describe_model(shipped)
    assert grown["params"] <= 1_500_000 and grown["gflops_320"] <= 1.0 and count_flops(shipped) * 4 <= teacher_flops


def test_discriminator_shapes_and_gradients():
    d = build_model("patchgan")
    image, blur_map = torch.rand(2, 3, 97, 131), torch.rand(2, 1, 97, 131, requires_grad=True)
    logits = d(image, blur_map)
    assert logits.shape[:2] == (2, 1) and min(logits.shape[-2:]) >= 8
    logits.mean().backward()
    assert blur_map.grad.abs().sum() > 0  # the generator can learn through D
    assert all(p.grad is not None for p in d.parameters())
    with pytest.raises(ValueError):
        d(image, torch.rand(2, 1, 64, 64))


def test_registry_builds_by_name_and_records_kwargs():
    assert {"teacher", "student", "patchgan", "tiny"} <= set(model_names())
    net = build_model("teacher", pretrained=False, width=32, steps=2)
    assert net.arch_name == "teacher" and net.arch_kwargs == dict(pretrained=False, width=32, steps=2)
    with torch.inference_mode():
        assert len(net.eval()(torch.rand(1, 3, 64, 64)).sides) == 10
    with pytest.raises(KeyError):
        build_model("nope")


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_eval_is_deterministic(nets, name):
    net = nets[name].eval()
    x = torch.rand(1, 3, 70, 90)
    with torch.inference_mode():
        a, b = net(x).logits, net(x).logits
    assert torch.equal(a, b)


def test_rebuilt_network_reproduces_outputs(nets):
    # What weights files rely on: arch name + kwargs + state dict -> the same function.
    src = nets["student"].eval()
    copy = build_model(src.arch_name, **src.arch_kwargs).eval()
    copy.load_state_dict(src.state_dict())
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        torch.testing.assert_close(copy(x).logits, src(x).logits)


def test_blocks_behave():
    x = torch.rand(2, 16, 9, 11)
    assert blocks.CAM(16)(x).shape == x.shape
    assert blocks.FAM(16)(x).shape == x.shape
    assert blocks.FFRM(32, 8)([x, x]).shape == (2, 8, 9, 11)
    aspp = blocks.DenseASPP(16, width=8)
    assert aspp(x).shape == (2, aspp.out_channels, 9, 11) and aspp.out_channels == 16 + 4 * 8
    assert blocks.DenseASPP(16, width=8, separable=True)(x).shape[1] == 48
    nl = blocks.NonLocal(16)
    torch.testing.assert_close(nl(x), x)  # gamma starts at 0: identity
    with torch.no_grad():
        nl.gamma.fill_(1.0)
    assert not torch.allclose(nl(x), x)


def test_flop_counter_counts_multiply_adds_twice():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, (10, 10)) == 2 * 10 * 10 * 8 * 3 * 9
    assert count_parameters(conv) == 8 * 3 * 9


def test_eval_batchnorm_folding_matches_unfolded_and_tracks_weight_changes():
    torch.manual_seed(1)
    block = blocks.ConvBNReLU(8, 12, 3)
    with torch.no_grad():  # non-trivial statistics so folding has something to get wrong
        block[1].running_mean.uniform_(-1, 1)
        block[1].running_var.uniform_(0.5, 2)
        block[1].weight.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(2, 8, 9, 11)
    reference = lambda: torch.relu(block[1](block[0](x)))  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(block(x), reference(), rtol=1e-5, atol=1e-5)
        block[0].weight.mul_(2.0)  # the cached folded weights must notice
        torch.testing.assert_close(block(x), reference(), rtol=1e-5, atol=1e-5)
        block.train()(x)  # updates running statistics in the kernel (no version bump)
        block.eval()
        torch.testing.assert_close(block(x), reference(), rtol=1e-5, atol=1e-5)
    out = block(x)  # with autograd: folded on the fly, gradients flow to conv and BN affine
    out.sum().backward()
    assert block[0].weight.grad is not None and block[1].weight.grad is not None


def test_growing_the_student_keeps_its_maps_and_refuses_what_would_change_them(tmp_path, monkeypatch):
    """model.kwargs on top of model.init (the student's detail_blocks) must start from the released model's
    maps: the new blocks are the identity until trained, and a grow that would change the output is refused."""
    from dbd_core.errors import InputError
    from dbd_core.nets import student as student_mod
    from dbd_core.weights import grow_from, save_model

    torch.manual_seed(0)
    base = build_model("student", pretrained=False)
    for m in base.modules():  # non-trivial BN statistics, as a trained file has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = save_model(tmp_path / "s.pt", base.eval())
    grown = grow_from(path, "", "model.init_sha256", {"detail_blocks": 2})
    assert grown.arch_kwargs == {"detail_blocks": 2} and len(grown.detail_blocks) == 2
    assert count_parameters(grown) > count_parameters(base)
    x = torch.rand(1, 3, 72, 88)
    with torch.no_grad():
        assert torch.allclose(grown(x).logits, base(x).logits, atol=1e-5)
        # Trained blocks do change the map (the identity is where training starts, not a dead branch).
        grown.detail_blocks[0].body[-1].weight.fill_(1.0)
        assert (grown(x).logits - base(x).logits).abs().max() > 1e-3

    with pytest.raises(InputError, match="do not fit"):
        grow_from(path, "", "model.init_sha256", {"width": 32})
    # Blocks that do not start as the identity (their last BatchNorm at unit scale). Only DetailBlock is
    # patched: a global no-op init would leave other tensors uninitialised (garbage or NaN).
    built = student_mod.DetailBlock.__init__

    def unit_scale(self, *a, **k):
        built(self, *a, **k)
        torch.nn.init.ones_(self.body[-1].weight)

    monkeypatch.setattr(student_mod.DetailBlock, "__init__", unit_scale)
    with pytest.raises(InputError, match="changes its output"):
        grow_from(path, "", "model.init_sha256", {"detail_blocks": 1})

    def nan_shift(self, *a, **k):  # a map of NaNs is no identity either (NaN > tolerance is False)
        built(self, *a, **k)
        torch.nn.init.constant_(self.body[-1].bias, float("nan"))

    monkeypatch.setattr(student_mod.DetailBlock, "__init__", nan_shift)
    with pytest.raises(InputError, match="changes its output"):
        grow_from(path, "", "model.init_sha256", {"detail_blocks": 1})
