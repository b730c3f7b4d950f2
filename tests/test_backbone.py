"""EfficientNet-Lite0: ImageNet weights load strictly and classify real photos; feature pyramid shapes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dbd_core.nets.backbone import LEVEL_CHANNELS, EfficientNetLite0, weights_file


@pytest.fixture(scope="module")
def net():
    return EfficientNetLite0(pretrained=True).eval()


def _top5(net, photo: np.ndarray) -> list[int]:
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        return net.classify(x).topk(5).indices[0].tolist()


def test_chelsea_is_a_cat(net, chelsea):
    assert 281 <= _top5(net, chelsea)[0] <= 285


def test_coffee_is_espresso(net, coffee):
    assert _top5(net, coffee)[0] == 967


def test_weights_load_strictly_every_key():
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0(pretrained=False)
    assert set(net.state_dict()) == set(state)  # same module names, nothing left over either way
    net.load_state_dict(state, strict=True)
    assert torch.equal(net._blocks[7]._project_conv.weight, state["_blocks.7._project_conv.weight"])


def test_pretrained_differs_from_random_init():
    a = EfficientNetLite0(pretrained=True, head=False)
    b = EfficientNetLite0(pretrained=False, head=False)
    assert not torch.equal(a._conv_stem.weight, b._conv_stem.weight)


@pytest.mark.parametrize("size", [(320, 320), (97, 131)])
def test_feature_strides_and_channels(size):
    net = EfficientNetLite0(pretrained=False, head=False).eval()
    with torch.inference_mode():
        feats = net.features(torch.rand(1, 3, *size))
    assert [f.shape[1] for f in feats] == list(LEVEL_CHANNELS) == [16, 24, 40, 112, 320]
    for f, stride in zip(feats, (2, 4, 8, 16, 32)):
        assert tuple(f.shape[-2:]) == (-(-size[0] // stride), -(-size[1] // stride))


def test_truncated_encoder_matches_full_and_has_no_head():
    full = EfficientNetLite0(pretrained=True).eval()
    cut = EfficientNetLite0(pretrained=True, levels=3).eval()
    assert not hasattr(cut, "_fc") and len(cut._blocks) == 5
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        a, b = full.features(x), cut.features(x)
    assert len(b) == 3
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb)
    with pytest.raises(RuntimeError):
        cut.classify(x)


def test_freeze_levels_fixes_weights_and_batch_stats():
    net = EfficientNetLite0(pretrained=True, head=False, freeze_levels=2).train()
    assert not net._conv_stem.weight.requires_grad and not net._blocks[2]._project_conv.weight.requires_grad
    assert net._blocks[3]._project_conv.weight.requires_grad
    assert not net._bn0.training and net._blocks[3]._bn1.training
    before = net._blocks[1]._bn1.running_mean.clone()
    sum(f.mean() for f in net.features(torch.rand(2, 3, 64, 64))).backward()
    assert torch.equal(before, net._blocks[1]._bn1.running_mean)
    assert net._conv_stem.weight.grad is None and net._blocks[3]._project_conv.weight.grad is not None
