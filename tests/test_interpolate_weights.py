"""Weights between a released model and its continuation (benchmarks/interpolate_weights.py, WiSE-FT)."""

from __future__ import annotations

import json

import pytest
import torch

from bench_scripts import load_script
from dbd_core.nets import build_model
from dbd_core.release import within_bounds
from dbd_core.train.config import load_config
from dbd_core.train.data import build_dataset, train_and_validation
from dbd_core.train.loop import TrainJob, run_training
from dbd_core.train.swa import interpolate_states
from dbd_core.train.validate import evaluate
from dbd_core.weights import load_model_file, save_model
from train_fixtures import tiny_config, write_sharp_photos

torch.set_num_threads(1)


def test_interpolation_is_a_straight_line_between_the_two_states():
    a = build_model("tiny", width=8).state_dict()
    b = {k: v + 1.0 if v.is_floating_point() else v + 7 for k, v in a.items()}
    mid = interpolate_states(a, b, 0.25)
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(mid[k], a[k] + 0.25, atol=1e-6)
        else:
            assert torch.equal(mid[k], b[k])
    assert all(torch.equal(interpolate_states(a, b, 0.0)[k], a[k]) for k in a if a[k].is_floating_point())
    with pytest.raises(ValueError, match="differ"):
        interpolate_states(a, {k: v for k, v in b.items() if not k.endswith("bias")}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_states(a, build_model("tiny", width=4).state_dict(), 0.5)


@pytest.fixture(scope="module")
def continued_run(tmp_path_factory):
    """A tiny released model, and a run continuing it with held-out photos (its checkpoint and recipe)."""
    root = tmp_path_factory.mktemp("interp")
    photos = root / "sharp"
    photos.mkdir()
    write_sharp_photos(photos, ("astronaut", "coffee", "rocket", "chelsea", "camera", "coins", "moon", "horse"))
    torch.manual_seed(0)
    start = save_model(root / "released.pt", build_model("tiny", width=8))
    cfg_text = f"""
[run]
kind = "teacher"
steps = 12
seed = 3
threads = 1
checkpoint_every = 0
[model]
name = "tiny"
kwargs = {{ width = 8 }}
init = "{start}"
[optim]
lr = 0.01
[data]
kind = "synthetic"
sharp = "{photos}"
split = "all"
size = 32
length = 24
[val]
fraction = 0.3
holdout = "photos"
render = "bench"
size = 40
batches = 2
"""
    recipe = root / "recipe.toml"
    recipe.write_text(cfg_text)
    cfg = load_config(recipe)
    events = list(run_training(TrainJob(cfg, run_dir=root / "run", output="")))
    assert events[-1]["type"] == "done", events[-1]
    return root, recipe, start, root / "run" / "checkpoint.pt"


def test_every_alpha_is_scored_on_the_recipes_held_out_renders_and_the_rule_picks_one(continued_run):
    root, recipe, start, ckpt = continued_run
    script = load_script("interpolate_weights")
    out, report = root / "interp.pt", root / "interp_report.json"
    with pytest.raises(SystemExit, match="overwrite the card"):
        script.main(["--config", str(recipe), "--start", str(start), "--end", str(ckpt),
                     "--out", str(out), "--json", str(root / "interp.json")])
    assert script.main(["--config", str(recipe), "--start", str(start), "--end", str(ckpt), "--alphas", "0.5,1",
                        "--out", str(out), "--json", str(report), "--threads", "1"]) == 0
    rep = json.loads(report.read_text())
    assert rep["command"].startswith("python benchmarks/interpolate_weights.py --config ")
    rows = {r["alpha"]: r for r in rep["alphas"]}
    # alpha 0 is the released model itself, scored on the held-out renders a run of the recipe validates on
    cfg = load_config(recipe)
    _, val = train_and_validation(cfg, build_dataset(cfg))
    n = min(8, len(val))  # val.batches = 2 batches of 4, or fewer when the held-out set is smaller
    assert sorted(rows) == [0.0, 0.5, 1.0] and rep["held_out_renders"] == n and val.cfg.crop == "centre"
    released, _ = load_model_file(start)
    m = evaluate(released, [val[i] for i in range(n)], torch.device("cpu"))
    assert rows[0.0]["mae"] == pytest.approx(m["mae"], abs=1e-6) and rows[0.0]["nll"] == pytest.approx(m["nll"], abs=1e-6)
    assert rows[1.0]["mae"] != rows[0.0]["mae"]  # the continuation moved
    ok = [r for r in rows.values() if within_bounds(r, rows[0.0]).ship]
    kept = min(ok, key=lambda r: (r["mae"], r["alpha"]))["alpha"]
    assert rep["kept_alpha"] == kept
    assert out.is_file() == (kept > 0)
    if kept > 0:
        model, card = load_model_file(out)
        want = interpolate_states(released.state_dict(), torch.load(ckpt, weights_only=False)["modules"]["model"], kept)
        assert all(torch.allclose(model.state_dict()[k].float(), want[k].float()) for k in want)
        assert card["interpolation"]["kept_alpha"] == kept


def test_a_continuation_equal_to_the_start_writes_nothing(continued_run, capsys):
    root, recipe, start, _ = continued_run
    out = root / "same.pt"
    script = load_script("interpolate_weights")
    assert script.main(["--config", str(recipe), "--start", str(start), "--end", str(start), "--alphas", "1",
                        "--out", str(out), "--threads", "1"]) == 0
    assert not out.exists() and "nothing written" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="recipe.toml: not a readable dbd weights file.*nor is it a training checkpoint"):
        script.main(["--config", str(recipe), "--start", str(start), "--end", str(recipe)])
    with pytest.raises(SystemExit, match="end-swa"):
        script.main(["--config", str(recipe), "--start", str(start), "--end", str(start), "--end-swa"])


def test_the_kept_alpha_is_the_lowest_mae_within_the_rule_and_is_written(continued_run, monkeypatch):
    """Scores stand in for the network's so the rule's choice is known: alpha 1 has the lowest MAE but its
    log-loss rose beyond the bound, so 0.5 is kept and written as exactly that interpolation."""
    import dbd_core.train.validate as validate

    root, recipe, start, ckpt = continued_run
    scores = iter([{"mae": 0.10, "f_beta": 0.90, "nll": 0.200, "auc_roc": 0.95, "iou": 0.8},
                   {"mae": 0.08, "f_beta": 0.899, "nll": 0.204, "auc_roc": 0.95, "iou": 0.8},
                   {"mae": 0.07, "f_beta": 0.91, "nll": 0.230, "auc_roc": 0.95, "iou": 0.8}])
    monkeypatch.setattr(validate, "evaluate", lambda *a, **k: next(scores))
    out = root / "kept.pt"
    script = load_script("interpolate_weights")
    assert script.main(["--config", str(recipe), "--start", str(start), "--end", str(ckpt), "--alphas", "0.5,1",
                        "--out", str(out), "--threads", "1"]) == 0
    model, card = load_model_file(out)
    assert card["interpolation"]["kept_alpha"] == 0.5
    released, _ = load_model_file(start)
    want = interpolate_states(released.state_dict(), torch.load(ckpt, weights_only=False)["modules"]["model"], 0.5)
    assert all(torch.allclose(model.state_dict()[k].float(), want[k].float(), atol=1e-6) for k in want)

