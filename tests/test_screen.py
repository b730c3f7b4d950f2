"""Screening sharp source photos for natural defocus (`dbd screen`) and leaving the flagged ones out of
synthetic data (SharpPhotoSource(exclude=...), data.exclude, dbd synth --exclude)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from dbd_core.data.screen import at_native_scale, read_exclusions, score_map, screen_source, write_screen
from dbd_core.data.synth import SharpPhotoSource, SyntheticDataset
from dbd_core.errors import InputError


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Two sharp photos and one whose left half is defocused (natural defocus of its own)."""
    root = tmp_path_factory.mktemp("sharp")
    astro = cv2.resize(skdata.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    _write_rgb(root / "a_sharp.png", astro)
    _write_rgb(root / "sub" / "b_sharp.png", cv2.resize(skdata.rocket(), (192, 128), interpolation=cv2.INTER_AREA))
    soft = astro.copy()
    soft[:, :96] = cv2.GaussianBlur(astro, (0, 0), 4)[:, :96]
    _write_rgb(root / "c_bokeh.png", soft)
    return root


def _texture_predict(img: np.ndarray) -> np.ndarray:
    """A stand-in blur model: 1 where the local Laplacian energy is low (fast and deterministic)."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 6)
    return (energy < 2.0).astype(np.float32)


def test_score_map_counts_area_above_threshold():
    m = np.zeros((10, 10), np.float32)
    m[:, :3] = 0.9
    m[:, 3:5] = 0.5  # at the threshold: not counted
    s = score_map(m, 0.5)
    assert s["blurred_fraction"] == pytest.approx(0.3) and s["mean"] == pytest.approx(0.37)


def test_screen_flags_the_photo_with_its_own_defocus(photo_dir, tmp_path):
    src = SharpPhotoSource(photo_dir, "all")
    rows = list(screen_source(src, _texture_predict, exclude_above=0.2, short_side=192))
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"a_sharp.png", "sub/b_sharp.png", "c_bokeh.png"}
    assert by_name["c_bokeh.png"]["excluded"] and by_name["c_bokeh.png"]["blurred_fraction"] > 0.3
    assert not by_name["a_sharp.png"]["excluded"]
    out = write_screen(tmp_path / "screen.json", rows, model="texture", threshold=0.5, exclude_above=0.2,
                       short_side=192, created_by="test")
    doc = json.loads(out.read_text())
    assert doc["format"] == "dbd-sharp-screen" and doc["n_photos"] == 3 and "1 = blurred" in doc["polarity"]
    assert read_exclusions(out) == {r["name"] for r in rows if r["excluded"]}
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temp name


def test_excluded_photos_never_reach_synthetic_samples(photo_dir, tmp_path):
    src = SharpPhotoSource(photo_dir, "all", exclude={"c_bokeh.png", "not/there.png"})
    assert len(src) == 2 and src.excluded == ["c_bokeh.png"]
    ds = SyntheticDataset(src, length=12, seed=0)
    from dbd_core.data.synth import SynthConfig, render_sample

    sources = {render_sample(src, i, 0, SynthConfig(size=48))[2]["source"] for i in range(12)}
    assert sources and not any("c_bokeh" in s for s in sources)
    assert len(ds) == 12
    with pytest.raises(InputError, match="no photos found"):
        SharpPhotoSource(photo_dir, "all", exclude={"a_sharp.png", "sub/b_sharp.png", "c_bokeh.png"})


def test_training_config_data_exclude(photo_dir, tmp_path):
    from dbd_core.train.config import defaults
    from dbd_core.train.data import build_dataset

    screen = write_screen(tmp_path / "s.json", [{"name": "c_bokeh.png", "excluded": True},
                                                {"name": "a_sharp.png", "excluded": False}],
                          model="m", threshold=0.5, exclude_above=0.05, short_side=384, created_by="test")
    cfg = defaults()
    cfg["data"].update(kind="synthetic", sharp=str(photo_dir), split="all", exclude=str(screen), size=48, length=5)
    ds = build_dataset(cfg)
    assert ds.source.excluded == ["c_bokeh.png"] and len(ds.source) == 2
    cfg["data"]["exclude"] = str(tmp_path / "missing.json")
    with pytest.raises(InputError, match="missing.json.*no such screen file"):
        build_dataset(cfg)


def test_read_exclusions_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"format": "dbd-dataset", "samples": []}))
    with pytest.raises(InputError, match="not a dbd-sharp-screen file"):
        read_exclusions(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not a readable screen file"):
        read_exclusions(p)


def test_at_native_scale_keeps_the_photo_size():
    from dbd_core.lbp import LBPPredictor

    pred = LBPPredictor()
    img = cv2.resize(skdata.astronaut(), (200, 150), interpolation=cv2.INTER_AREA)
    before = pred.work_size
    m = at_native_scale(pred)(img)
    assert pred.work_size == before  # the predictor is not changed for its other callers
    assert m.shape == (150, 200) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1


def _run(module, argv):
    p = argparse.ArgumentParser(prog="dbd")
    module.add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.func(args)


def test_dbd_screen_then_synth_exclude_end_to_end(photo_dir, tmp_path, capsys):
    from dbd_core.cli import cmd_screen, cmd_synth

    screen = tmp_path / "screen.json"
    assert _run(cmd_screen, ["screen", "--sharp", str(photo_dir), "--out", str(screen), "--model", "lbp",
                             "--split", "all", "--exclude-above", "0.0", "--short-side", "192"]) == 0
    doc = json.loads(screen.read_text())
    assert doc["model"] == "lbp" and doc["model_sha256"] is None and doc["n_photos"] == 3
    assert all(0 <= r["blurred_fraction"] <= 1 for r in doc["photos"])
    excluded = {r["name"] for r in doc["photos"] if r["excluded"]}
    assert excluded == {r["name"] for r in doc["photos"] if r["blurred_fraction"] > 0.0}
    assert "excluded" in capsys.readouterr().err
    # A hand-edited screen (a user keeps only the defocused photo out) drives dbd synth.
    doc["photos"] = [dict(r, excluded=r["name"] == "c_bokeh.png") for r in doc["photos"]]
    screen.write_text(json.dumps(doc))
    out = tmp_path / "ds"
    assert _run(cmd_synth, ["synth", "--sharp", str(photo_dir), "--out", str(out), "--n", "6", "--size", "48",
                            "--split", "all", "--exclude", str(screen)]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert len(meta["samples"]) == 6
    assert not any("c_bokeh" in s["provenance"]["source"] for s in meta["samples"])
    assert meta["samples"][0]["provenance"]["screen"]["excluded_photos"] == 1
    with pytest.raises(InputError, match="would change the benchmark"):
        _run(cmd_synth, ["synth", "--sharp", str(photo_dir), "--out", str(tmp_path / "b"), "--preset", "bench",
                         "--exclude", str(screen)])
