"""Shipped weights (resources/models/{teacher,student}.pt), ONNX export and `dbd bench`.

The shipped-weights tests skip only while the weights files are absent; once they are installed every check
runs: they load, match the sha256 of their card, the card is complete, and on tests/data/bench_sample/ they
reproduce the metrics recorded in the card (benchmarks/record_bench_sample.py) within a small tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dbd_core.cli.main import main as dbd
from dbd_core.weights import card_path, sha256_file, shipped_weights

SAMPLE = Path(__file__).parent / "data" / "bench_sample"
# What a card must say to stand as a shipped model (keys as written by training + record_bench_sample.py).
REQUIRED_CARD_FIELDS = ("arch", "parameters", "recipe", "data", "wall_time_s", "metrics", "sha256")
# Same code, same weights, same photos: only float rounding differs between machines and torch builds
# (identical to 6 decimals on this project's Intel and AMD hosts). Tight enough that an inference change
# shows: ignoring the teacher card's 2 px guided window moves its MAE by 0.0017, the size of a release.
TOLERANCE = {"mae": 3e-4, "f_beta": 3e-3, "max_f": 3e-3, "iou": 3e-3, "auc_roc": 1e-3}


def _shipped(name: str) -> Path:
    path = shipped_weights(name)
    if path is None:
        pytest.skip(f"resources/models/{name}.pt is not installed yet (trained weights not shipped)")
    return path


def _card(path: Path) -> dict:
    return json.loads(card_path(path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_shipped_weights_load_and_match_card(name):
    from dbd_core.predict import load_predictor

    path = _shipped(name)
    card = _card(path)
    assert sha256_file(path) == card["sha256"], f"{path} differs from the sha256 in its card"
    missing = [k for k in REQUIRED_CARD_FIELDS if card.get(k) in (None, "", {}, [])]
    assert not missing, f"{card_path(path)} lacks {missing} (benchmarks/record_bench_sample.py --events fills some)"
    pred = load_predictor(name, threads=2)
    assert pred.model.arch_name == card["arch"] == name
    assert sum(p.numel() for p in pred.model.parameters()) == card["parameters"]
    assert pred.source == str(path)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_shipped_weights_reproduce_bench_sample_metrics(name):
    from dbd_core.data.formats import open_dataset_reader
    from dbd_core.evaluate import evaluate
    from dbd_core.predict import load_predictor

    path = _shipped(name)
    recorded = _card(path).get("bench_sample")
    assert recorded, f"{card_path(path)} has no bench_sample metrics: run python benchmarks/record_bench_sample.py"
    with open_dataset_reader(SAMPLE) as reader:
        report = evaluate(dataset=reader, predictor=load_predictor(name, threads=2))
    assert report.ok, report.errors + report.unmatched
    assert report.summary["n_images"] == recorded["n_images"]
    for key, tol in TOLERANCE.items():
        assert report.summary[key] == pytest.approx(recorded[key], abs=tol), key


def test_bench_sample_is_a_labelled_dataset():
    from dbd_core.data.formats import open_dataset_reader

    with open_dataset_reader(SAMPLE) as reader:
        assert reader.gt_polarity == "blur-white"
        assert len(reader) == 6
        rgb, mask, _ = reader.get(reader.names[0])
    assert rgb.shape == (320, 320, 3) and mask.shape == (320, 320)
    assert set(np.unique(mask)) <= {0, 1}


# ---------------------------------------------------------------- ONNX export

@pytest.fixture
def random_student(tmp_path):
    from dbd_core.nets.registry import build_model
    from dbd_core.weights import save_model

    torch.manual_seed(0)
    model = build_model("student", pretrained=False).eval()
    # Random BN statistics so the folded convs are not identities and the map is not a constant 0.5.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model, save_model(tmp_path / "student_random.pt", model, {"note": "random weights, test only"})


def test_onnx_export_matches_pytorch(random_student, tmp_path):
    pytest.importorskip("onnxruntime")
    from dbd_core.export import check_photos, export_onnx, session, torch_probability

    model, _ = random_student
    report = export_onnx(model, tmp_path / "s.onnx", size=96)
    assert report.path.is_file() and report.opset >= 17
    assert report.dynamic, report.note  # the student exports with dynamic height/width
    assert {c["size"] for c in report.checks} == {"96x96", "136x80"}
    assert report.max_abs_diff < 1e-4
    # Independently of the export's own check: a third size through a fresh session.
    sess = session(report.path)
    name, x = check_photos((64, 128))[1]
    ref = torch_probability(model, x)
    got = sess.run(["blur"], {"image": x})[0]
    assert got.shape == (1, 1, 64, 128)
    declared = sess.get_outputs()[0].shape
    assert declared[1] == 1 and declared[2] == "height" and declared[3] == "width"  # one channel, as documented
    assert float(ref.std()) > 1e-4  # a real map, not a constant, so the comparison means something
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_cli_export_onnx(random_student, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    _, weights = random_student
    out = tmp_path / "cli.onnx"
    assert dbd(["export-onnx", "--weights", str(weights), "--out", str(out), "--size", "64"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max abs difference" in text and "chelsea" in text
    assert dbd(["export-onnx", "--weights", str(weights), "--out", str(tmp_path / "x.txt")]) == 1
    err = capsys.readouterr().err
    assert "must end in .onnx" in err and "Traceback" not in err


# ---------------------------------------------------------------- dbd bench

def test_peak_rss_sees_numpy_allocation():
    from dbd_core.bench import PeakRSS

    with PeakRSS() as mem:
        a = np.ones((64, 1024, 1024), np.uint8)  # 64 MB touched
        del a
    assert 55 <= mem.peak_mb < 1000, mem.peak_mb


def test_cli_bench_tiny(tmp_path, capsys):
    from dbd_core.nets.registry import build_model
    from dbd_core.weights import save_model

    weights = save_model(tmp_path / "tiny.pt", build_model("tiny"), {"note": "test only"})
    out = tmp_path / "bench.json"
    rc = dbd(["bench", "--models", "student,lbp", "--weights-student", str(weights), "--repeats", "2",
              "--warmup", "1", "--photo-repeats", "1", "--photo-size", "400x300", "--threads", "2", "--json", str(out), "--quiet"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "net 320x320 ms" in table and "photo 400x300 ms" in table and "2 threads" in table
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("dbd bench --models student,lbp") and str(weights) in doc["command"]
    assert doc["machine"]["threads"] == 2 and doc["machine"]["torch"] == torch.__version__
    assert doc["machine"]["cpu"] and doc["machine"]["reference_gflops"] > 0
    assert f"host speed now: {doc['machine']['reference_gflops']:.0f} GFLOP/s" in table
    net, lbp = doc["models"]
    assert net["arch"] == "tiny" and net["source"] == str(weights)
    assert net["params"] == sum(p.numel() for p in build_model("tiny").parameters())
    assert net["gflops_320"] > 0 and net["size_bytes"] == weights.stat().st_size
    assert 0 < net["latency_net_p10_ms"] <= net["latency_net_ms"] <= net["latency_net_p90_ms"]
    assert f"{net['latency_net_p10_ms']:.1f}-{net['latency_net_p90_ms']:.1f}" in table
    # The frozen forward the Predictor runs is what latency_net measures; the eager one is reported beside it.
    assert "eager ms" in table and net["latency_net_eager_ms"] > 0 and f"{net['latency_net_eager_ms']:.1f}" in table
    assert "frozen TorchScript" in net["latency_net_what"]
    for row in (net, lbp):
        assert row["latency_net_ms"] > 0 and row["latency_photo_ms"] > 0
        assert row["peak_mem_mb"] >= 0 and row["photo_size"] == "400x300"
    if doc["machine"]["onnxruntime"]:
        assert net["onnx_latency_net_ms"] > 0
    assert lbp["params"] == 0 and lbp["gflops_320"] is None


def test_cli_bench_reports_bad_weights_and_goes_on(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file")
    rc = dbd(["bench", "--models", "student,lbp", "--weights-student", str(bad), "--repeats", "1",
              "--warmup", "0", "--photo-repeats", "1", "--photo-size", "64x48", "--no-onnx", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "broken.pt" in captured.err and "Traceback" not in captured.err
    assert "lbp " in captured.out  # the other model was still measured
