"""`dbd train` and `dbd finetune` end to end through the CLI entry point, on tiny folder datasets."""

import hashlib
import json

import numpy as np
import pytest
import torch

from dbd_core.cli.main import main
from dbd_core.data.formats import open_writer
from dbd_core.weights import load_model_file
from train_fixtures import BlurHalves, discriminator_name

torch.set_num_threads(1)


def _dataset(path, n=8, size=48, big=False):
    """A dbd-dataset folder of textures half box-blurred (mask = blurred half); ``big`` photos are
    upscaled 4x so the resizing cache has something to shrink."""
    import cv2

    with open_writer(path, created_by="test") as w:
        for i in range(n):
            it = BlurHalves(n, size=size, seed=2)[i]
            rgb = (it["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            mask = it["mask"][0].numpy().astype(np.uint8)
            if big:
                rgb = cv2.resize(rgb, (size * 4, size * 3), interpolation=cv2.INTER_LINEAR)
                mask = cv2.resize(mask, (size * 4, size * 3), interpolation=cv2.INTER_NEAREST)
            w.add(f"photo{i:02d}", rgb, mask)
    return path


def _config(path, kind="teacher", steps=4, extra=""):
    loss = 'consistency = 1.0\nadv_distill = 0.05\n' if kind == "student" else 'adv = 0.05\nadv_start = 2\n'
    path.write_text(f"""
[run]
kind = "{kind}"
steps = {steps}
seed = 0
threads = 1
log_every = 1
checkpoint_every = 0
[model]
name = "tiny"
kwargs = {{ width = 8 }}
[discriminator]
name = "{discriminator_name()}"
[optim]
lr = 0.01
warmup_steps = 1
[loss]
{loss}
[data]
kind = "folder"
size = 32
batch_size = 4
max_side = 64
[val]
fraction = 0.25
every = 2
{extra}
""")
    return path


def _events(run_dir):
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is valid JSON
    assert all(isinstance(e.get("type"), str) for e in events)
    return events


def test_train_teacher_writes_log_weights_card_and_resumes(tmp_path, capsys):
    data = _dataset(tmp_path / "ds")
    cfg = _config(tmp_path / "t.toml")
    run = tmp_path / "run"
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(run), "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "done: teacher" in out.out and str(run / "model.pt") in out.out
    ev = _events(run)
    assert ev[0]["type"] == "start" and ev[0]["n_train"] == 6 and ev[0]["n_val"] == 2
    assert [e["step"] for e in ev if e["type"] == "step"] == [1, 2, 3, 4]
    assert ev[-1]["type"] == "done" and any(e["type"] == "val" for e in ev)
    model, card = load_model_file(run / "model.pt")
    assert card["kind"] == "teacher" and card["steps"] == 4 and (run / "model.json").is_file()
    assert card["recipe"]["loss"]["adv"] == 0.05

    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(run), "--quiet",
               "--resume", "--steps", "6"])
    assert rc == 0, capsys.readouterr().err
    ev = _events(run)  # appended: the second run's events follow the first's
    starts = [e for e in ev if e["type"] == "start"]
    assert len(starts) == 2 and starts[1]["start_step"] == 4 and starts[1]["total_steps"] == 6
    assert [e["step"] for e in ev[ev.index(starts[1]):] if e["type"] == "step"] == [5, 6]
    assert load_model_file(run / "model.pt")[1]["steps"] == 6
    before = (run / "model.pt").read_bytes()
    capsys.readouterr()
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(run), "--quiet",
               "--resume"])  # the recipe says 4 steps, the checkpoint holds 6: nothing to train, said so
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "at step 6, past run.steps 4" in err and "--steps N" in err and len(err.splitlines()) == 1
    assert (run / "model.pt").read_bytes() == before


def test_train_student_from_teacher_weights_and_missing_teacher(tmp_path, capsys):
    from dbd_core.nets import build_model
    from dbd_core.weights import save_model

    data = _dataset(tmp_path / "ds")
    teacher = save_model(tmp_path / "teacher.pt", build_model("tiny", width=8), {"kind": "teacher"})
    cfg = _config(tmp_path / "s.toml", kind="student")
    run = tmp_path / "srun"
    rc = main(["train", "student", "--config", str(cfg), "--data", str(data), "--teacher", str(teacher),
               "--run-dir", str(run), "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    steps = [e for e in _events(run) if e["type"] == "step"]
    assert {"consistency", "adv_distill", "d3"} <= set(steps[-1]["losses"])
    assert load_model_file(run / "model.pt")[1]["teacher"] == str(teacher)

    rc = main(["train", "student", "--config", str(cfg), "--data", str(data), "--run-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "--teacher" in err and len(err.splitlines()) == 1
    rc = main(["train", "student", "--config", str(cfg), "--data", str(data), "--teacher", str(tmp_path / "no.pt"),
               "--run-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "no.pt" in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("extra, key", [("lr_rate = 0.1", "val.lr_rate"), ("every = \"often\"", "val.every")])
def test_bad_config_key_is_one_line_error_naming_the_key(tmp_path, capsys, extra, key):
    # the extra line lands in [val]; a duplicate `every` is a TOML error, so that case rewrites it
    cfg = _config(tmp_path / "bad.toml", extra=extra if "lr_rate" in extra else "")
    if "often" in extra:
        cfg.write_text(cfg.read_text().replace("every = 2", extra))
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(tmp_path), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and key in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r" / "model.pt").exists()


def test_missing_paths_name_the_config_file_and_key_or_the_option(tmp_path, capsys):
    cfg = _config(tmp_path / "paths.toml")
    cfg.write_text(cfg.read_text().replace("[model]\n", f'[model]\ninit = "{tmp_path / "gone.pt"}"\n'))

    def err_of(*argv):
        rc = main(["train", "teacher", "--config", str(cfg), "--run-dir", str(tmp_path / f"r{len(argv)}"), *argv])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("dbd train teacher: error: "), err
        return err

    assert "paths.toml: model.init: " in err_of("--data", str(_dataset(tmp_path / "ds")))
    cfg.write_text(cfg.read_text().replace(f'init = "{tmp_path / "gone.pt"}"\n', ""))
    assert "--data: " in err_of("--data", str(tmp_path / "no_such_set"))  # the option, not data.path
    assert "--sharp: " in err_of("--sharp", str(tmp_path / "no_photos"), "--quiet")


def test_a_rerun_without_resume_never_replaces_a_run_and_every_rank_exits_0(tmp_path, capsys):
    data = _dataset(tmp_path / "ds")
    cfg = _config(tmp_path / "t.toml")
    run = tmp_path / "run"
    argv = ["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    before = (run / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(argv) == 1  # forgot --resume: refused, nothing touched
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "--resume" in err and "--restart" in err and "\n" not in err
    assert (run / "model.pt").read_bytes() == before
    assert main(argv + ["--resume", "--restart"]) == 1
    assert main(argv + ["--restart"]) == 0  # asked for: starts over
    from dbd_core.cli._progress import drive

    events = [{"type": "start"}, {"type": "done", "summary": {}}]
    # a torchrun rank other than 0 prints nothing but must exit 0 too, or torchrun fails the whole job
    assert drive(lambda cancel: iter(events), None, is_main=False) == 0
    assert drive(lambda cancel: iter([{"type": "error", "message": "x"}]), None, is_main=False) == 1


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    cfg = _config(tmp_path / "t.toml")
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(_dataset(tmp_path / "ds")),
               "--run-dir", str(tmp_path / "empty"), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "no checkpoint to resume from" in err


def test_finetune_cli_writes_new_version_beside_parent(tmp_path, capsys):
    from dbd_core.nets import build_model
    from dbd_core.weights import save_model

    data = _dataset(tmp_path / "mine", n=8, big=True)
    models = tmp_path / "models"
    torch.manual_seed(0)
    parent = save_model(models / "tiny.pt", build_model("tiny", width=8), {"version": "v0"})
    parent_bytes = parent.read_bytes()
    cfg = _config(tmp_path / "ft.toml", kind="finetune", steps=8, extra="patience = 2\nrestore_best = true")
    cfg.write_text(cfg.read_text().replace("adv = 0.05", "adv = 0.0"))
    rc = main(["finetune", "--data", str(data), "--model", str(parent), "--out", str(models), "--config", str(cfg),
               "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    new = models / "tiny-ft1.pt"
    assert "done: finetune" in out.out and "before" in out.out and "after" in out.out and str(new) in out.out
    assert parent.read_bytes() == parent_bytes
    _, card = load_model_file(new)
    assert card["parent"]["sha256"] == hashlib.sha256(parent_bytes).hexdigest()
    assert card["data"] == {"path": str(data), "n_photos": 8, "n_train": 6, "n_val": 2}
    assert card["recipe"]["run"]["kind"] == "finetune" and card["recipe"]["data"]["max_side"] == 64
    assert {"mae", "f_beta"} <= set(card["metrics"]["before"]) and {"mae", "f_beta"} <= set(card["metrics"]["after"])
    ev = [json.loads(x) for x in (models / "runs" / "finetune-events.jsonl").read_text().splitlines()]
    assert ev[-1]["type"] == "done" and ev[-1]["summary"]["output"] == str(new)

    rc = main(["finetune", "--data", str(data), "--model", str(new), "--out", str(models), "--config", str(cfg),
               "--steps", "2", "--quiet"])
    assert rc == 0 and (models / "tiny-ft2.pt").is_file()  # never over an earlier version
    assert load_model_file(models / "tiny-ft2.pt")[1]["parent"]["file"] == str(new)


def test_train_and_finetune_name_each_unreadable_sample_and_train_on_the_rest(tmp_path, capsys):
    from dbd_core.nets import build_model
    from dbd_core.weights import save_model

    data = _dataset(tmp_path / "ds", n=9)
    (data / "gt" / "photo03.png").write_bytes(b"")
    bad = f"{data / 'gt' / 'photo03.png'}: empty file (0 bytes)"
    cfg = _config(tmp_path / "t.toml", steps=2)
    rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(tmp_path / "run"),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("photo03.png") == 1 and f"{bad} (left out)" in err.splitlines()
    ev = _events(tmp_path / "run")
    start = next(e for e in ev if e["type"] == "start")
    assert start["n_train"] + start["n_val"] == 8  # the usable samples only

    torch.manual_seed(0)
    parent = save_model(tmp_path / "models" / "tiny.pt", build_model("tiny", width=8), {"version": "v0"})
    ft = _config(tmp_path / "ft.toml", kind="finetune", steps=2)
    ft.write_text(ft.read_text().replace("adv = 0.05", "adv = 0.0"))
    rc = main(["finetune", "--data", str(data), "--model", str(parent), "--out", str(tmp_path / "models"),
               "--config", str(ft), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"{bad} (left out)" in err.splitlines()


def test_finetune_cli_bad_data_is_one_line_error(tmp_path, capsys):
    rc = main(["finetune", "--data", str(tmp_path / "nothing"), "--model", "x.pt", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "nothing" in err and len(err.splitlines()) == 1


def test_summary_says_which_step_the_weights_file_holds():
    from dbd_core.cli._progress import summary_text

    last, best = {"mae": 0.0996, "f_beta": 0.8978}, {"mae": 0.0973, "f_beta": 0.8700}
    text = summary_text({"kind": "teacher", "steps": 1500, "wall_s": 60, "metrics": last, "best_step": 0,
                         "best_metrics": best, "output": "runs/t/model.pt"})
    assert "last     mae=0.0996" in text and "kept     step 0 (best validation): mae=0.0973" in text
    plain = summary_text({"kind": "teacher", "steps": 10, "wall_s": 6, "metrics": last, "best_step": 10,
                          "best_metrics": last})
    assert "metrics  mae=0.0996" in plain and "kept" not in plain


def test_pinned_init_and_teacher_refuse_another_file(tmp_path, capsys):
    """A staged recipe names a released file by path and pins its sha256: once a later release replaces
    the file, re-running the old stage is refused in one line instead of training from other weights."""
    from dbd_core.nets import build_model
    from dbd_core.weights import save_model

    data = _dataset(tmp_path / "ds")
    init = save_model(tmp_path / "init.pt", build_model("tiny", width=8), {"kind": "teacher"})
    digest = hashlib.sha256(init.read_bytes()).hexdigest()
    other = "0" * 12 if not digest.startswith("0" * 12) else "f" * 12

    def run(kind, pin_line, name, *extra):
        cfg = _config(tmp_path / f"{name}.toml", kind=kind)
        cfg.write_text(cfg.read_text().replace("[model]\n", f"[model]\n{pin_line}\n"))
        rc = main(["train", kind, "--config", str(cfg), "--data", str(data), "--run-dir", str(tmp_path / name),
                   "--quiet", *extra])
        return rc, capsys.readouterr().err.strip()

    rc, err = run("teacher", f'init = "{init}"\ninit_sha256 = "{digest[:12]}"', "ok")
    assert rc == 0, err
    assert load_model_file(tmp_path / "ok" / "model.pt")[1]["steps"] == 4

    rc, err = run("teacher", f'init = "{init}"\ninit_sha256 = "{other}"', "wrong")
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "init.pt" in err and digest[:12] in err and other in err and "model.init_sha256" in err
    assert not (tmp_path / "wrong" / "model.pt").exists()

    rc, err = run("teacher", f'init = "{init}"\ninit_sha256 = "v0.2"', "notahash")
    assert rc == 1 and "not the start of a sha256" in err and len(err.splitlines()) == 1

    rc, err = run("student", f'teacher_sha256 = "{other}"', "student", "--teacher", str(init))
    assert rc == 1 and "model.teacher_sha256" in err and "init.pt" in err and len(err.splitlines()) == 1
    rc, err = run("student", f'teacher_sha256 = "{digest[:16]}"', "student_ok", "--teacher", str(init))
    assert rc == 0, err

    # --unpin: train from what the paths hold now; the card says which pins were set aside
    rc, err = run("teacher", f'init = "{init}"\ninit_sha256 = "{other}"', "unpinned", "--unpin")
    assert rc == 0, err
    assert load_model_file(tmp_path / "unpinned" / "model.pt")[1]["unpinned"] == {"init_sha256": other}
    rc, err = run("student", f'teacher_sha256 = "{other}"', "student_unpinned", "--teacher", str(init), "--unpin")
    assert rc == 0, err


def test_init_with_kwargs_grows_the_file_or_refuses_in_one_line(tmp_path, capsys):
    """model.kwargs beside model.init mean "this file, with these settings added" (dbd_core.weights.grow_from):
    settings the stored weights cannot carry over exactly are refused before any step is trained."""
    from dbd_core.nets import build_model
    from dbd_core.weights import save_model

    data = _dataset(tmp_path / "ds")
    init = save_model(tmp_path / "init.pt", build_model("tiny", width=8), {"kind": "teacher"})
    for name, kwargs, ok in (("same", "{ width = 8 }", True), ("wider", "{ width = 16 }", False)):
        cfg = _config(tmp_path / f"{name}.toml")
        cfg.write_text(cfg.read_text().replace("kwargs = { width = 8 }", f'kwargs = {kwargs}\ninit = "{init}"'))
        rc = main(["train", "teacher", "--config", str(cfg), "--data", str(data), "--run-dir", str(tmp_path / name),
                   "--quiet"])
        err = capsys.readouterr().err.strip()
        if ok:
            assert rc == 0, err
            assert load_model_file(tmp_path / name / "model.pt")[0].arch_kwargs == {"width": 8}
        else:
            assert rc == 1 and len(err.splitlines()) == 1 and "cannot grow 'tiny'" in err and "init.pt" in err
            assert not (tmp_path / name / "model.pt").exists()
