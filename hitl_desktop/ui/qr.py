"""QR codes for invite links: segno draws a PNG, Qt shows it.

Why: a customer on a phone-sized laptop or a second PC can scan the link from
the host's screen instead of typing a 70-character secret.
"""

from __future__ import annotations

import io

import segno
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLabel, QWidget


def qr_png(text: str, *, scale: int = 6, border: int = 2) -> bytes:
    """A PNG of ``text`` as a QR code (error correction M: survives a glare)."""
    code = segno.make(text, error="m", micro=False)
    buf = io.BytesIO()
    code.save(buf, kind="png", scale=scale, border=border, dark="#111111", light="#ffffff")
    return buf.getvalue()


def qr_pixmap(text: str, *, scale: int = 6) -> QPixmap:
    pix = QPixmap()
    if not pix.loadFromData(qr_png(text, scale=scale), "PNG"):
        raise ValueError("could not render the QR code")
    return pix


def decode_check(text: str) -> int:
    """The QR version segno picks for ``text`` (tests use it to bound the size)."""
    return int(segno.make(text, error="m", micro=False).version)


class QrLabel(QLabel):
    """A label showing a QR code; ``set_text`` redraws it."""

    def __init__(self, text: str = "", *, scale: int = 4, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.code_text = ""
        if text:
            self.set_text(text)

    def set_text(self, text: str) -> None:
        self.code_text = text
        if text:
            self.setPixmap(qr_pixmap(text, scale=self.scale))
            self.setToolTip("Scan to get the link")
        else:
            self.clear()
