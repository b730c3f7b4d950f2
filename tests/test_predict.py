"""Predictor, weights files and guided upsampling (tiny network only: fast, no trained weights)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dbd_core.errors import InputError, WeightsMissingError
from dbd_core.images import write_png
from dbd_core.nets.registry import build_model
from dbd_core.predict import Predictor, load_predictor, working_size
from dbd_core.upsample import bilinear_upsample, guided_filter, guided_upsample
from dbd_core.weights import card_path, load_model_file, save_model, shipped_weights, verify_weights


@pytest.fixture
def tiny_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny")
    path = save_model(tmp_path / "tiny.pt", model, {"purpose": "test"})
    return path, model


# ---------------------------------------------------------------- weights files
def test_save_load_roundtrip_and_card(tiny_file):
    path, model = tiny_file
    card = __import__("json").loads(card_path(path).read_text())
    assert card["purpose"] == "test" and card["arch"] == "tiny" and len(card["sha256"]) == 64
    loaded, card2 = load_model_file(path)
    assert not loaded.training and card2["sha256"] == card["sha256"]
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert verify_weights(path)[0] == "ok"


def test_half_precision_file_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", width=32)
    full = save_model(tmp_path / "full.pt", model, {})
    half = save_model(tmp_path / "half.pt", model, {}, half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, card = load_model_file(half)
    assert card["dtype"] == "float16"
    w = dict(loaded.named_parameters())["enc1.0.weight"]
    assert w.dtype == torch.float32
    assert torch.allclose(w, model.enc1[0].weight, atol=1e-3)


def test_bad_weights_files_raise_input_error(tmp_path, tiny_file):
    path, _ = tiny_file
    cases = {}
    cases["empty.pt"] = b""
    cases["text.pt"] = b"this is not a weights file\n"
    cases["truncated.pt"] = path.read_bytes()[: path.stat().st_size // 2]
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")  # a torch file, but not ours
    for name in [*cases, "foreign.pt", "missing.pt"]:
        with pytest.raises(InputError) as e:
            load_model_file(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_changed_weights_file_fails_sha_check(tiny_file):
    path, _ = tiny_file
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF  # flip bits inside the stored tensors
    path.write_bytes(bytes(data))
    assert verify_weights(path)[0] == "mismatch"
    with pytest.raises(InputError, match="does not match its card"):
        load_model_file(path)


def test_missing_shipped_weights_never_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv("DBD_RESOURCES", str(tmp_path))
    assert shipped_weights("student") is None
    for name in ("teacher", "student"):
        with pytest.raises(WeightsMissingError) as e:
            load_predictor(name)
        assert "dbd train" in str(e.value) and "--weights" in str(e.value)


def test_shipped_weights_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("DBD_RESOURCES", str(tmp_path))
    save_model(tmp_path / "models" / "student.pt", build_model("tiny"), {"version": "test"})
    p = load_predictor("student")
    assert p.name == "student" and p.card["version"] == "test"


def test_unknown_model_name(tmp_path):
    with pytest.raises(InputError, match="unknown model"):
        load_predictor("resnet")


# ---------------------------------------------------------------- predictor
def test_output_size_and_range_for_every_input_kind(tiny_file, tmp_path, rng):
    p = load_predictor(tiny_file[0], threads=1)
    rgb = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    write_png(tmp_path / "photo.png", rgb)
    inputs = {
        "uint8 rgb": rgb,
        "uint16 rgb": rgb.astype(np.uint16) * 257,
        "float rgb": rgb.astype(np.float32) / 255,
        "gray": rgb[..., 0],
        "gray hxwx1": rgb[..., :1],
        "rgba": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
        "path str": str(tmp_path / "photo.png"),
        "path": tmp_path / "photo.png",
    }
    for kind, x in inputs.items():
        m = p.predict(x)
        assert m.shape == (45, 70) and m.dtype == np.float32, kind
        assert 0.0 <= m.min() and m.max() <= 1.0, kind
    # BGR input gives the map of the same photo in RGB
    np.testing.assert_array_equal(p.predict(rgb[..., ::-1], channel_order="bgr"), p.predict(rgb))


def test_portrait_landscape_and_huge_aspect(tiny_file, rng):
    p = load_predictor(tiny_file[0])
    for shape in [(31, 400, 3), (400, 31, 3), (7, 5, 3), (320, 320, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        assert p.predict(x).shape == shape[:2]
    assert working_size(3000, 4500, 320) == (213, 320)


def test_deterministic(tiny_file, rng):
    p = load_predictor(tiny_file[0])
    x = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    np.testing.assert_array_equal(p.predict(x), p.predict(x))
    assert all(np.array_equal(a, b) for a, b in zip(p.predict_batch([x, x]), [p.predict(x)] * 2))


def test_card_names_the_guided_radius_the_full_size_map_uses(tmp_path, rng):
    torch.manual_seed(0)
    model = build_model("tiny")
    x = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    default = load_predictor(save_model(tmp_path / "a.pt", model, {"purpose": "test"}), jit=False)
    narrow = load_predictor(save_model(tmp_path / "b.pt", model, {"inference": {"guided_radius": 1}}), jit=False)
    assert default.guided_radius is None and narrow.guided_radius == 1
    from dbd_core.predict import resize_to_work

    small = resize_to_work(x, narrow.work_size)
    low = np.clip(narrow.predict_small(x), 0, 1)
    np.testing.assert_allclose(narrow.predict(x), guided_upsample(low, x, guide_lr=small, radius=1), atol=1e-6)
    assert not np.allclose(narrow.predict(x), default.predict(x), atol=1e-4)  # the radius reaches the map
    # The card's window is measured at a 320 px long side: at twice the working size it covers twice the px.
    two = load_predictor(save_model(tmp_path / "d.pt", model, {"inference": {"guided_radius": 2}}), jit=False,
                         work_size=640)
    small = resize_to_work(x, 640)
    low = np.clip(two.predict_small(x), 0, 1)
    np.testing.assert_allclose(two.predict(x), guided_upsample(low, x, guide_lr=small, radius=4), atol=1e-6)
    assert not np.allclose(two.predict(x), guided_upsample(low, x, guide_lr=small, radius=2), atol=1e-4)
    for bad in (0, 2.5, "2", True):
        with pytest.raises(InputError, match="guided_radius must be a whole number"):
            load_predictor(save_model(tmp_path / "c.pt", model, {"inference": {"guided_radius": bad}}))


def test_hflip_tta_averages_the_mirror_and_is_mirror_equivariant(tiny_file, rng):
    plain = load_predictor(tiny_file[0], threads=1, jit=False)
    tta = load_predictor(tiny_file[0], threads=1, jit=False, tta="hflip")
    x = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    mirror = np.ascontiguousarray(x[:, ::-1])
    expected = 0.5 * (plain.predict_small(x) + plain.predict_small(mirror)[:, ::-1])
    np.testing.assert_allclose(tta.predict_small(x), expected, atol=1e-6)
    assert not np.allclose(tta.predict_small(x), plain.predict_small(x), atol=1e-4)  # it does change the map
    # the averaged map of the mirrored photo is the mirrored map, exactly what the plain net is not
    np.testing.assert_allclose(tta.predict_small(mirror), tta.predict_small(x)[:, ::-1], atol=1e-6)
    full = tta.predict(x)
    assert full.shape == x.shape[:2] and 0.0 <= full.min() and full.max() <= 1.0
    assert " tta=hflip " in repr(tta) and " tta=" not in repr(plain)
    assert load_predictor("lbp", tta="hflip").tta == "hflip"
    with pytest.raises(ValueError, match="tta"):
        load_predictor(tiny_file[0], tta="vflip")


def test_from_model_keeps_training_mode(rng):
    model = build_model("tiny").train()
    p = Predictor.from_model(model, name="live")
    m = p.predict(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert m.shape == (40, 40) and model.training and p.name == "live"


def test_bad_inputs_raise_input_error(tiny_file, tmp_path):
    p = load_predictor(tiny_file[0])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    for bad in [tmp_path / "bad.jpg", tmp_path / "nope.png", np.zeros((5, 5, 7)), np.full((9, 9), np.nan)]:
        with pytest.raises(InputError):
            p.predict(bad)


# ---------------------------------------------------------------- guided upsampling
def _step_scene(H=240, W=360, edge=133):
    """Photo with a vertical edge at column ``edge`` (not on the low-res grid) and its true map."""
    rng = np.random.default_rng(1)
    img = np.empty((H, W, 3), np.uint8)
    img[:, :edge] = (200, 180, 160)
    img[:, edge:] = (40, 60, 90)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), np.float32)
    truth[:, edge:] = 1
    low = cv2.resize(truth, (W // 8, H // 8), interpolation=cv2.INTER_AREA)
    low = cv2.GaussianBlur(low, (0, 0), 1.0)  # a network's soft low-res boundary
    return img, truth, low


def _transition_width(m: np.ndarray) -> float:
    """Mean number of columns per row where the map is between 0.2 and 0.8."""
    return float(((m > 0.2) & (m < 0.8)).sum(axis=1).mean())


def test_guided_upsampling_aligns_edges_better_than_bilinear():
    img, truth, low = _step_scene()
    g = guided_upsample(low, img)
    b = bilinear_upsample(low, truth.shape)
    assert g.shape == truth.shape and g.min() >= 0 and g.max() <= 1
    assert _transition_width(g) <= 2 < 10 <= _transition_width(b)
    # the 0.5 crossing lands on the photo's edge
    assert ((g > 0.5) != truth.astype(bool)).mean() < 0.002
    band = slice(100, 166)
    assert np.abs(g - truth)[:, band].mean() < 0.6 * np.abs(b - truth)[:, band].mean()


def test_guided_upsample_strips_match_one_pass():
    img, _, low = _step_scene(H=97, W=130, edge=50)
    a = guided_upsample(low, img, strip_rows=7)
    b = guided_upsample(low, img, strip_rows=1000)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_guided_filter_gray_guide_and_flat_region():
    gray = np.full((50, 50), 128, np.uint8)
    src = np.random.default_rng(0).random((50, 50)).astype(np.float32)
    out = guided_filter(gray, src, 5)
    # a flat guide carries no edges: A = 0 and b = box mean, averaged once more (eq. 8) -> two box means
    box = lambda x: cv2.blur(x, (11, 11), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    np.testing.assert_allclose(out, box(box(src)), atol=1e-4)
