"""benchmarks/ship_model.py: the parts of a model card it derives from the recipe."""

from bench_scripts import load_script


def test_a_models_card_states_what_its_validation_numbers_were_measured_on():
    protocol = load_script("ship_model").validation_protocol
    bench = protocol({"fraction": 0.1, "holdout": "photos", "render": "bench", "size": 320, "batches": 50,
                      "score": "release"})
    assert "held-out source photos" in bench and "as the bench renders" in bench and "320 px" in bench
    assert "'release'" in bench
    items = protocol({"fraction": 0.02, "holdout": "items", "render": "train", "size": 0, "batches": 30,
                      "score": "mae"})
    assert "training distribution" in items and "0.02" in items and "bench" not in items
