"""The relay's hand-checked chat.send / ack decoder never accepts what the strict pydantic
decoder refuses, and returns the same values when it accepts (differential, hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core import protocol as P
from hitl_desktop.host.relay_core import fast_parse, json_value
from tests.support.budget import examples

_ids = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", "x", "b1", "\ud800", "é" * 64, "é" * 65, "s_1"]),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                     st.text(max_size=5), _ids)
_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "hi", "\ud800x", "x" * P.MAX_TEXT_CHARS, "x" * (P.MAX_TEXT_CHARS + 1),
                     "é" * P.MAX_TEXT_CHARS, "a\x00b"]),
)
_chat_data = st.fixed_dictionaries(
    {"text": st.one_of(_texts, _scalars)},
    optional={"draft_id": st.one_of(_ids, _scalars), "override": _scalars, "extra": _scalars},
)
_ack_data = st.one_of(
    st.fixed_dictionaries({"seq": st.one_of(st.integers(-2, 10**12), _scalars)},
                          optional={"x": _scalars}),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)


@st.composite
def _frames(draw: st.DrawFn) -> str:
    type_ = draw(st.sampled_from(["chat.send", "ack", "typing", "hello", 3, None]))
    obj: dict[str, Any] = {
        "v": draw(st.one_of(st.just(1), _scalars)),
        "type": type_,
        "id": draw(st.one_of(st.just("b1"), _ids, _scalars)),
        "session": draw(st.one_of(st.just("s_1"), _ids, _scalars)),
        "ts": draw(st.one_of(st.just(1.5), _scalars)),
        "data": draw(st.one_of(_ack_data, _chat_data) if type_ in ("ack", "chat.send")
                     else st.just({})),
    }
    for key in ("seq", "ref", "extra"):
        if draw(st.booleans()):
            obj[key] = draw(_scalars)
    for key in ("v", "id", "ts", "data", "session"):
        if draw(st.integers(0, 15)) == 0:
            del obj[key]
    return json.dumps(obj)


def _check(raw: str) -> None:
    fast = fast_parse(raw)
    if fast is None:
        return  # the full decoder decides (and words the error)
    spec, msg_id, session, data = fast
    env, payload, full_spec = P.decode_client(raw)  # raises if the fast path was too lax
    assert full_spec is spec
    assert (env.id, env.session) == (msg_id, session)
    if isinstance(payload, P.ChatSend):
        assert (payload.text, payload.draft_id, payload.override) == (
            data["text"], data.get("draft_id"), data.get("override", False))
    else:
        assert isinstance(payload, P.Ack) and payload.seq == data["seq"]


@settings(max_examples=examples(3000, quick=400), deadline=None)
@given(raw=_frames())
def test_fast_path_accepts_only_what_the_strict_decoder_accepts(raw: str) -> None:
    _check(raw)


def test_fast_path_takes_the_common_frames() -> None:
    chat = json.dumps({"v": 1, "type": "chat.send", "id": "b1", "session": "s_1", "seq": None,
                       "ts": 1.5, "data": {"text": "héllo", "draft_id": "d1"}})
    ack = json.dumps({"v": 1, "type": "ack", "id": "b2", "session": "s_1", "ts": 2.0,
                      "data": {"seq": 7}})
    for raw in (chat, ack):
        assert fast_parse(raw) is not None
        _check(raw)
    # anything unusual goes to the full decoder (which refuses or accepts it itself)
    for odd in (b"{}", "[]", "nope", chat.replace('"v": 1', '"v": true'),
                chat.replace('"ts": 1.5', '"ts": 1'), chat.replace("h\\u00e9llo", "\\ud800")):
        assert fast_parse(odd) is None


def _loads_or_none(raw: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


_json_texts = st.one_of(
    _frames(),
    st.text(alphabet=' \t\n\r\ufeff{}[]":,0123456789.eE+-truefalsnul\\x', max_size=30),
    st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=4),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                 max_leaves=8).map(json.dumps),
)


@settings(max_examples=examples(2000, quick=300), deadline=None)
@given(raw=_json_texts, pad=st.sampled_from(["", " ", "\n\t", "\ufeff", "x", " 1"]),
       front=st.booleans())
def test_json_value_reads_what_json_loads_reads(raw: str, pad: str, front: bool) -> None:
    """fast_parse's JSON reader (the C scanner without json.loads' Python layers) gives
    json.loads' value, and None wherever json.loads raises: a BOM, extra data, nothing,
    whitespace on either side, nesting too deep."""
    text = pad + raw if front else raw + pad
    assert repr(json_value(text)) == repr(_loads_or_none(text))


def test_json_value_edge_cases() -> None:
    for text in ("", " ", "\ufeff{}", '{"a": 1} x', '{"a": 1}\n', ' {"a": [1, 2.5]} ',
                 "NaN", "[" * 100_000 + "]" * 100_000, '{"a": 1}{"b": 2}', '"\\ud800"'):
        assert repr(json_value(text)) == repr(_loads_or_none(text)), text


_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)


@settings(max_examples=examples(300, quick=40), deadline=None)
@given(text=_names, name=_names, ref=st.one_of(st.none(), _names),
       draft=st.one_of(st.none(), _names), edited=st.one_of(st.none(), st.booleans()))
def test_logged_chat_frame_is_byte_for_byte_the_model_encoding(
    tmp_path_factory: Any, text: str, name: str, ref: str | None, draft: str | None,
    edited: bool | None,
) -> None:
    from hitl_desktop.host.log import RelayLog

    relay_log = RelayLog(tmp_path_factory.mktemp("log") / "r.sqlite3")
    row, _ = relay_log.create_session()
    seq, frame = relay_log.append_chat(row, message_id="c_1", role="agent", name=name,
                                       text=text, draft_id=draft, ref=ref, edited=edited)
    env = json.loads(frame)
    model = P.ChatMessage(message_id="c_1", author=P.Author(role=P.Role.AGENT, name=name),
                          text=text, draft_id=draft, edited=edited)
    assert frame == P.encode("chat.message", model, session=row.session_id, seq=seq,
                             msg_id=env["id"], ts=env["ts"], ref=ref)
    assert relay_log.frames_after(row.session_id, seq - 1) == [frame]
    relay_log.close()
