"""Training and fine-tuning data from a user's folder/HDF5 dataset: its splits, unreadable samples, and the
fine-tune's before/after metrics measured as `dbd eval` measures them."""

import json

import cv2
import numpy as np
import pytest
import torch

from dbd_core.data.formats import open_writer
from dbd_core.nets import build_model
from dbd_core.train.data import build_dataset, holdout_split, train_and_validation
from dbd_core.train.finetune import FinetuneJob, run_finetune
from dbd_core.weights import load_model_file, save_model
from train_fixtures import BlurHalves, tiny_config

torch.set_num_threads(1)


def _photo(i, h=40, w=60):
    """A texture whose right part is box-blurred; mask = that part (1 = blurred)."""
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    cut = w // 3 + i % (w // 3)
    rgb[:, cut:] = cv2.blur(rgb[:, cut:], (7, 7))
    mask = np.zeros((h, w), np.uint8)
    mask[:, cut:] = 1
    return rgb, mask


def _dataset(path, n, splits=None, h=40, w=60):
    splits = splits or {}
    with open_writer(path, created_by="test") as wr:
        for i in range(n):
            rgb, mask = _photo(i, h, w)
            wr.add(f"p{i:02d}", rgb, mask, split=splits.get(i))
    return path


def _cfg(**over):
    cfg = tiny_config("finetune", steps=2, **{"val": {"fraction": 0.25}, "data": {"kind": "folder", "size": 32,
                                                                                   "batch_size": 2}, **over})
    return cfg


def _names(ds, part):
    return [ds.names[i] for i in part.indices]


# ------------------------------------------------------------------ splits

def test_samples_marked_test_are_never_trained_or_validated_on(tmp_path):
    data = _dataset(tmp_path / "ds", 12, splits={0: "test", 1: "test", 2: "test", 3: "val", 4: "train"})
    cfg = _cfg()
    ds = build_dataset(cfg, path=str(data))
    assert not {"p00", "p01", "p02"} & set(ds.names) and len(ds) == 9
    train, val = train_and_validation(cfg, ds)
    seen = set(_names(ds, train)) | set(_names(ds, val))
    assert not {"p00", "p01", "p02"} & seen and len(seen) == 9
    assert "p03" in _names(ds, val) and "p04" in _names(ds, train)  # a stored split wins
    # no validation at all: still no test sample, and the marked val one is not trained on either
    cfg0 = _cfg(val={"fraction": 0.0})
    train0, val0 = train_and_validation(cfg0, build_dataset(cfg0, path=str(data)))
    assert val0 is None and not {"p00", "p01", "p02", "p03"} & set(_names(ds, train0))


def test_adding_a_photo_never_moves_the_held_out_ones(tmp_path):
    cfg = _cfg()
    held = []
    # (From 9 photos on, p08's hash puts it in val. With fewer, none hashes below 0.25 and split_names sends
    # the smallest hash, p02, to val so there is one: that stand-in is the one name that moves.)
    for n in (9, 10, 14, 20):
        ds = build_dataset(cfg, path=str(_dataset(tmp_path / f"ds{n}", n)))
        train, val = holdout_split(ds, 0.25, cfg["run"]["seed"])
        held.append((set(_names(ds, train)), set(_names(ds, val))))
    for (tr_a, va_a), (tr_b, va_b) in zip(held, held[1:]):
        assert tr_a <= tr_b and va_a <= va_b  # every existing name stays on its side
    assert held[0][1] == {"p08"} and held[-1][1] == {"p08", "p09", "p18"}


def test_finetune_on_a_dataset_with_test_samples_leaves_them_out(tmp_path):
    data = _dataset(tmp_path / "ds", 10, splits={0: "test", 1: "test"})
    parent = save_model(tmp_path / "tiny.pt", build_model("tiny", width=8), {})
    ev = list(run_finetune(FinetuneJob(data=data, model=str(parent), out_dir=tmp_path / "out", config=_cfg())))
    assert ev[-1]["type"] == "done", ev[-1]
    s = ev[-1]["summary"]
    assert s["n_train"] + s["n_val"] == 8
    _, card = load_model_file(s["output"])
    assert card["data"]["n_photos"] == 8


# ------------------------------------------------------------------ unreadable samples

def _break(data, empty="p03", wrong_size="p05"):
    (data / "gt" / f"{empty}.png").write_bytes(b"")
    cv2.imwrite(str(data / "gt" / f"{wrong_size}.png"), np.zeros((10, 10), np.uint8))


def test_finetune_names_and_leaves_out_unreadable_samples_and_counts_the_rest(tmp_path):
    data = _dataset(tmp_path / "ds", 10)
    _break(data)
    parent = save_model(tmp_path / "tiny.pt", build_model("tiny", width=8), {})
    ev = list(run_finetune(FinetuneJob(data=data, model=str(parent), out_dir=tmp_path / "out", config=_cfg())))
    assert ev[-1]["type"] == "done", ev[-1]
    skipped = [e["message"] for e in ev if e["type"] == "skipped"]
    assert skipped == [f"{data / 'gt' / 'p03.png'}: empty file (0 bytes)",
                       f"{data}: sample p05: mask is 10x10 but its image is 60x40"]
    checks = [e for e in ev if e["type"] == "check"]
    assert checks[0]["done"] == 0 and checks[-1]["done"] == checks[-1]["total"] == 10
    start = next(e for e in ev if e["type"] == "start")
    assert start["n_train"] + start["n_val"] == 8  # usable samples only
    assert ev[-1]["summary"]["left_out"] == skipped
    _, card = load_model_file(ev[-1]["summary"]["output"])
    assert card["data"]["n_photos"] == 8 and card["data"]["left_out"] == skipped


def test_nothing_usable_is_refused_in_one_line(tmp_path):
    data = _dataset(tmp_path / "ds", 2)
    _break(data, "p00", "p01")
    parent = save_model(tmp_path / "tiny.pt", build_model("tiny", width=8), {})
    ev = list(run_finetune(FinetuneJob(data=data, model=str(parent), out_dir=tmp_path / "out", config=_cfg())))
    assert ev[-1]["type"] == "error" and "no usable sample: all 2 left out" in ev[-1]["message"]
    assert not list((tmp_path / "out").glob("*.pt")) if (tmp_path / "out").exists() else True


def test_train_cli_goes_on_without_unreadable_samples(tmp_path, capsys):
    from dbd_core.cli.main import main

    data = _dataset(tmp_path / "ds", 10)
    _break(data)
    cfg = tmp_path / "t.toml"
    cfg.write_text("""
[run]
kind = "teacher"
steps = 2
threads = 1
checkpoint_every = 0
[model]
name = "tiny"
kwargs = { width = 8 }
[data]
kind = "folder"
size = 32
batch_size = 2
max_side = 64
[val]
fraction = 0.25
every = 1
""")
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(tmp_path / "run"),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    start = next(json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()
                 if json.loads(x)["type"] == "start")
    assert start["n_train"] + start["n_val"] == 8
    assert f"{start['n_train']} training / {start['n_val']} validation items" in err


# ------------------------------------------------------------------ before/after as dbd eval measures

def test_finetune_metrics_are_those_of_the_full_size_guided_pipeline(tmp_path):
    from dbd_core.metrics import Evaluator
    from dbd_core.predict import load_predictor
    from dbd_core.train.validate import evaluate

    data = _dataset(tmp_path / "ds", 12, h=48, w=120)  # 5:2 photos: squashing them to a square is not the same
    torch.manual_seed(0)
    parent = save_model(tmp_path / "tiny.pt", build_model("tiny", width=8),
                        {"inference": {"guided_radius": 2}})
    cfg = _cfg()
    ev = list(run_finetune(FinetuneJob(data=data, model=str(parent), out_dir=tmp_path / "out", config=cfg)))
    assert ev[-1]["type"] == "done", ev[-1]
    s = ev[-1]["summary"]
    before_ev = next(e for e in ev if e.get("phase") == "before")
    assert before_ev["metrics"] == s["before"]

    ds = build_dataset(_cfg(), path=str(data))
    _, val = holdout_split(ds, 0.25, cfg["run"]["seed"])
    names = _names(ds, val)
    assert len(names) == s["n_val"]

    def dbd_eval(weights):  # what `dbd eval --model WEIGHTS --data DS` computes on the held-out names
        pred = load_predictor(weights, threads=1, jit=False)
        e = Evaluator()
        for name in names:
            sample = ds.reader.full.sample(name)
            e.update(pred.predict(sample.decode()), sample.mask)
        return e.summary()

    for got, weights in ((s["before"], parent), (s["after"], s["output"])):
        want = dbd_eval(weights)
        for key in ("mae", "f_beta", "iou", "nll", "auc_roc", "max_f"):
            assert got[key] == pytest.approx(want[key], abs=2e-3 if weights != parent else 1e-9), key
    _, card = load_model_file(s["output"])
    assert card["metrics"]["before"]["mae"] == s["before"]["mae"]
    # and it is not the training loop's squashed 32x32 validation
    model, _ = load_model_file(parent)
    squashed = evaluate(model, val, "cpu")
    assert abs(squashed["mae"] - s["before"]["mae"]) > 1e-4


def test_the_parent_cards_guided_window_is_used(tmp_path):
    from dbd_core.train.validate import evaluate_photos

    data = _dataset(tmp_path / "ds", 4, h=48, w=120)
    ds = build_dataset(_cfg(), path=str(data))
    torch.manual_seed(0)
    model = build_model("tiny", width=8)
    narrow, wide = evaluate_photos(model, ds, {"inference": {"guided_radius": 1}}), \
        evaluate_photos(model, ds, {"inference": {"guided_radius": 12}})
    assert narrow["n_images"] == wide["n_images"] == 4 and narrow["mae"] != wide["mae"]


# ------------------------------------------------------------------ a diverged result is never saved

def test_non_finite_held_out_result_writes_no_version_and_says_why(tmp_path, monkeypatch):
    from dbd_core.train import finetune

    real = finetune.evaluate_photos
    calls = []

    def scripted(model, val, card):
        calls.append(1)
        m = real(model, val, card)
        if len(calls) == 2:  # "after": as if the network's maps had blown up
            m.update(n_nonfinite=2, n_images=m["n_images"] - 2)
        return m

    monkeypatch.setattr(finetune, "evaluate_photos", scripted)
    parent = save_model(tmp_path / "models" / "tiny.pt", build_model("tiny", width=8), {})
    cfg = tiny_config("finetune", steps=2, val={"fraction": 0.25})
    ev = list(run_finetune(FinetuneJob(data="x", model=str(parent), out_dir=tmp_path / "models", config=cfg,
                                       dataset=BlurHalves(8))))
    assert ev[-1]["type"] == "error", ev[-1]
    assert "diverged" in ev[-1]["message"] and "NaN or Inf" in ev[-1]["message"]
    assert "no version was written" in ev[-1]["message"]
    assert not list((tmp_path / "models").glob("tiny-ft*"))


def test_non_finite_metric_values_are_refused_too():
    from dbd_core.train.finetune import not_finite

    assert not_finite({"n_images": 3, "n_nonfinite": 0, "mae": 0.1, "f_beta": 0.9}) == ""
    assert "mae" in not_finite({"n_images": 3, "n_nonfinite": 0, "mae": float("nan")})
    assert not_finite({"n_images": 0, "n_nonfinite": 0})


# ------------------------------------------------------------------ what the code says about itself

def test_no_second_metrics_implementation_and_the_docstring_names_the_early_stopping_score():
    from dbd_core.train import finetune, validate

    assert not hasattr(validate, "_MiniEvaluator") and not hasattr(validate, "make_evaluator")
    score = finetune.default_config("student")["val"]["score"]
    assert score == finetune.default_config("teacher")["val"]["score"] == "mae"
    assert "validation loss" not in finetune.__doc__ and '"mae"' in finetune.__doc__
