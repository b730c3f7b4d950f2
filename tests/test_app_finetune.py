"""Fine-tune from the studio (offscreen, pytest-qt): a tiny network and a tiny recipe, so each run takes
about a second. The student view uses a weights file made here; the teacher view a fake predictor."""

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

import app  # noqa: F401
from app.main_window import MainWindow
from app.models import FunctionPredictor, ModelProvider
from dbd_core.annotate import ProjectStore
from dbd_core.nets import build_model
from dbd_core.predict import load_predictor
from dbd_core.weights import save_model
from train_fixtures import tiny_config


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path, chelsea, coffee):
    """A project with 6 photos marked done, masks = the blurred left part of each photo."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        img = cv2.resize(chelsea if i % 2 else coffee, (64, 48), interpolation=cv2.INTER_AREA)
        img = np.roll(img, 5 * i, axis=1).copy()
        img[:, :32] = cv2.blur(img[:, :32], (7, 7))
        cv2.imwrite(str(photos / f"p{i}.png"), img[..., ::-1])
    store = ProjectStore.open(tmp_path / "proj")
    store.add_photos(sorted(photos.glob("*.png")))
    for e in store.photos:
        m = np.zeros((48, 64), np.uint8)
        m[:, :32] = 1
        store.save_mask(e, m)
        e.status = "done"
    store.save_index()
    return tmp_path / "proj"


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.pt", build_model("tiny", width=8), {"note": "test student"})


def open_window(qtbot, project, weights, steps=8):
    provider = ModelProvider({"teacher": FunctionPredictor("fake-teacher", lambda rgb: np.full(rgb.shape[:2], 0.5)),
                              "student": str(weights)}, threads=1)
    win = MainWindow(provider, project=project)
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    ft = win.finetune
    ft.config = tiny_config("finetune", steps=steps, val={"fraction": 0.34, "every": 4},
                            data={"batch_size": 2, "size": 32})
    ft.inform = lambda text: messages.append(text)
    ft.ask = lambda text: True  # a modal box would block the offscreen test (closing at teardown asks)
    messages = ft.messages = []
    wait_student_map(qtbot, win)
    return win


def wait_student_map(qtbot, win, differs_from=None):
    def ready():
        m = win.maps.get((win.path_of(win.row), "student")) if win.row >= 0 else None
        return m is not None and (differs_from is None or not np.array_equal(m, differs_from))

    qtbot.waitUntil(ready, timeout=120000)
    return win.maps.get((win.path_of(win.row), "student"))


def run_to_end(qtbot, win, start, timeout=600000):  # generous: a shared, loaded CPU
    events = []
    win.finetune.run_event.connect(events.append)
    with qtbot.waitSignal(win.finetune.run_ended, timeout=timeout) as blocker:
        assert start()
    return blocker.args[0], events


def test_finetune_from_menu_shows_progress_then_adopt_swaps_maps_and_rollback_restores(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=8)
    before_map = wait_student_map(qtbot, win).copy()
    action = next(a for a in win.finetune.menu.menu.actions() if a.text() == "Fine-tune student on done photos")
    end, events = run_to_end(qtbot, win, lambda: action.trigger() is None)
    assert end["type"] == "done", end
    kinds = [e["type"] for e in events]
    assert kinds.count("export") >= 7 and kinds.count("step") == 8 and "start" in kinds
    panel = win.finetune.panel
    assert panel.train_xy[0] == list(range(1, 9))  # the curve grew by one point per step
    assert len(panel.val_xy[0]) >= 2 and panel.progress.value() == 8
    assert panel.table.item(0, 0).text() and panel.adopt.isEnabled()
    assert panel.progress.format().startswith("done") and panel.progress.value() == panel.progress.maximum()
    candidate = project / "models" / "tiny-ft1.pt"
    assert candidate.is_file() and not (project / "models" / "runs").exists()

    qtbot.mouseClick(panel.adopt, Qt.MouseButton.LeftButton)
    index = json.loads((project / "project.json").read_text())
    assert index["models"]["student"]["active"] == "tiny-ft1"
    assert win.provider.label("student") == "tiny-ft1"
    new_map = wait_student_map(qtbot, win, differs_from=before_map)
    expected = load_predictor(candidate, threads=1).predict(win.images.get(win.path_of(win.row)))
    assert np.allclose(new_map, expected, atol=1e-6)  # the adopted version makes the maps

    base = win.finetune.menu.actions[("student", None)]
    base.trigger()  # Models -> student model -> the one the studio started with
    restored = wait_student_map(qtbot, win, differs_from=new_map)
    assert np.array_equal(restored, before_map)
    assert json.loads((project / "project.json").read_text())["models"]["student"]["active"] is None
    win.finetune.menu.actions[("student", "tiny-ft1")].trigger()  # and forward again
    assert np.allclose(wait_student_map(qtbot, win, differs_from=restored), expected, atol=1e-6)


def test_adopted_version_is_active_when_the_project_reopens(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=4)
    end, _ = run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    assert end["type"] == "done"
    win.finetune.adopt()
    win.close()
    win2 = open_window(qtbot, project, weights)
    assert win2.provider.label("student") == "tiny-ft1"
    assert win2.finetune.menu.actions[("student", "tiny-ft1")].isChecked()


def test_cancel_stops_quickly_and_leaves_weights_untouched(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=100000)
    digest = sha(weights)
    ft = win.finetune
    ft.run_event.connect(lambda ev: ev["type"] == "step" and ev["step"] == 3 and qtbot.mouseClick(ft.panel.cancel, Qt.MouseButton.LeftButton))
    end, events = run_to_end(qtbot, win, lambda: ft.start("student"), timeout=600000)
    assert end["type"] == "cancelled"
    assert max(e["step"] for e in events if e["type"] == "step") < 100
    assert sha(weights) == digest
    assert not list((project / "models").glob("*.pt"))
    assert ft.candidate is None and ft.panel.start.isEnabled()
    assert "unchanged" in ft.panel.status.text()


def test_discard_deletes_the_candidate(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=4)
    run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    win.finetune.discard()
    assert not list((project / "models").glob("tiny-ft*"))
    assert win.provider.label("student") == str(weights)


def test_too_few_done_photos_gives_a_message_not_a_run(qtbot, project, weights):
    store = ProjectStore.open(project)
    for e in store.photos[2:]:
        e.status = "in progress"
    store.save_index()
    win = open_window(qtbot, project, weights)
    assert win.finetune.start("student") is False
    assert win.finetune.worker is None
    assert "at least 5 photos marked done" in win.finetune.messages[-1] and "has 2" in win.finetune.messages[-1]


def test_lbp_view_cannot_be_finetuned(qtbot, project, weights):
    win = open_window(qtbot, project, weights)
    win.provider.set_spec("student", "lbp")
    assert win.finetune.start("student") is False
    assert "LBP" in win.finetune.messages[-1]


def test_diverged_run_is_reported_and_nothing_adopted(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=20)
    win.finetune.config["optim"].update(lr=float("inf"), warmup_steps=0)  # weights blow up after one step
    end, events = run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    assert end["type"] == "error" and "diverged" in end["message"]
    assert any(e["type"] == "step" for e in events)  # it did start training
    assert "Nothing was adopted" in win.finetune.panel.status.text()
    assert not list((project / "models").glob("*.pt")) and win.finetune.candidate is None
    assert not win.finetune.panel.adopt.isEnabled() and win.finetune.panel.start.isEnabled()
    assert not (project / "models" / "runs").exists()


def test_nan_parent_weights_are_reported(qtbot, project, tmp_path):
    net = build_model("tiny", width=8)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    bad = save_model(tmp_path / "bad.pt", net, {})
    win = open_window(qtbot, project, bad)
    end, _ = run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    assert end["type"] == "error" and "NaN" in end["message"]
    assert not list((project / "models").glob("*.pt"))


def test_closing_during_a_run_asks_then_cancels(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=100000)
    ft = win.finetune
    answers = [False, True]
    ft.ask = lambda text: answers.pop(0)
    with qtbot.waitSignal(ft.run_event, check_params_cb=lambda ev: ev["type"] == "step", timeout=600000):
        ft.start("student")
    win.close()
    assert win.isVisible() and ft.running  # the user said no: still running
    win.close()
    assert not win.isVisible() and not ft.running
    assert not list((project / "models").glob("*.pt"))


def test_a_run_that_gained_nothing_says_so_and_offers_discard_first(qtbot, project, weights):
    win = open_window(qtbot, project, weights, steps=8)
    ctl, panel = win.finetune, win.finetune.panel
    panel.progress.setRange(0, 100)
    panel.progress.setValue(30)
    same = {"mae": 0.126, "f_beta": 0.8475, "max_f": 0.8483, "iou": 0.667, "auc_roc": 0.9559}
    ctl._finished({"before": same, "after": dict(same), "output": str(project / "models" / "x-ft1.pt"),
                   "n_val": 1, "wall_s": 11.0, "steps": 30, "stopped_early": True})
    assert "no better on the held-out photos" in panel.status.text() and "Discard keeps" in panel.status.text()
    assert panel.adopt.text() == "Adopt anyway"
    assert panel.progress.value() == 100 and "stopped early at step 30 of 100" in panel.progress.format()
    assert panel.table.rowCount() == 5 and all(panel.table.item(r, 2).text() == "+0.0000" for r in range(5))
    better = dict(same, mae=0.1)
    ctl._finished({"before": same, "after": better, "output": str(project / "models" / "x-ft2.pt"),
                   "n_val": 1, "wall_s": 11.0, "steps": 100, "stopped_early": False})
    assert "(better). Adopt it" in panel.status.text() and panel.adopt.text() == "Adopt new version"
    assert panel.progress.format() == "done · 100 steps"


def test_a_diverged_result_is_refused_by_the_engine_and_the_panel_shows_why(qtbot, project, weights, monkeypatch):
    from dbd_core.train import finetune

    real, calls = finetune.evaluate_photos, []

    def blown_up_after(model, val, card):  # "after": as if the trained network's maps held NaN
        calls.append(1)
        m = real(model, val, card)
        return dict(m, n_nonfinite=m["n_images"], n_images=0) if len(calls) == 2 else m

    monkeypatch.setattr(finetune, "evaluate_photos", blown_up_after)
    win = open_window(qtbot, project, weights, steps=4)
    end, events = run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    assert end["type"] == "error" and "diverged" in end["message"] and "no version was written" in end["message"]
    assert not any(e["type"] == "done" for e in events)  # the engine never offered it
    status = win.finetune.panel.status.text()
    assert "diverged" in status and "Nothing was adopted" in status
    assert not list((project / "models").glob("*.pt")) and win.finetune.candidate is None
    assert not win.finetune.panel.adopt.isEnabled() and win.finetune.panel.start.isEnabled()


def test_an_unreadable_saved_mask_is_shown_and_left_out_and_the_run_goes_on(qtbot, project, weights):
    bad = project / "masks" / "p5.png"
    assert bad.is_file()
    win = open_window(qtbot, project, weights, steps=4)
    bad.write_bytes(b"")  # after the window opened: the run is what reads it
    end, events = run_to_end(qtbot, win, lambda: win.finetune.start("student"))
    assert end["type"] == "done", end
    assert end["summary"]["n_train"] + end["summary"]["n_val"] == 5
    lines = [e["message"] for e in events if e["type"] == "skipped"]
    assert len(lines) == 1 and str(bad) in lines[0]
    assert win.finetune.skipped == lines and str(bad) in win.finetune.panel.result.text()
    assert win.finetune.candidate is not None and win.finetune.panel.adopt.isEnabled()
