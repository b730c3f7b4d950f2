"""The Models menu: which model makes each view's maps (the base model or any adopted fine-tuned
version, with its held-out metrics), and one-click fine-tune actions. Rebuilt whenever versions change."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QActionGroup


def version_text(v) -> str:
    m = v.metrics or {}
    b, a = (m.get("before") or {}).get("mae"), (m.get("after") or {}).get("mae")
    mae = f" · MAE {b:.3f}→{a:.3f}" if isinstance(b, float) and isinstance(a, float) else ""
    return f"{v.name}{mae} · {v.adopted_at[:16].replace('T', ' ')}"


class ModelMenu(QObject):
    def __init__(self, win, controller):
        super().__init__(win)
        self.win, self.ctl = win, controller
        self.menu = win.menuBar().addMenu("&Models")
        self.actions: dict[tuple[str, str | None], QAction] = {}  # (role, version or None) -> action
        controller.versions_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.menu.clear()
        self.actions.clear()
        ctl = self.ctl
        roles = [ctl.panel.role.itemText(i) for i in range(ctl.panel.role.count())]
        for role in roles:
            a = self.menu.addAction(f"Fine-tune {role} on done photos")
            a.triggered.connect(lambda _=False, r=role: ctl.start(r))
        show = self.menu.addAction("Show fine-tune panel")
        show.triggered.connect(lambda: (ctl.dock.show(), ctl.dock.raise_()))
        self.menu.addSeparator()
        self.tta_action = self.menu.addAction("Average with the mirrored photo (2x time)")
        self.tta_action.setCheckable(True)
        self.tta_action.setChecked(self.win.provider.tta == "hflip")
        self.tta_action.toggled.connect(self._set_tta)
        self.menu.addSeparator()
        vs = ctl.versions()
        for role in self.win.provider.roles:
            sub = self.menu.addMenu(f"{role} model")
            group = QActionGroup(sub)
            group.setExclusive(True)
            active = ctl.active_name(role)
            choices = [(None, f"{ctl.base_labels[role]} (started with)")]
            choices += [(v.name, version_text(v)) for v in (vs.list(role) if vs else [])]
            for name, text in choices:
                act = QAction(text, sub, checkable=True)
                act.setChecked(name == active)
                act.triggered.connect(lambda _=False, r=role, n=name: ctl.switch(r, n))
                group.addAction(act)
                sub.addAction(act)
                self.actions[(role, name)] = act

    def _set_tta(self, on: bool) -> None:
        # Posted, as a model swap is: maps of the old setting already queued to this thread arrive first
        # and are then cleared, so none survives the switch.
        for role in self.win.provider.set_tta("hflip" if on else "none"):
            QTimer.singleShot(0, lambda r=role: self.ctl.refresh(r))
