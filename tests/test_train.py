"""The training loop on tiny synthetic data: learning, distillation, fine-tuning, resume, cancel, NaN."""

import pytest
import torch

from dbd_core.nets import build_model
from dbd_core.train import objectives
from dbd_core.train.finetune import FinetuneJob, run_finetune
from dbd_core.train.loop import TrainJob, run_training
from dbd_core.weights import load_model_file, save_model
from train_fixtures import BlurHalves, params_of, tiny_config


def _run(job, cancel=None):
    return list(run_training(job, cancel))


def _of(events, kind):
    return [e for e in events if e["type"] == kind]


def _learns(events):
    steps = _of(events, "step")
    first = sum(e["losses"]["total"] for e in steps[:3]) / 3
    last = sum(e["losses"]["total"] for e in steps[-3:]) / 3
    vals = _of(events, "val")
    return first, last, vals[0]["metrics"]["f_beta"], vals[-1]["metrics"]["f_beta"]


def test_teacher_training_lowers_loss_and_raises_f_beta(tmp_path):
    cfg = tiny_config(steps=40, loss={"adv": 0.05}, val={"every": 20})
    data = BlurHalves(16)
    ev = _run(TrainJob(cfg, run_dir=tmp_path, train_dataset=data, val_dataset=data))
    first, last, f0, f1 = _learns(ev)
    assert last < 0.8 * first and f1 > f0 + 0.2 and f1 > 0.8
    assert {"content", "side", "adv", "d1", "total"} <= set(_of(ev, "step")[-1]["losses"])
    done = ev[-1]
    assert done["type"] == "done" and (tmp_path / "model.pt").is_file()
    model, card = load_model_file(tmp_path / "model.pt")
    assert card["kind"] == "teacher" and card["recipe"]["loss"]["adv"] == 0.05


def test_student_distillation_with_unlabelled_photos(tmp_path):
    torch.manual_seed(1)
    teacher = build_model("tiny", width=8)
    _run(TrainJob(tiny_config(steps=40), run_dir=tmp_path / "t", output="", model=teacher,
                  train_dataset=BlurHalves(16)))
    cfg = tiny_config("student", steps=40, val={"every": 20},
                      loss={"consistency": 1.0, "feature": 0.5, "adv": 0.05, "adv_distill": 0.05})
    mixed = torch.utils.data.ConcatDataset([BlurHalves(12), BlurHalves(8, seed=5, unlabelled=True)])
    ev = _run(TrainJob(cfg, run_dir=tmp_path / "s", teacher=teacher, train_dataset=mixed, val_dataset=BlurHalves(12)))
    first, last, f0, f1 = _learns(ev)
    assert last < first and f1 > f0 + 0.2
    terms = set().union(*(e["losses"] for e in _of(ev, "step")))
    assert {"content", "consistency", "feature", "adv", "adv_distill", "d2", "d3"} <= terms
    # The teacher is frozen: distillation never changes it.
    assert all(not p.requires_grad for p in teacher.parameters())


def test_teacher_tta_makes_the_soft_target_the_mirror_averaged_teacher_map(tmp_path, monkeypatch):
    from dbd_core.train import losses as L

    torch.manual_seed(2)
    teacher = build_model("tiny", width=8).eval()
    targets = []
    real = L.consistency
    monkeypatch.setattr(L, "consistency", lambda logits, t_prob: (targets.append(t_prob), real(logits, t_prob))[1])
    data = BlurHalves(4)
    cfg = tiny_config("student", steps=1, loss={"consistency": 1.0, "teacher_tta": "hflip"})
    cfg["data"]["batch_size"] = 4
    ev = _run(TrainJob(cfg, run_dir=tmp_path, output="", teacher=teacher, train_dataset=data))
    assert ev[-1]["type"] == "done" and len(targets) == 1
    image = torch.stack([data[i]["image"] for i in range(4)])
    with torch.no_grad():  # the batch order is shuffled: the test matches items by their target
        plain = torch.sigmoid(teacher(image).logits)
        averaged = 0.5 * (plain + torch.sigmoid(teacher(image.flip(-1)).logits).flip(-1))
    got = targets[0]
    assert any(torch.allclose(got[0], averaged[i], atol=1e-5) for i in range(4))
    assert not any(torch.allclose(got[0], plain[i], atol=1e-4) for i in range(4))  # the mirror did change it


def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    cfg = tiny_config(steps=12, loss={"adv": 0.05})
    data = BlurHalves(10)  # 2 batches/epoch with drop_last: the cut falls mid-epoch
    torch.manual_seed(0)
    straight = build_model("tiny", width=8)
    _run(TrainJob(cfg, run_dir=tmp_path / "a", model=straight, train_dataset=data))

    steps_seen = []
    ev = []
    torch.manual_seed(0)  # the same starting weights as the straight run
    m2 = build_model("tiny", width=8)
    gen = run_training(TrainJob(cfg, run_dir=tmp_path / "b", model=m2, train_dataset=data),
                       cancel=lambda: len(steps_seen) >= 5)
    for e in gen:
        ev.append(e)
        if e["type"] == "step":
            steps_seen.append(e)
    assert ev[-1]["type"] == "cancelled" and ev[-1]["step"] == 5
    assert not (tmp_path / "b" / "model.pt").exists()  # cancel never writes the output weights
    m3 = build_model("tiny", width=8)  # fresh weights: everything comes from the checkpoint
    ev = _run(TrainJob(cfg, run_dir=tmp_path / "b", model=m3, train_dataset=data, resume=True))
    assert ev[0]["start_step"] == 5 and ev[-1]["type"] == "done"
    a, b = params_of(straight), params_of(m3)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_leaves_existing_weights_unchanged(tmp_path):
    cfg = tiny_config(steps=8)
    out = tmp_path / "model.pt"
    save_model(out, build_model("tiny", width=8), {"note": "previous"})
    before = out.read_bytes()
    ev = _run(TrainJob(cfg, run_dir=tmp_path / "run", output=out, train_dataset=BlurHalves(8)),
              cancel=_after_calls(4))
    assert ev[-1]["type"] == "cancelled" and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert out.read_bytes() == before


def _after_calls(n):
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > n

    return cancel


def test_non_finite_loss_stops_with_message_and_keeps_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(steps=10, run={"checkpoint_every": 3})
    real = objectives.SupervisedObjective.content
    calls = {"n": 0}

    def poisoned(self, out, target):
        calls["n"] += 1
        terms = real(self, out, target)
        if calls["n"] == 5:
            terms["content"] = terms["content"] * float("nan")
        return terms

    monkeypatch.setattr(objectives.SupervisedObjective, "content", poisoned)
    ev = _run(TrainJob(cfg, run_dir=tmp_path, train_dataset=BlurHalves(8)))
    err = ev[-1]
    assert err["type"] == "error" and err["step"] == 5 and "step 5" in err["message"]
    assert "content" in err["message"] and "checkpoint" in err["message"]
    assert not (tmp_path / "model.pt").exists()
    from dbd_core.train.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["step"] == 3
    assert all(torch.isfinite(v).all() for v in ck["modules"]["model"].values() if v.is_floating_point())


def test_finetune_improves_and_writes_new_version_beside_parent(tmp_path):
    torch.manual_seed(0)
    parent = tmp_path / "models" / "tiny.pt"
    save_model(parent, build_model("tiny", width=8), {"version": "v0", "inference": {"guided_radius": 2}})
    parent_bytes = parent.read_bytes()
    cfg = tiny_config("finetune", steps=40, val={"fraction": 0.25, "every": 10, "patience": 3, "restore_best": True})
    job = FinetuneJob(data="in-memory", model=str(parent), out_dir=tmp_path / "models", config=cfg,
                      dataset=BlurHalves(16))
    ev = list(run_finetune(job))
    done = ev[-1]
    assert done["type"] == "done", ev[-1]
    s = done["summary"]
    assert s["after"]["f_beta"] > s["before"]["f_beta"] + 0.2 and s["after"]["mae"] < s["before"]["mae"]
    assert s["n_val"] == 4 and s["n_train"] == 12
    new = tmp_path / "models" / "tiny-ft1.pt"
    assert s["output"] == str(new) and parent.read_bytes() == parent_bytes
    _, card = load_model_file(new)
    assert card["parent"]["sha256"] and card["data"]["n_photos"] == 16
    assert card["inference"] == {"guided_radius": 2}  # the new version maps as its parent does
    assert card["metrics"]["after"]["f_beta"] == s["after"]["f_beta"]
    # a second run never overwrites the first version
    ev2 = list(run_finetune(FinetuneJob(data="x", model=str(new), out_dir=tmp_path / "models", config=tiny_config(
        "finetune", steps=4, val={"fraction": 0.25}), dataset=BlurHalves(8))))
    assert ev2[-1]["summary"]["output"] == str(tmp_path / "models" / "tiny-ft2.pt")


def test_freeze_bn_keeps_running_statistics_and_trains_the_rest(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", width=8)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    weights = params_of(model)
    cfg = tiny_config("finetune", steps=6, model={"freeze_bn": True}, val={"fraction": 0.25, "every": 3})
    ev = _run(TrainJob(cfg, run_dir=tmp_path, output="", model=model, train_dataset=BlurHalves(8),
                       val_dataset=BlurHalves(4)))
    assert ev[-1]["type"] == "done"
    for m, (mean, var) in zip(bns, before):  # never updated, also after validations switched modes
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert not m.training
    after = params_of(model)
    learnt = [k for k in weights if "running" not in k and "num_batches" not in k]
    assert any(not torch.equal(weights[k], after[k]) for k in learnt)  # the rest learnt
    model.train()
    assert not any(m.training for m in bns)  # train() keeps them in eval mode


def test_val_score_decides_which_validation_is_best_and_which_weights_are_kept(tmp_path, monkeypatch):
    import dbd_core.train.loop as loop

    # Scripted held-out results where the loss and the MAE disagree (as on 5 real photos): validations
    # at steps 0, 3, 6 and the final one at 9.
    for score, best_step, flags in (("mae", 3, [True, True, False, False]),
                                    ("val_loss", 6, [True, False, True, False])):
        script = iter([{"val_loss": 1.0, "mae": 0.50, "f_beta": 0.5, "iou": 0.3},
                       {"val_loss": 2.0, "mae": 0.20, "f_beta": 0.9, "iou": 0.8},
                       {"val_loss": 0.5, "mae": 0.40, "f_beta": 0.6, "iou": 0.4},
                       {"val_loss": 3.0, "mae": 0.45, "f_beta": 0.5, "iou": 0.3}])
        monkeypatch.setattr(loop, "evaluate", lambda *a, _s=script, **k: dict(next(_s)))
        cfg = tiny_config(steps=9, val={"every": 3, "restore_best": True, "score": score})
        ev = _run(TrainJob(cfg, run_dir=tmp_path / score, train_dataset=BlurHalves(8), val_dataset=BlurHalves(4)))
        assert [v["best"] for v in _of(ev, "val")] == flags
        assert ev[-1]["summary"]["best_step"] == best_step
        # The output holds the best validated weights; the checkpoint keeps the last step's (and the best
        # ones beside them), so neither is lost and a longer run goes on from where this one got to.
        ck = torch.load(tmp_path / score / "checkpoint.pt", map_location="cpu", weights_only=False)
        out = torch.load(ev[-1]["summary"]["output"], map_location="cpu", weights_only=False)
        out_state = out["state_dict"] if "state_dict" in out else out
        best_state = ck["extra"]["early_stopping"]["best_state"]
        last = ck["modules"]["model"]
        assert ck["step"] == 9
        assert all(torch.equal(best_state[k].float(), out_state[k].float()) for k in best_state)
        assert any(not torch.equal(last[k], best_state[k]) for k in best_state if last[k].is_floating_point())
    assert loop._score({"f_beta": 0.9}, "f_beta") < loop._score({"f_beta": 0.5}, "f_beta")  # higher is better


def test_release_score_keeps_the_lowest_mae_within_the_release_rule_of_the_first_validation(tmp_path, monkeypatch):
    import dbd_core.train.loop as loop

    # Step 3 has the lowest MAE but its log-loss rose beyond the rule's 0.005 (the confidence kind of
    # gain); step 6 has F-beta beyond the 0.003 drop; step 9 is within both and lower than step 0.
    script = [{"mae": 0.100, "f_beta": 0.880, "nll": 0.210},
              {"mae": 0.080, "f_beta": 0.885, "nll": 0.260},
              {"mae": 0.085, "f_beta": 0.870, "nll": 0.200},
              {"mae": 0.095, "f_beta": 0.879, "nll": 0.214},
              {"mae": 0.090, "f_beta": 0.890, "nll": 0.190}]
    it = iter(script)
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: dict(next(it)))
    cfg = tiny_config(steps=9, val={"every": 3, "restore_best": True, "score": "release"})
    ev = _run(TrainJob(cfg, run_dir=tmp_path / "a", train_dataset=BlurHalves(8), val_dataset=BlurHalves(4)))
    assert [v["best"] for v in _of(ev, "val")] == [True, False, False, True]
    assert ev[-1]["summary"]["best_step"] == 9
    # the baseline is the run's first validation, and a resumed run keeps it: step 12's log-loss is within
    # 0.005 of step 0's (0.210), not of anything later
    cfg12 = tiny_config(steps=12, val={"every": 3, "restore_best": True, "score": "release"})
    ev = _run(TrainJob(cfg12, run_dir=tmp_path / "a", resume=True, train_dataset=BlurHalves(8),
                       val_dataset=BlurHalves(4)))
    assert [v["best"] for v in _of(ev, "val")] == [True] and ev[-1]["summary"]["best_step"] == 12
    assert loop._score({"mae": 0.05, "f_beta": 0.9, "nll": 0.3}, "release", None) == 0.05  # no baseline yet
    assert loop._score({"nll": 0.2}, "nll") < loop._score({"nll": 0.3}, "nll")  # log-loss: lower is better


def test_val_score_rejects_unknown_names():
    import pytest

    from dbd_core.train.config import ConfigError

    with pytest.raises(ConfigError, match="val.score"):
        tiny_config(val={"score": "accuracy"})


def test_validation_scores_two_class_renders_apart_from_one_stray_pixel_on_an_all_sharp_one():
    from types import SimpleNamespace

    import dbd_core.train.loop as loop
    from dbd_core.train.validate import evaluate

    half = torch.zeros(1, 16, 16)
    half[:, :, 8:] = 1.0
    stray = torch.zeros(1, 16, 16)
    stray[0, 3, 3] = 1.0  # the map's only blurred pixel on an all-sharp render
    items = [{"image": torch.zeros(3, 16, 16), "mask": half, "has_mask": True, "name": "two"},
             {"image": torch.ones(3, 16, 16), "mask": torch.zeros(1, 16, 16), "has_mask": True, "name": "sharp"}]

    class Scripted(torch.nn.Module):  # a perfect map of the two-class render, one stray pixel on the other
        def forward(self, x):
            target = torch.stack([half if float(im.mean()) == 0 else stray for im in x])
            return SimpleNamespace(logits=(target * 2 - 1) * 20)

    m = evaluate(Scripted(), items, "cpu", batch_size=2)
    assert m["f_beta"] == pytest.approx(0.5)  # the all-sharp render scores 0 for that one pixel
    assert m["f_beta_two_class"] == pytest.approx(1.0) and m["n_two_class"] == 1
    assert m["mae"] == pytest.approx(0.5 / 256, abs=1e-6)
    assert loop._score({"f_beta_two_class": 0.9}, "f_beta_two_class") < loop._score({"f_beta_two_class": 0.5},
                                                                                      "f_beta_two_class")
    tiny_config(val={"score": "f_beta_two_class"})  # a valid recipe key


def test_sgd_for_the_network_and_adamw_for_the_discriminator(tmp_path):
    """optim.name = "sgd" changes the network's optimizer only (discriminators, new in every run, keep
    AdamW), trains to the end, and an unknown optimizer name is refused by name."""
    from dbd_core.train.objectives import SupervisedObjective

    cfg = tiny_config(steps=3, loss={"adv": 0.05}, optim={"name": "sgd", "momentum": 0.9, "lr": 0.05})
    model = build_model("tiny", width=8)
    opts = SupervisedObjective(cfg, model, build_d=lambda: build_model(cfg["discriminator"]["name"])).optimizers()
    assert isinstance(opts["model"], torch.optim.SGD) and opts["model"].defaults["nesterov"]
    assert all(isinstance(o, torch.optim.AdamW) for k, o in opts.items() if k != "model")
    ev = _run(TrainJob(cfg, run_dir=tmp_path, model=model, train_dataset=BlurHalves(8)))
    assert ev[-1]["type"] == "done"
    with pytest.raises(Exception, match="optim.name"):
        tiny_config(optim={"name": "adam"})


def test_next_version_is_never_named_like_its_parent(tmp_path):
    from dbd_core.train.finetune import next_version_path

    assert next_version_path(tmp_path, "student").name == "student-ft1.pt"
    (tmp_path / "student-ft1.pt").write_bytes(b"x")
    (tmp_path / "student-ft3.pt").write_bytes(b"x")
    assert next_version_path(tmp_path, "student").name == "student-ft4.pt"
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert next_version_path(other, "student-ft1").name == "student-ft2.pt"  # not the parent's own name
    assert next_version_path(other, "student-ft7").name == "student-ft8.pt"
