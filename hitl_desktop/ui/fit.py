"""Labels that never widen a window: they wrap or elide, and keep the full text in a tooltip.

A plain ``QLabel`` asks its layout for the width of its longest unbreakable line, so one
long error ("Draft failed — OpenAI rejected the API key (401): …") or one long argument
made the agent window wider than the screen, and nothing could shrink it back. Every
status, error and badge that shows text we do not control goes through these.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

ZWSP = "\u200b"


def breakable(text: str, every: int = 24, longer_than: int = 32) -> str:
    """``text`` with invisible break opportunities (zero-width spaces) every ``every``
    characters inside runs of more than ``longer_than`` non-space characters (URLs,
    ids, base64), so word wrap can always find a place to break."""
    if len(text) <= longer_than:
        return text

    def split(match: re.Match[str]) -> str:
        run = match.group(0)
        return ZWSP.join(run[i:i + every] for i in range(0, len(run), every))

    return re.sub(r"\S{" + str(longer_than + 1) + ",}", split, text)


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


class WrapLabel(QLabel):
    """Plain text that wraps anywhere it must and shows at most ``max_chars`` of it;
    the whole text is in the tooltip when it was cut. Its minimum width is small."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 max_chars: int = 400, min_width: int = 60) -> None:
        super().__init__(parent)
        self._full = ""
        self._max_chars = max_chars
        self._min_width = min_width
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self._full = text
        shown = breakable(clip(text, self._max_chars))
        if super().text() != shown:
            self.setText(shown)
        self.setToolTip(text if len(text) > self._max_chars or shown != text else "")

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self._min_width), hint.height())


class ElideLabel(QLabel):
    """One line of plain text, elided at the right to the width it gets (full text in
    the tooltip). ``text()`` is what is shown; ``full_text()`` is what was set."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 min_width: int = 40, max_hint: int = 480) -> None:
        super().__init__(parent)
        self._full = ""
        self._tip = ""
        self._min_width = min_width
        self._max_hint = max_hint
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.set_full_text(text)

    def set_full_text(self, text: str, tip: str = "") -> None:
        """Show ``text`` (elided as needed); ``tip`` is the tooltip when it fits."""
        if text == self._full and tip == self._tip and super().text():
            return
        self._full = text
        self._tip = tip
        # the whole line now; elided once the layout has given the label its width
        # (eliding against the old width would cut text that is about to fit)
        one_line = " ".join(text.split())
        if super().text() != one_line:
            self.setText(one_line)
        self.setToolTip(tip)
        self.updateGeometry()
        QTimer.singleShot(0, self, self._elide)

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        if not self.isVisible():
            return  # shown later: the resize on show elides
        one_line = " ".join(self._full.split())
        width = self.contentsRect().width()
        metrics = QFontMetrics(self.font())
        shown = one_line
        if width > 0 and metrics.horizontalAdvance(one_line) > width:
            shown = metrics.elidedText(one_line, Qt.TextElideMode.ElideRight, width)
        if super().text() != shown:
            self.setText(shown)
        self.setToolTip(self._full if shown != self._full else self._tip)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        metrics = QFontMetrics(self.font())
        m = self.contentsMargins()
        natural = metrics.horizontalAdvance(" ".join(self._full.split())) + m.left() + m.right()
        return QSize(min(max(natural, hint.width()), self._max_hint) + 2, hint.height())

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self._min_width), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()


def fit_to_screen(widget: QWidget, preferred: tuple[int, int],
                  margin: int = 24) -> tuple[int, int]:
    """``preferred`` shrunk to the screen's available area (1440x900 does not fit a
    1366x768 laptop): a first start must never open a window larger than the screen."""
    area = widget.screen().availableGeometry()
    width = min(preferred[0], area.width() - margin)
    height = min(preferred[1], area.height() - margin)
    # a floor for absurdly small screens, never above what the window asked for
    return (max(width, min(preferred[0], 640)), max(height, min(preferred[1], 480)))
