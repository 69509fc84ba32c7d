"""Preferences (issue 16): the representative's notification and desk toggles.

The dialog only shows :class:`client.desk.Preferences` (QSettings-backed) as check
boxes; every change is saved at once, so there is no OK/Cancel to forget.
"""

from __future__ import annotations

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.desk import PREFERENCE_DEFAULTS, PREFERENCE_TEXT, Preferences

GROUPS = (
    ("Notifications", ("notify/enabled", "notify/customer_lines", "notify/approvals",
                       "notify/sound")),
    ("Desk", ("desk/warn_held",)),
)
DEPENDS_ON_ENABLED = ("notify/customer_lines", "notify/approvals", "notify/sound")


class PreferencesDialog(QDialog):
    """Check boxes bound to the preferences model (shown, never exec()'d)."""

    def __init__(self, preferences: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preferences = preferences
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences — HITL Desk")
        self.boxes: dict[str, QCheckBox] = {}
        lay = QVBoxLayout(self)
        for title, keys in GROUPS:
            group = QGroupBox(title, self)
            inner = QVBoxLayout(group)
            for key in keys:
                box = QCheckBox(PREFERENCE_TEXT[key], group)
                box.setObjectName(f"pref_{key.replace('/', '_')}")
                box.toggled.connect(lambda on, k=key: self._toggled(k, on))
                inner.addWidget(box)
                self.boxes[key] = box
            if title == "Notifications":
                note = QLabel(
                    "Notifications appear only while this window is not focused: a "
                    "customer writing in a conversation you hold or nobody holds, and "
                    "actions waiting for approval. The unread count is in the window "
                    "title and the tray icon.", group)
                note.setWordWrap(True)
                note.setObjectName("mutedLabel")
                inner.addWidget(note)
                if not QSystemTrayIcon.isSystemTrayAvailable():
                    missing = QLabel("This desktop shows no tray icons: notifications "
                                     "cannot pop up here (the window title still "
                                     "counts unread messages).", group)
                    missing.setWordWrap(True)
                    missing.setObjectName("formErrors")
                    inner.addWidget(missing)
            lay.addWidget(group)
        buttons = QHBoxLayout()
        self.defaults_button = QPushButton("Restore defaults", self)
        self.defaults_button.setObjectName("restoreDefaults")
        self.defaults_button.clicked.connect(preferences.reset)
        close = QPushButton("Close", self)
        close.setObjectName("closePreferences")
        close.setDefault(True)
        close.clicked.connect(self.close)
        buttons.addWidget(self.defaults_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay.addLayout(buttons)
        preferences.changed.connect(self.refresh)
        self.refresh()
        # a fixed width, so the wrapped notes are measured at the width they get and the
        # dialog is as tall as its content
        self.setFixedWidth(520)

    def showEvent(self, event: QShowEvent) -> None:
        """As tall as the content at the width it has (wrapped notes measured at it)."""
        super().showEvent(event)
        layout = self.layout()
        if layout is not None:
            layout.activate()
            self.resize(self.width(), layout.totalHeightForWidth(self.width()))

    def refresh(self, *_args: object) -> None:
        enabled = self.preferences.get("notify/enabled")
        for key, box in self.boxes.items():
            value = self.preferences.get(key)
            if box.isChecked() != value:
                box.blockSignals(True)
                box.setChecked(value)
                box.blockSignals(False)
            if key in DEPENDS_ON_ENABLED:
                box.setEnabled(enabled)
            box.setToolTip("Default: on" if PREFERENCE_DEFAULTS[key] else "Default: off")

    def _toggled(self, key: str, on: bool) -> None:
        self.preferences.set(key, on)
