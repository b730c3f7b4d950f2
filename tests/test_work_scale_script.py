"""benchmarks/work_scale.py: the region scores it reports, and its tables on a small sharp-photo folder."""

import numpy as np
import pytest

from bench_scripts import load_script


@pytest.fixture(scope="module")
def ws():
    return load_script("work_scale")


def test_region_scores_read_the_named_regions(ws):
    m = np.zeros((60, 90), np.float32)
    m[:10] = 1.0          # coffee's top sixth
    assert ws._real_photo_scores(m, "coffee") == "top 1.00 / cup 0.00 / bottom 0.00"
    m = np.zeros((60, 90), np.float32)
    m[:, -18:] = 0.5      # chelsea's right fifth
    assert ws._real_photo_scores(m, "chelsea") == "right fifth 0.50 / face 0.00"
    assert ws._real_photo_scores(m, "rocket") == f"mean {m.mean():.2f}"


def test_tables_on_a_small_folder(ws, tmp_path, monkeypatch):
    import cv2
    import skimage.data

    kodak = tmp_path / "sharp" / "Kodak24"
    kodak.mkdir(parents=True)
    photo = skimage.data.astronaut()[::4, ::4]  # 128 px: sharp at this size
    cv2.imwrite(str(kodak / "kodim01.png"), photo[..., ::-1])
    sizes = []
    real_map = ws._map
    monkeypatch.setattr(ws, "_map", lambda model, rgb, size, threads: (sizes.append(size), real_map(model, rgb, size, threads))[1])
    out = tmp_path / "ws.md"
    assert ws.main(["--sharp", str(tmp_path / "sharp"), "--models", "lbp", "--threads", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| lbp | 320 |" in text and "| lbp | native |" in text and "| lbp | 640 |" in text
    assert "of 1 |" in text and "coffee (600 px)" in text
    assert sizes.count("native") == 1 + 4  # the sharp photo, then each of the 4 real photos
    with pytest.raises(SystemExit):
        ws.main(["--sharp", str(tmp_path / "empty"), "--models", "lbp"])
