"""Training-loop state: early stopping survives resume, the LR schedule needs no torch scheduler (no
"scheduler before optimizer" warning when an adversary idles), unlabelled photos, the resizing cache."""

import warnings

import numpy as np
import pytest
import torch

from dbd_core.nets import build_model
from dbd_core.train.checkpoint import load_checkpoint, save_checkpoint
from dbd_core.train.loop import TrainJob, lr_lambda, run_training
from dbd_core.train.objectives import SupervisedObjective
from train_fixtures import BlurHalves, params_of, tiny_config

torch.set_num_threads(1)


def _of(events, kind):
    return [e for e in events if e["type"] == kind]


def _early_cfg():
    return tiny_config(steps=30, optim={"lr": 0.03}, val={"every": 2, "patience": 2, "restore_best": True})


class PartlyFlipped(BlurHalves):
    """Validation items of which every third has its mask inverted. Learning the training data first helps
    the other two thirds, then the growing confidence on the inverted third outweighs them: the validation
    loss falls, then rises (here: lowest at step 12, early stop at 16), by construction rather than by a
    stall that depended on one CPU's floating-point path (the true-label version stalled on one machine
    and kept improving on another)."""

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return dict(item, mask=1 - item["mask"]) if i % 3 == 2 else item


def _val_set():
    return PartlyFlipped(6, seed=3)


def _run(tmp, cfg, cancel=None, resume=False, seed=0):
    torch.manual_seed(seed)
    model = build_model("tiny", width=8)
    ev = list(run_training(TrainJob(cfg, run_dir=tmp, model=model, train_dataset=BlurHalves(10),
                                    val_dataset=_val_set(), resume=resume), cancel))
    return model, ev


def test_resume_keeps_early_stopping_state(tmp_path):
    straight, ev_a = _run(tmp_path / "a", _early_cfg())
    sa = ev_a[-1]["summary"]
    assert sa["stopped_early"] and sa["best_step"] < sa["steps"] < 30  # the scenario this test needs

    seen = []

    def cancel():  # cut after the first non-improving validation, before the early stop
        return len(seen) >= sa["best_step"] + 2

    gen = run_training(TrainJob(_early_cfg(), run_dir=tmp_path / "b", model=_fresh(0), train_dataset=BlurHalves(10),
                                val_dataset=_val_set()), cancel)
    for e in gen:
        seen += [e] if e["type"] == "step" else []
        last = e
    assert last["type"] == "cancelled"
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["extra"]["early_stopping"]
    assert saved["best_step"] == sa["best_step"] and saved["bad_vals"] == 1

    resumed, ev_b = _run(tmp_path / "b", _early_cfg(), resume=True, seed=123)  # weights come from the checkpoint
    sb = ev_b[-1]["summary"]
    assert (sb["steps"], sb["best_step"], sb["stopped_early"]) == (sa["steps"], sa["best_step"], True)
    assert sb["best_metrics"] == sa["best_metrics"]
    a, b = params_of(straight), params_of(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)  # both restored the same best weights


def _fresh(seed):
    torch.manual_seed(seed)
    return build_model("tiny", width=8)


def test_checkpoint_without_early_stopping_state_still_resumes(tmp_path):
    """Checkpoints written before the state existed (no extra.early_stopping, LambdaLR states) load."""
    cfg = tiny_config(steps=6)
    _run(tmp_path, cfg, cancel=lambda: False)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    model = build_model("tiny", width=8)
    model.load_state_dict(ck["modules"]["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt.load_state_dict(ck["optimizers"]["model"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    old = dict(ck, extra={"world_size": 1}, step=3)
    save_checkpoint(tmp_path / "checkpoint.pt", step=3, modules={"model": model}, optimizers={"model": opt},
                    schedulers={"model": sched}, config=old["config"], extra=old["extra"])
    _, ev = _run(tmp_path, cfg, resume=True)
    assert ev[0]["start_step"] == 3 and ev[-1]["type"] == "done" and ev[-1]["step"] == 6


def test_idle_adversary_before_adv_start_gives_no_scheduler_warning_and_exact_rates(tmp_path):
    cfg = tiny_config(steps=8, loss={"adv": 0.05, "adv_start": 4})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, ev = _run(tmp_path, cfg)
    msgs = [str(w.message) for w in caught]
    assert not [m for m in msgs if "lr_scheduler" in m], msgs
    f = lr_lambda(cfg)
    steps = _of(ev, "step")
    # each step event reports the rate that step used: base x schedule(step index)
    assert [e["lr"] for e in steps] == pytest.approx([1e-2 * f(e["step"] - 1) for e in steps])
    assert "d1" not in steps[2]["losses"] and "d1" in steps[-1]["losses"]


def test_supervised_step_ignores_unlabelled_items():
    cfg = tiny_config(steps=4)
    torch.manual_seed(0)
    model = build_model("tiny", width=8)
    obj = SupervisedObjective(cfg, model)
    batch = {k: torch.stack([BlurHalves(4, unlabelled=True)[i][k] for i in range(4)]) for k in ("image", "mask")}
    batch["has_mask"] = torch.zeros(4, dtype=torch.bool)
    before = params_of(model)
    obj.train_step(batch, 0)  # nothing labelled: zero loss, weights unchanged (weight decay 0)
    after = params_of(model)
    assert all(torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point()
               and "running" not in k)

    lab = BlurHalves(4)
    mixed = {"image": torch.stack([lab[0]["image"], batch["image"][1]]),
             "mask": torch.stack([lab[0]["mask"], batch["mask"][1]]), "has_mask": torch.tensor([True, False])}
    only = {"image": mixed["image"][:1], "mask": mixed["mask"][:1], "has_mask": torch.tensor([True])}
    model.eval()  # BatchNorm in eval: the loss of item 0 must not depend on the unlabelled one
    with torch.no_grad():
        out_m, out_o = model(mixed["image"]), model(only["image"])
    from dbd_core.train.objectives import labelled_of, take

    keep = labelled_of(mixed, mixed["image"])
    t_m = obj.content(take(out_m, keep), take(mixed["mask"], keep))
    t_o = obj.content(out_o, only["mask"])
    assert float(t_m["content"]) == pytest.approx(float(t_o["content"]), rel=1e-5)


def test_resizing_cache_decodes_reduced_and_serves_the_dataset(tmp_path):
    import cv2

    from dbd_core.data.formats import open_writer
    from dbd_core.train.data import ResizingCache, build_dataset

    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (1600, 1200))
    mask = np.zeros((1200, 1600), np.uint8)
    mask[:, 800:] = 1
    with open_writer(tmp_path / "ds", created_by="test") as w:
        for i in range(2):
            w.add(f"p{i}", rgb, mask)
    cfg = tiny_config("finetune", data={"kind": "folder", "size": 64, "max_side": 400})
    ds = build_dataset(cfg, path=str(tmp_path / "ds"))
    assert isinstance(ds.reader, ResizingCache) and ds.reader.reduction_for("p0") == 4  # 1600/4 = 400
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["has_mask"]
    img, m, _ = ds.reader.get("p0")
    assert img.shape == (300, 400, 3) and m.shape == (300, 400) and set(np.unique(m)) == {0, 1}
    assert ds.reader.get("p0")[0] is img  # decoded once
