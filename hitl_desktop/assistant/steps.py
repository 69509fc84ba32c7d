"""A response known in full before it streams, as the few steps the host's loop plays.

Why: the offline engine builds its whole response (every event, with the pause after
it) in one go, off the host's loop. Played as ~50 events a draft, each went through
the stream translator and the co-pilot on the loop (issue 18: most of a draft's loop
time). Here the same events are translated where they were built and cut into
*steps*: the updates between two pauses, in order, and the pause after them. Text
deltas of one message that fall within one ``window_s`` of the pacing (the host's
``draft.delta`` coalescing window) are merged into one, so the loop plays a handful
of steps per response and publishes the same text in at most as many frames.

What the host does with a step's updates is exactly what it does with the updates of
the events it stood for (:func:`compact` runs the one translator), so the agents get
the same draft, articles, tool calls, citations and claims, in the same order; only
the text may come in fewer ``draft.delta`` frames.

A step is a plain tuple (``(updates, pause_s)``) of the translator's frozen
dataclasses: cheap to pickle from an engine process. ``pause_s``: ``None`` for no
pause, ``0.0`` for a bare yield to the loop, else seconds to sleep.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hitl_desktop.assistant.stream import StreamTranslator, TextDelta, Update

Step = tuple[tuple[Update, ...], float | None]


def _add_pause(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def compact(script: Iterable[tuple[Any, float | None]], window_s: float) -> list[Step]:
    """Translate ``(event, pause after it)`` pairs and cut them into steps.

    The events up to a pause make one step; a step whose updates are only text of the
    message the previous step ended on is merged into it when it starts within
    ``window_s`` of that text (its words come out up to one window early, the pauses
    are kept, summed, after the merged text); adjacent text deltas of one message in
    a step become one. Translation stops at the response's end (``Completed`` or
    ``Failed``); a script that ends without one gets the translator's ``stream_cut``.
    """
    translator = StreamTranslator()
    steps: list[tuple[list[Update], float | None]] = []
    pending: list[Update] = []

    def close(pause: float | None) -> None:
        if not pending:  # a pause with nothing before it lengthens the one before
            if steps:
                steps[-1] = (steps[-1][0], _add_pause(steps[-1][1], pause))
            elif pause is not None:
                steps.append(([], pause))
            return
        updates: list[Update] = []
        _merge_text(updates, pending)
        pending.clear()
        if steps:
            last, last_pause = steps[-1]
            # the previous step's text went out last_pause ago: within the window, text
            # of the same message that follows it alone goes out with it
            if (last and type(last[-1]) is TextDelta and last_pause is not None
                    and last_pause < window_s
                    and all(type(u) is TextDelta and u.item_id == last[-1].item_id
                            for u in updates)):
                _merge_text(last, updates)
                steps[-1] = (last, _add_pause(last_pause, pause))
                return
        steps.append((updates, pause))

    for event, pause in script:
        pending.extend(translator.feed(event))
        if translator.finished:
            break
        if pause is not None:
            close(pause)
    if not translator.finished:
        pending.extend(translator.finish())
    close(None)
    return [(tuple(updates), pause) for updates, pause in steps]


def _merge_text(into: list[Update], updates: list[Update]) -> None:
    """Append ``updates`` to ``into``, joining a text delta to a text delta of the same
    message right before it."""
    for update in updates:
        if (type(update) is TextDelta and into and type(prev := into[-1]) is TextDelta
                and prev.item_id == update.item_id):
            into[-1] = TextDelta(prev.text + update.text, update.item_id)
        else:
            into.append(update)
