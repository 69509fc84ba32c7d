"""Every window of the app carries the HITL Desk icon (set once on the application)."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from hitl_desktop.ui.theme import app_icon, apply_app_style


def test_app_style_sets_the_icon_at_every_shipped_size(qapp: QApplication) -> None:
    apply_app_style(qapp)
    sizes = {(s.width(), s.height()) for s in qapp.windowIcon().availableSizes()}
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= sizes
    pixmap = app_icon().pixmap(64, 64)
    assert not pixmap.isNull()
    image = pixmap.toImage()
    assert image.pixelColor(32, 32).alpha() > 0  # the bubble, not a transparent square
