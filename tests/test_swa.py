"""Weight averaging ([swa]): the running mean, BatchNorm re-measurement, and the loop keeping the average
only when it validates better, across a resume."""

import pytest
import torch
from torch import nn

from dbd_core.nets import build_model
from dbd_core.train.loop import TrainJob, run_training
from dbd_core.train.swa import WeightAverage, recompute_bn
from dbd_core.weights import load_model_file
from train_fixtures import BlurHalves, params_of, tiny_config


def test_running_mean_of_snapshots_and_its_checkpoint_state():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    avg = WeightAverage()
    seen = []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked.fill_(int(value))
        seen.append(net[0].weight.clone())
        avg.update(net)
    assert avg.n == 3
    other = WeightAverage()
    other.load_state_dict(avg.state_dict())  # what a resumed run restores
    target = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    other.copy_to(target)
    assert torch.allclose(target[0].weight, torch.stack(seen).mean(0))
    assert int(target[1].num_batches_tracked) == 0  # integer buffers are not averaged
    with pytest.raises(ValueError):
        WeightAverage().copy_to(target)


def test_recompute_bn_measures_the_data_and_leaves_frozen_layers_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.live, self.frozen = nn.BatchNorm2d(1), nn.BatchNorm2d(1)

        def train(self, mode=True):  # as an encoder with frozen levels does
            super().train(mode)
            self.frozen.eval()
            return self

        def forward(self, x):
            return self.frozen(self.live(x))

    net = Net()
    net.frozen.running_mean.fill_(5.0)
    batches = [torch.full((2, 1, 4, 4), v) + torch.randn(2, 1, 4, 4) * 0.1 for v in (1.0, 3.0)]
    net.eval()
    assert recompute_bn(net, batches) == 2
    assert abs(float(net.live.running_mean) - 2.0) < 0.05  # plain mean over both batches, not a momentum mix
    assert float(net.frozen.running_mean) == 5.0
    assert not net.training and net.live.momentum == 0.1


def test_loop_validates_the_average_and_keeps_it_only_if_better(tmp_path, monkeypatch):
    import dbd_core.train.loop as loop

    data, val = BlurHalves(8), BlurHalves(4)
    real_update = WeightAverage.update
    snapshots = []
    monkeypatch.setattr(WeightAverage, "update", lambda self, m: (snapshots.append(params_of(m)), real_update(self, m)))
    for name, avg_mae, kept in (("wins", 0.10, True), ("loses", 0.90, False)):
        # validations at steps 0, 3, 6 and 9 (the last), then the average of the snapshots at 4, 6, 8
        script = iter([{"mae": m} for m in (0.5, 0.3, 0.4, 0.45, avg_mae)])
        monkeypatch.setattr(loop, "evaluate", lambda *a, _s=script, **k: dict(next(_s)))
        cfg = tiny_config(steps=9, val={"every": 3, "restore_best": True, "score": "mae"},
                          swa={"start": 4, "every": 2, "bn_batches": 2})
        torch.manual_seed(0)
        model = build_model("tiny", width=8)
        snapshots.clear()
        ev = list(run_training(TrainJob(cfg, run_dir=tmp_path / name, model=model, train_dataset=data,
                                        val_dataset=val)))
        vals = [e for e in ev if e["type"] == "val"]
        assert vals[-1]["swa"] == 3 and "mean of 3 snapshots, steps 4-8" in vals[-1]["phase"]
        assert vals[-1]["best"] is kept
        summary = ev[-1]["summary"]
        assert summary["swa"] == {"snapshots": 3, "metrics": {"mae": avg_mae}, "kept": kept}
        assert summary["metrics"] == {"mae": 0.45}  # "last" is still the last step's validation
        out, card = load_model_file(summary["output"])
        got = params_of(out)
        weight = next(k for k in got if k.endswith("weight") and got[k].dim() == 4)
        mean = torch.stack([s[weight] for s in snapshots]).mean(0)
        if kept:
            assert torch.allclose(got[weight], mean, atol=1e-6) and card["weights"].startswith("mean of 3")
            assert card["metrics"] == {"mae": avg_mae}
        else:  # the best validated step (3) is what the file holds
            assert summary["best_step"] == 3 and not torch.allclose(got[weight], mean, atol=1e-6)
            assert "weights" not in card


def test_average_survives_a_resume(tmp_path):
    cfg = tiny_config(steps=8, val={"every": 4, "restore_best": True, "score": "mae"},
                      swa={"start": 2, "every": 2, "bn_batches": 1})
    data, val = BlurHalves(10), BlurHalves(4)
    torch.manual_seed(0)
    straight = list(run_training(TrainJob(cfg, run_dir=tmp_path / "a", model=build_model("tiny", width=8),
                                          train_dataset=data, val_dataset=val)))
    seen = []
    torch.manual_seed(0)
    for e in run_training(TrainJob(cfg, run_dir=tmp_path / "b", model=build_model("tiny", width=8),
                                   train_dataset=data, val_dataset=val), cancel=lambda: len(seen) >= 5):
        seen += [e] if e["type"] == "step" else []
    resumed = list(run_training(TrainJob(cfg, run_dir=tmp_path / "b", model=build_model("tiny", width=8),
                                         train_dataset=data, val_dataset=val, resume=True)))
    a, b = straight[-1]["summary"]["swa"], resumed[-1]["summary"]["swa"]
    assert a["snapshots"] == b["snapshots"] == 4
    assert a["metrics"] == pytest.approx(b["metrics"])


def test_swa_without_validation_or_kept_best_weights_is_refused(tmp_path):
    for name, val, kw in (("noval", {}, {}), ("nobest", {"every": 2}, {"val_dataset": BlurHalves(4)})):
        cfg = tiny_config(steps=4, swa={"start": 2}, val=val)
        ev = list(run_training(TrainJob(cfg, run_dir=tmp_path / name, train_dataset=BlurHalves(8), **kw)))
        assert ev[-1]["type"] == "error" and "swa.start needs validation" in ev[-1]["message"]
        assert "val.restore_best = true" in ev[-1]["message"]
        assert not (tmp_path / name / "model.pt").exists()
