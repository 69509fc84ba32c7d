"""Preferences (issue 16): the representative's notification and desk toggles.

The dialog only shows :class:`client.desk.Preferences` (QSettings-backed) as check
boxes; every change is saved at once, so there is no OK/Cancel to forget.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.desk import PREFERENCE_DEFAULTS, PREFERENCE_TEXT, Preferences
from hitl_desktop.ui.fit import WrapLabel

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
                note = WrapLabel(
                    "Notifications appear only while this window is not focused: a "
                    "customer writing in a conversation you hold or nobody holds, and "
                    "actions waiting for approval. The unread count is in the window "
                    "title and the tray icon.", group, max_chars=400)
                note.setObjectName("mutedLabel")
                inner.addWidget(note)
                if not QSystemTrayIcon.isSystemTrayAvailable():
                    missing = WrapLabel("This desktop shows no tray icons: notifications "
                                        "cannot pop up here (the window title still "
                                        "counts unread messages).", group, max_chars=300)
                    missing.setObjectName("formErrors")
                    inner.addWidget(missing)
            lay.addWidget(group)
        lay.addStretch(1)
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
        self.setMinimumWidth(460)

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
