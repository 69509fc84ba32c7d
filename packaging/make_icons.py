"""Render the app icon (a speech bubble with a check mark) to PNGs at the sizes
desktop environments ask for. Run once when the design changes; the PNGs are
committed under hitl_desktop/data/icons/ so builds need no renderer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QLinearGradient, QPainter, QPainterPath, QPen

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
OUT = Path(__file__).resolve().parent.parent / "hitl_desktop" / "data" / "icons"


def render(size: int) -> QImage:
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 64.0
    grad = QLinearGradient(QPointF(0, 0), QPointF(0, size))
    grad.setColorAt(0.0, QColor("#3b82f6"))
    grad.setColorAt(1.0, QColor("#1d4ed8"))
    bubble = QPainterPath()
    bubble.addRoundedRect(QRectF(4 * s, 6 * s, 56 * s, 42 * s), 12 * s, 12 * s)
    tail = QPainterPath()
    tail.moveTo(16 * s, 44 * s)
    tail.lineTo(12 * s, 58 * s)
    tail.lineTo(30 * s, 46 * s)
    tail.closeSubpath()
    p.fillPath(bubble.united(tail), grad)
    pen = QPen(QColor("white"), 6 * s, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
               Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    check = QPainterPath()
    check.moveTo(20 * s, 27 * s)
    check.lineTo(29 * s, 36 * s)
    check.lineTo(45 * s, 19 * s)
    p.drawPath(check)
    p.end()
    return img


def main() -> int:
    QGuiApplication(sys.argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        render(size).save(str(OUT / f"hitl-desktop-{size}.png"))
    render(256).save(str(OUT / "hitl-desktop.png"))
    # Windows wants an .ico (Qt's ICO plugin writes it); macOS builds convert the PNG.
    if not render(256).save(str(OUT / "hitl-desktop.ico"), "ICO"):
        raise SystemExit("could not write hitl-desktop.ico (Qt's ICO image plugin missing?)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
