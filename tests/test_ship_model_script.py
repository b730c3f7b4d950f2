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


def test_an_interpolation_ships_with_its_report_as_the_cards_validation(tmp_path):
    import json

    import torch

    from dbd_core.nets.registry import build_model
    from dbd_core.weights import load_model_file, save_model

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    save_model(run / "model.pt", build_model("tiny", width=8), {"command": "dbd train teacher --config r.toml"})
    events = [{"type": "start", "time": 0.0, "start_step": 0, "total_steps": 4},
              {"type": "step", "time": 5.0, "step": 4},
              {"type": "done", "time": 6.0, "step": 4, "summary": {"best_step": 0, "best_metrics": {"mae": 0.2}}}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nkind = "teacher"\n[model]\nname = "tiny"\n[data]\nkind = "synthetic"\n'
                      '[val]\nfraction = 0.1\nholdout = "photos"\nrender = "bench"\nsize = 32\nbatches = 2\n')
    report = {"command": "python benchmarks/interpolate_weights.py --config r.toml", "start": "released.pt",
              "start_sha256": "ab" * 32, "end": "run/checkpoint.pt", "kept_alpha": 0.25, "verdict": "ship: ...",
              "alphas": [{"alpha": 0.0, "mae": 0.2}, {"alpha": 0.25, "mae": 0.19}]}
    torch.manual_seed(1)
    interp_model = build_model("tiny", width=8)
    save_model(tmp_path / "interp.pt", interp_model, {"interpolation": report})
    assert load_script("ship_model").main(["teacher", "--run", str(run), "--weights", str(tmp_path / "interp.pt"),
                                           "--config", str(recipe), "--models-dir", str(tmp_path / "models")]) == 0
    shipped, card = load_model_file(tmp_path / "models" / "teacher.pt")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), interp_model.state_dict().values()))
    assert card["metrics"]["validation"] == {"alpha": 0.25, "mae": 0.19} and card["metrics"]["best_step"] is None
    assert "alpha 0.25" in card["metrics"]["selected"] and card["interpolation"]["kept_alpha"] == 0.25
    assert card["recipe"]["command"] == ("dbd train teacher --config r.toml && "
                                         "python benchmarks/interpolate_weights.py --config r.toml")
    assert card["wall_time_s"] == 6.0
    assert "inference" not in card

    # the guided window belongs to the weights: given, it is recorded; not given, the old one is not carried over
    argv = ["teacher", "--run", str(run), "--config", str(recipe), "--models-dir", str(tmp_path / "models")]
    assert load_script("ship_model").main(argv + ["--guided-radius", "2"]) == 0
    assert load_model_file(tmp_path / "models" / "teacher.pt")[1]["inference"]["guided_radius"] == 2


def test_reshipping_without_a_window_says_the_old_one_is_dropped(tmp_path, capsys):
    import json

    import torch

    from dbd_core.nets.registry import build_model
    from dbd_core.weights import load_model_file, save_model

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    save_model(run / "model.pt", build_model("tiny", width=8), {"command": "dbd train teacher --config r.toml"})
    events = [{"type": "start", "time": 0.0, "start_step": 0, "total_steps": 4},
              {"type": "done", "time": 6.0, "step": 4, "summary": {"best_step": 4, "metrics": {"mae": 0.2}}}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nkind = "teacher"\n[model]\nname = "tiny"\n[data]\nkind = "synthetic"\n')
    models = tmp_path / "models"
    save_model(models / "teacher.pt", build_model("tiny", width=8), {"inference": {"guided_radius": 2}})
    assert load_script("ship_model").main(["teacher", "--run", str(run), "--config", str(recipe),
                                           "--models-dir", str(models)]) == 0
    assert "used a 2 px guided window; these weights get the default" in capsys.readouterr().err
    assert "inference" not in load_model_file(models / "teacher.pt")[1]
