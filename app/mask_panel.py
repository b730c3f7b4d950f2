"""Controls for the mask: seed source and threshold (live on cached maps), Otsu, overlay opacity
and outline, tools with brush size, undo/redo and the photo's status. The panel only emits
intentions; the annotation session decides what they do to the mask."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QToolButton, QVBoxLayout,
                               QWidget)

from app.display import MASK_COLORS
from dbd_core.annotate import STATUSES

TOOL_LABELS = {"brush": "Brush (B)", "eraser": "Eraser (E)", "fill": "Fill (F)", "polygon": "Polygon/lasso (G)",
               "pan": "Pan (H)"}

# Fusion draws a checked tool button barely darker than an unchecked one on this palette: the active tool
# gets the highlight colour so it reads at a glance.
TOOL_BUTTON_STYLE = ("QToolButton { background: #3c4043; border: 1px solid #5f6368; border-radius: 3px; padding: 3px; }"
                     "QToolButton:hover { border-color: #8ab4f8; }"
                     "QToolButton:checked { background: #1a73e8; color: #ffffff; border-color: #8ab4f8; }")


# What a number box needs for typing; every other key (tool letters, [ ], D/A, Ctrl+Z...) goes to the window's
# shortcuts even while the box has the focus, as in napari or CVAT: one click on a box must not take the
# keyboard away from the annotation.
_EDIT_KEYS = {getattr(Qt.Key, f"Key_{k}") for k in (*"0123456789", "Period", "Comma", "Minus", "Backspace",
                                                    "Delete", "Left", "Right", "Home", "End", "Up", "Down",
                                                    "PageUp", "PageDown")}
_EDIT_CTRL_KEYS = {Qt.Key.Key_A, Qt.Key.Key_C, Qt.Key.Key_V, Qt.Key.Key_X}


def _claims(ev) -> bool | None:
    """For a ShortcutOverride: True = the box takes the key, False = the window's shortcut does."""
    ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
    if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
        # Enter finishes a typed value (else the window's Enter, close polygon, would take it and the box keep
        # the focus); Ctrl+Enter marks the photo done, as anywhere.
        return not ctrl
    return (ev.key() in _EDIT_CTRL_KEYS) if ctrl else (ev.key() in _EDIT_KEYS)


class _KeyPassing:
    def event(self, ev):
        if ev.type() == QEvent.Type.ShortcutOverride:
            if _claims(ev):
                ev.accept()
                return True
            ev.ignore()
            return False
        return super().event(ev)


class ThresholdSpinBox(_KeyPassing, QDoubleSpinBox):
    """The threshold: digits edit it, Enter finishes, every other key stays the window's."""


class RadiusSpinBox(_KeyPassing, QSpinBox):
    """The brush radius, with the same keyboard rule as the threshold box."""


class MaskPanel(QWidget):
    source_changed = Signal(str)
    threshold_changed = Signal(float)
    otsu_requested = Signal()
    reseed_requested = Signal()
    opacity_changed = Signal(float)
    color_selected = Signal(str)  # a name of app.display.MASK_COLORS
    outline_toggled = Signal(bool)
    tool_selected = Signal(str)
    radius_selected = Signal(int)
    undo_requested = Signal()
    redo_requested = Signal()
    status_selected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        seed = QGroupBox("Seed from map")
        f = QFormLayout(seed)
        self.source = QComboBox()
        self.source.addItems(["mean", "teacher", "student"])
        self.source.currentTextChanged.connect(self.source_changed)
        self.source.activated.connect(self.source.clearFocus)  # picked: the tool keys are the view's again
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=50)
        self.spin = ThresholdSpinBox(minimum=0.0, maximum=1.0, singleStep=0.01, decimals=3, value=0.5)
        self.slider.valueChanged.connect(lambda v: self._set_threshold(v / 100.0, emit=True, origin=self.slider))
        self.spin.valueChanged.connect(lambda v: self._set_threshold(v, emit=True, origin=self.spin))
        # A typed value is done with Enter: hand the keyboard back, or the spin box would keep eating the
        # tool keys (B, E, F...) and Ctrl+Z would undo its text instead of the mask.
        self.spin.editingFinished.connect(self.spin.clearFocus)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        self.otsu = QPushButton("Auto (Otsu)")
        self.otsu.clicked.connect(self.otsu_requested)
        self.reseed = QPushButton("Re-seed (discard hand edits)")
        self.reseed.clicked.connect(self.reseed_requested)
        self.note = QLabel("", wordWrap=True)
        self.note.setStyleSheet("color: #f6bf26")
        f.addRow("Source", self.source)
        f.addRow("Threshold", row)
        f.addRow(self.otsu)
        f.addRow(self.reseed)
        f.addRow(self.note)

        view = QGroupBox("Overlay")
        fv = QFormLayout(view)
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=45)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.outline = QCheckBox("Outline only (O)")
        self.outline.toggled.connect(self.outline_toggled)
        self.color = QComboBox(toolTip="Colour of 'blurred' in the overlay: on warm photos cyan or yellow "
                                       "reads better than red")
        self.color.addItems(list(MASK_COLORS))
        self.color.currentTextChanged.connect(self.color_selected)
        self.color.activated.connect(self.color.clearFocus)
        fv.addRow("Opacity", self.opacity)
        fv.addRow("Colour", self.color)
        fv.addRow(self.outline)

        tools = QGroupBox("Tools")
        vt = QVBoxLayout(tools)
        self.tool_group = QButtonGroup(self)
        grid = QGridLayout()  # one grid, so both columns share row heights
        self.tool_buttons = {}
        for i, (name, label) in enumerate(TOOL_LABELS.items()):
            b = QToolButton(text=label, checkable=True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding, b.sizePolicy().verticalPolicy())
            b.setStyleSheet(TOOL_BUTTON_STYLE)
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
            b.clicked.connect(lambda _=False, n=name: self.tool_selected.emit(n))
            grid.addWidget(b, i // 2, i % 2)
        vt.addLayout(grid)
        self.radius = RadiusSpinBox(minimum=1, maximum=500, value=12, suffix=" px", toolTip="Brush radius ([ and ])")
        self.radius.valueChanged.connect(self.radius_selected)
        self.radius.editingFinished.connect(self.radius.clearFocus)
        r = QHBoxLayout()
        r.addWidget(QLabel("Brush radius"))
        r.addWidget(self.radius)
        vt.addLayout(r)
        hint = QLabel("Left: edit · right-drag/wheel: pan/zoom\nShift+polygon: paint sharp · Enter closes",
                      wordWrap=True)
        hint.setStyleSheet("color: #9aa0a6; font-size: 11px")
        vt.addWidget(hint)
        u = QHBoxLayout()
        self.undo = QPushButton("Undo")
        self.redo = QPushButton("Redo")
        self.undo.clicked.connect(self.undo_requested)
        self.redo.clicked.connect(self.redo_requested)
        u.addWidget(self.undo)
        u.addWidget(self.redo)
        vt.addLayout(u)

        st = QGroupBox("Photo status")
        fs = QHBoxLayout(st)
        self.status = QComboBox()
        self.status.addItems(list(STATUSES))
        self.status.currentTextChanged.connect(self.status_selected)
        self.status.activated.connect(self.status.clearFocus)
        fs.addWidget(self.status)

        lay = QVBoxLayout(self)
        for g in (seed, view, tools, st):
            lay.addWidget(g)
        lay.addStretch(1)
        self.setMinimumWidth(260)
        self.show_history(False, False)  # nothing to undo, redo or re-seed before a photo is edited
        self.show_hand_edited(False)

    def _set_threshold(self, t: float, emit: bool, origin=None) -> None:
        for w, v in ((self.slider, round(t * 100)), (self.spin, t)):
            if w is origin:
                continue  # writing back into the spin box being typed in would reformat "0" to "0.000" mid-entry
            w.blockSignals(True)  # keep slider and spin box in step without feedback loops
            w.setValue(v)
            w.blockSignals(False)
        if emit:
            self.threshold_changed.emit(float(t))

    # ---------------------------------------------------------------- write back without echo
    def show_state(self, threshold: float, source: str, status: str, hand_edited: bool) -> None:
        self._set_threshold(threshold, emit=False)
        for w, v in ((self.source, source), (self.status, status)):
            w.blockSignals(True)
            w.setCurrentText(v)
            w.blockSignals(False)
        self.show_hand_edited(hand_edited)

    def show_hand_edited(self, hand: bool) -> None:
        self.reseed.setEnabled(hand)
        self.note.setText("Mask edited by hand: threshold changes are not applied until you re-seed." if hand else "")

    def show_tool(self, tool: str) -> None:
        self.tool_buttons[tool].setChecked(True)

    def show_radius(self, r: int) -> None:
        self.radius.blockSignals(True)
        self.radius.setValue(r)
        self.radius.blockSignals(False)

    def show_history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo.setEnabled(can_undo)
        self.redo.setEnabled(can_redo)
