"""A transcript says where the host lost messages (session.gap), for the customer's
audience and the desk's alike, in its place between the lines."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.host.transcript import render


def _frame(seq: int, type_: str, data: dict[str, object]) -> str:
    return json.dumps({"v": 1, "type": type_, "id": f"m{seq}", "session": "s1",
                       "seq": seq, "ts": 1_700_000_000 + seq, "ref": None, "data": data})


@pytest.mark.parametrize("audience", ["customer", "internal"])
def test_the_gap_is_shown_where_it_happened(audience: str) -> None:
    author = {"role": "customer", "name": "Priya"}
    frames = [
        _frame(2, "chat.message", {"message_id": "a", "author": author,
                                   "text": "before the stop"}),
        _frame(260, "session.gap", {"first_seq": 3, "last_seq": 259,
                                    "reason": "unclean stop"}),
        _frame(261, "chat.message", {"message_id": "b", "author": author,
                                     "text": "after the stop"}),
    ]
    text = render(frames, session_id="s1", title="Priya", audience=audience,  # type: ignore[arg-type]
                  now=1_700_000_000)
    before, gap, after = (text.index(s) for s in
                          ("before the stop", "Messages lost", "after the stop"))
    assert before < gap < after
    assert "lost messages 3 to 259" in text
    assert text.count("Messages lost") == 1
