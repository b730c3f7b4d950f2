"""Studio input end to end: fill, polygon and lasso through synthetic mouse events on the photo
view, keyboard shortcuts (brush size, navigation, outline) and drag-and-drop of a folder."""

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio_fixtures import (astronaut, click, drag, image_point, open_window, photos, studio_home,  # noqa: F401
                             wait_settled, write_photos)


def ready(qtbot, photos, threshold=None):
    win = open_window(qtbot, photos)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)  # shortcuts need the active window
    qtbot.wait(50)  # let the views settle before mapping pixels to screen positions
    if threshold is not None:
        win.panel.spin.setValue(threshold)
    return win


def key(win, k, mod=Qt.KeyboardModifier.NoModifier):
    QTest.keyClick(win, k, mod)
    QApplication.processEvents()


def test_flood_fill_click_flips_the_clicked_region(qtbot, photos):
    win = ready(qtbot, photos)  # seed: columns < 60 blurred, the rest sharp
    s, view = win.session, win.views.photo.glw
    seed = s.model.mask.copy()
    key(win, Qt.Key.Key_F)
    assert win.tools.tool == "fill" and win.panel.tool_buttons["fill"].isChecked()
    click(view, image_point(win, 100.5, 40.5))
    assert s.model.mask.all() and s.current.status == "in progress"  # the sharp region joined the blurred
    click(view, image_point(win, 10.5, 10.5))
    assert not s.model.mask.any()  # and flipping the (now whole) blurred region clears it
    key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(s.model.mask, seed)


def test_polygon_clicks_then_enter_fill_and_shift_paints_sharp(qtbot, photos):
    win = ready(qtbot, photos, threshold=0.99)  # empty mask
    s, view = win.session, win.views.photo.glw
    key(win, Qt.Key.Key_G)
    for x, y in ((20, 10), (100, 10), (100, 70), (20, 70)):
        click(view, image_point(win, x, y))
    assert not s.model.mask.any()  # nothing until the polygon is closed
    key(win, Qt.Key.Key_Return)
    m = s.model.mask
    assert m[12:68, 22:98].all() and not m[:8].any() and not m[:, :18].any() and not m[:, 102:].any()
    # Shift-clicked polygon: paints sharp inside the blurred square.
    shift = Qt.KeyboardModifier.ShiftModifier
    for x, y in ((40, 30), (80, 30), (80, 50)):
        click(view, image_point(win, x, y), shift)
    key(win, Qt.Key.Key_Return)
    assert not s.model.mask[32:45, 70:78].any() and s.model.mask[60:66, 30:90].all()
    # Escape drops a polygon in progress.
    click(view, image_point(win, 2, 2)); click(view, image_point(win, 10, 2)); click(view, image_point(win, 10, 8))
    before = s.model.mask.copy()
    key(win, Qt.Key.Key_Escape)
    key(win, Qt.Key.Key_Return)
    assert np.array_equal(s.model.mask, before)


def test_lasso_drag_fills_on_release_as_one_undo_step(qtbot, photos):
    win = ready(qtbot, photos, threshold=0.99)
    s = win.session
    key(win, Qt.Key.Key_G)
    outline = [(30, 15), (60, 12), (90, 15), (95, 40), (90, 65), (60, 68), (30, 65), (25, 40)]
    drag(win.views.photo.glw, [image_point(win, x, y) for x, y in outline])
    m = s.model.mask
    assert m[20:60, 35:85].all() and not m[:, :20].any() and not m[:, 100:].any()
    assert win.panel.undo.isEnabled()
    win.panel.undo.click()
    assert not s.model.mask.any()


def test_bracket_keys_change_brush_size(qtbot, photos):
    win = ready(qtbot, photos)
    assert win.tools.radius == 12
    key(win, Qt.Key.Key_BracketRight)
    assert win.tools.radius == 15 and win.panel.radius.value() == 15
    key(win, Qt.Key.Key_BracketLeft)
    key(win, Qt.Key.Key_BracketLeft)
    assert win.tools.radius == 10 and win.panel.radius.value() == 10
    for _ in range(20):
        key(win, Qt.Key.Key_BracketLeft)
    assert win.tools.radius == 1  # never below one pixel


def test_navigation_keys_next_previous_and_next_not_done(qtbot, tmp_path, chelsea, coffee, astronaut):
    folder = write_photos(tmp_path / "three", {"a": chelsea, "b": coffee, "c": astronaut})
    win = ready(qtbot, folder)
    assert win.session.current.name == "a"
    key(win, Qt.Key.Key_D)
    wait_settled(qtbot, win)
    assert win.session.current.name == "b"
    win.session.set_status(win.session.current, "done")
    key(win, Qt.Key.Key_A)
    wait_settled(qtbot, win)
    assert win.session.current.name == "a"
    key(win, Qt.Key.Key_D, Qt.KeyboardModifier.ShiftModifier)  # next not done skips the done "b"
    wait_settled(qtbot, win)
    assert win.session.current.name == "c" and win.list.currentRow() == 2
    key(win, Qt.Key.Key_A)
    key(win, Qt.Key.Key_A)
    key(win, Qt.Key.Key_A)  # wraps around: c -> b -> a -> c
    wait_settled(qtbot, win)
    assert win.session.current.name == "c"


@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")  # PySide flags the only ctor
def test_drop_a_folder_adds_its_photos(qtbot, photos):
    win = open_window(qtbot)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos)), QUrl("https://example.com/x.jpg")])
    pos = QPointF(win.width() / 2, win.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(win.maps_settled, timeout=10000):
        QApplication.sendEvent(win, drop)
    assert [e.name for e in win.entries] == ["cat", "cup"] and win.list.count() == 2
    QApplication.sendEvent(win, drop)  # dropping the same folder again adds nothing
    assert win.list.count() == 2


def test_a_folder_with_a_link_to_nowhere_and_an_empty_folder_open_with_a_message(qtbot, photos, tmp_path):
    (photos / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (tmp_path / "empty").mkdir()
    win = open_window(qtbot)
    with qtbot.waitSignal(win.maps_settled, timeout=10000):
        win.add_paths([photos, tmp_path / "empty"])
    assert [e.name for e in win.entries] == ["cat", "cup"]
    said = win.statusBar().currentMessage()
    assert "gone.jpg" in said and "empty" in said and "no photos" in said


def test_outline_key_toggles_outline_overlay(qtbot, photos):
    win = ready(qtbot, photos)  # columns < 40 blurred (the mean of both maps at 0.5)
    ov = win.views.overlay
    alpha = lambda: ov._rgba[..., 3] > 0  # noqa: E731
    assert np.array_equal(alpha(), win.session.model.mask > 0)
    key(win, Qt.Key.Key_O)
    assert win.panel.outline.isChecked() and ov.outline
    a = alpha()
    assert a[:, 39:41].all() and not a[:, 10:36].any() and not a[:, 44:].any()  # only the edge
    key(win, Qt.Key.Key_O)
    assert not ov.outline and np.array_equal(alpha(), win.session.model.mask > 0)


def test_active_tool_is_highlighted_and_tool_rows_line_up(qtbot, photos):
    win = ready(qtbot, photos)
    buttons = win.panel.tool_buttons
    key(win, Qt.Key.Key_E)
    assert [n for n, b in buttons.items() if b.isChecked()] == ["eraser"]
    qtbot.waitUntil(lambda: buttons["eraser"].isVisible(), timeout=5000)

    def centre_colour(b):
        img = b.grab().toImage()
        return img.pixelColor(img.width() // 2, 2)  # above the label: the button's face

    active, idle = centre_colour(buttons["eraser"]), centre_colour(buttons["brush"])
    assert active.blue() > 180 and active.red() < 80, active.name()   # the highlight, #1a73e8
    assert abs(idle.red() - idle.blue()) < 20, idle.name()            # a neutral grey face
    # two columns on one grid: buttons side by side share their row's top edge
    tops = {n: b.mapTo(win.panel, b.rect().topLeft()).y() for n, b in buttons.items()}
    assert tops["brush"] == tops["eraser"] and tops["fill"] == tops["polygon"]


def test_tool_keys_work_again_after_typing_a_threshold_and_keypad_enter_counts(qtbot, photos):
    win = ready(qtbot, photos)
    win.activateWindow()
    spin = win.panel.spin
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), "0.4")
    QTest.keyClick(spin, Qt.Key.Key_Return)
    QApplication.processEvents()
    assert win.session.current.threshold == pytest.approx(0.4) and not spin.hasFocus()
    target = QApplication.focusWidget() or win
    QTest.keyClick(target, Qt.Key.Key_E)
    QApplication.processEvents()
    assert win.tools.tool == "eraser"  # the key reached the window, not the spin box
    row = win.row
    QTest.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Enter,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.KeypadModifier)
    QApplication.processEvents()
    assert win.entries[row].status == "done"  # Ctrl + keypad Enter marks done, as Ctrl+Return does


@pytest.mark.parametrize("box", ["spin", "radius"])
def test_a_focused_number_box_types_digits_and_leaves_every_other_key_to_the_window(qtbot, photos, box):
    win = ready(qtbot, photos)
    s, view = win.session, win.views.photo.glw
    widget = getattr(win.panel, box)
    key(win, Qt.Key.Key_B)
    drag(view, [image_point(win, 80.5 + i, 40.5) for i in range(10)])  # a stroke to undo
    stroked = s.model.mask.copy()
    assert s.model.can_undo()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=5000)
    radius = win.tools.radius
    QTest.keyClick(widget, Qt.Key.Key_BracketRight)
    QApplication.processEvents()
    assert win.tools.radius > radius and widget.hasFocus()  # the window's key, the box kept the focus
    QTest.keyClick(widget, Qt.Key.Key_E)
    QApplication.processEvents()
    assert win.tools.tool == "eraser"
    QTest.keyClick(widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QApplication.processEvents()
    assert not np.array_equal(s.model.mask, stroked)  # Ctrl+Z undid the mask, not the box's text
    row = win.row
    QTest.keyClick(widget, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.row == row + 1, timeout=5000)
    wait_settled(qtbot, win)
    # and the box still takes what typing needs
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=5000)
    widget.lineEdit().selectAll()
    QTest.keyClicks(widget.lineEdit(), "0.35" if box == "spin" else "20")
    QTest.keyClick(widget, Qt.Key.Key_Return)
    QApplication.processEvents()
    assert (s.current.threshold == pytest.approx(0.35)) if box == "spin" else (win.tools.radius == 20)
    assert not widget.hasFocus()


def test_view_keys_zoom_fit_and_a_maximised_view_fits_the_photo(qtbot, photos):
    win = ready(qtbot, photos)
    h, w = win.session.model.shape
    vb = win.views.photo.vb

    def shown(box):
        (x0, x1), (y0, y1) = box.viewRange()
        return x1 - x0, y1 - y0

    full = shown(vb)
    assert full[0] >= w * 0.99 or full[1] >= h * 0.99  # the photo fits
    key(win, Qt.Key.Key_Plus)
    zoomed = shown(vb)
    assert zoomed[0] == pytest.approx(full[0] / 1.25, rel=0.02)
    assert shown(win.views.maps["teacher"].vb)[0] == pytest.approx(zoomed[0], rel=0.02)  # the links follow
    key(win, Qt.Key.Key_Minus)
    key(win, Qt.Key.Key_Minus)
    assert shown(vb)[0] == pytest.approx(full[0] * 1.25, rel=0.02)
    key(win, Qt.Key.Key_Home)
    assert shown(vb)[0] == pytest.approx(full[0], rel=0.02)

    # A maximised map fills its (four times larger) view with the photo, not its top-left quarter.
    teacher = win.views.maps["teacher"]
    win.views.toggle_maximise(teacher)
    qtbot.wait(20)
    (x0, x1), (y0, y1) = teacher.vb.viewRange()
    assert (x1 - x0) >= w * 0.99 and (y1 - y0) >= h * 0.99  # all of it in view...
    assert (x1 - x0) <= w * 1.1 or (y1 - y0) <= h * 1.1  # ...filling the view along one side
    key(win, Qt.Key.Key_Plus)
    assert teacher.vb.viewRange()[0][1] - teacher.vb.viewRange()[0][0] < (x1 - x0) * 0.9  # zoom acts on what is seen
    win.views.toggle_maximise(teacher)
    qtbot.wait(20)
    assert shown(vb)[0] == pytest.approx(full[0], rel=0.05)


def test_threshold_and_reseed_keys(qtbot, photos):
    win = ready(qtbot, photos, threshold=0.5)
    key(win, Qt.Key.Key_Period)
    assert win.session.current.threshold == pytest.approx(0.51)
    key(win, Qt.Key.Key_Comma)
    key(win, Qt.Key.Key_Comma)
    assert win.session.current.threshold == pytest.approx(0.49)
    seeded = win.session.model.mask.copy()
    key(win, Qt.Key.Key_B)
    drag(win.views.photo.glw, [image_point(win, 100.5, 10.5 + i) for i in range(10)])
    assert not np.array_equal(win.session.model.mask, seeded)
    asked = []
    win.session.confirm = lambda text: asked.append(text) or True  # "replace the hand-edited mask?": yes
    key(win, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: np.array_equal(win.session.model.mask, seeded), timeout=5000)
    assert len(asked) == 1
