"""benchmarks/error_breakdown.py: the subsets it scores, from render provenance and a screen file."""

import pytest

from bench_scripts import load_script

eb = load_script("error_breakdown")


def _sample(source, scene, radii, blurred):
    return {"provenance": {"source": source, "scene": scene, "radii": radii, "blurred_fraction": blurred}}


SAMPLES = [
    _sample("BSDS500/images/test/a.jpg", "sharp_object", [4.0, 0.0], 0.5),
    _sample("BSDS500/images/test/b.jpg", "blurred_object", [0.3, 1.7], 0.3),    # near-threshold radius
    _sample("BSDS500/images/test/c.jpg", "multi_layer", [0.0, 3.0, [0.5, 6.0]], 0.99),  # nearly one class
    _sample("BSDS500/images/test/d.jpg", "ramp", [[0.0, 9.0]], 0.6),
]
SCREEN = {"threshold": 0.5, "exclude_above": 0.05, "photos": [
    {"name": "BSDS500/images/test/a.jpg", "excluded": False}, {"name": "BSDS500/images/test/b.jpg", "excluded": True},
    {"name": "BSDS500/images/test/c.jpg", "excluded": False}, {"name": "BSDS500/images/test/d.jpg", "excluded": True}]}


def test_subsets_from_provenance():
    parts = eb.subsets(SAMPLES)
    assert parts["all"] == [0, 1, 2, 3]
    assert parts["a layer's radius in (1, 2.5) px"] == [1]
    assert parts["two-layer scenes, no radius in (1, 2.5) px"] == [0]
    assert parts["nearly one class (< 2 % or > 98 % blurred)"] == [2]
    assert parts["scene ramp"] == [3]
    assert not any("natural defocus" in k for k in parts)


def test_screen_adds_natural_defocus_subsets():
    parts = eb.subsets(SAMPLES, SCREEN)
    natural = next(k for k in parts if k.startswith("source photo with natural defocus"))
    assert "> 5% of the area above 0.5" in natural
    assert parts[natural] == [1, 3] and parts["source photo without it"] == [0, 2]
    assert parts["without it, no radius in (1, 2.5) px"] == [0, 2]


def test_screen_that_misses_a_source_photo_is_refused():
    partial = dict(SCREEN, photos=SCREEN["photos"][:2])
    with pytest.raises(SystemExit, match="c.jpg"):
        eb.subsets(SAMPLES, partial)
