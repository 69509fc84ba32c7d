"""docs/PROTOCOL.md is the contract: it must list exactly what core/protocol.py implements."""

from __future__ import annotations

import re
from pathlib import Path

from hitl_desktop.core import protocol as P

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text("utf-8")
HEADING = re.compile(r"^### `([a-z._]+)` \((client|host) → (?:host|client)\)$", re.M)
OBJECT = re.compile(r"^### ([A-Za-z]+)$", re.M)
FIELD_ROW = re.compile(r"^\| `([a-z_]+)` \|", re.M)


def _sections() -> dict[tuple[str, str], str]:
    out = {}
    marks = list(HEADING.finditer(DOC))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else DOC.index("## 9.")
        out[(m.group(2), m.group(1))] = DOC[m.end():end]
    return out


def _fields(section: str) -> set[str]:
    return set(FIELD_ROW.findall(section))


def test_doc_lists_every_message_type_in_both_directions() -> None:
    sections = _sections()
    assert {t for d, t in sections if d == "client"} == set(P.CLIENT_MESSAGES)
    assert {t for d, t in sections if d == "host"} == set(P.HOST_MESSAGES)


def test_doc_fields_match_the_payload_models() -> None:
    for (direction, type_), section in _sections().items():
        registry = P.CLIENT_MESSAGES if direction == "client" else P.HOST_MESSAGES
        spec = registry[type_]
        assert _fields(section) == set(spec.payload.model_fields), (direction, type_)
        if direction == "client":
            senders = re.search(r"^Senders: (.+?) ·", section, re.M)
            assert senders, type_
            assert set(senders.group(1).split(", ")) == {r.value for r in spec.senders}, type_
        else:
            durable = section.lstrip().startswith("durable")
            assert durable == spec.durable, type_
            if type_ in P.AGENT_ONLY_TYPES:
                assert "never customers" in section.strip().split("\n\n")[0], type_


def test_doc_describes_the_shared_objects() -> None:
    objects = DOC[DOC.index("## 9."):DOC.index("## 10.")]
    marks = list(OBJECT.finditer(objects))
    found = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(objects)
        found[m.group(1)] = _fields(objects[m.end():end])
    for model in (P.ClientInfo, P.SessionSummary, P.Author, P.Citation, P.Article,
                  P.SessionIdentity, P.IdentityStatus, P.CustomerMatch,
                  P.Provenance, P.DraftClaim):
        assert found[model.__name__] == set(model.model_fields), model.__name__


def test_doc_role_matrix_matches_the_senders() -> None:
    matrix = DOC[DOC.index("| client operation |"):]
    for type_, spec in P.CLIENT_MESSAGES.items():
        row = re.search(rf"^\| `{re.escape(type_)}` \| (.+) \|$", matrix, re.M)
        assert row, type_
        cells = [c.strip() for c in row.group(1).split("|")]
        allowed = {role for role, cell in zip(("customer", "agent", "admin"), cells,
                                              strict=True) if cell == "yes"}
        assert allowed == {r.value for r in spec.senders}, type_


def test_doc_lists_every_error_code_and_close_code() -> None:
    errors = DOC[DOC.index("## 11."):DOC.index("## 12.")]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", errors, re.M))
    assert listed == {c.value for c in P.ErrorCode}
    closes = DOC[DOC.index("## 12."):DOC.index("## 13.")]
    listed_close = {int(c) for c in re.findall(r"^\| (\d{4}) \|", closes, re.M)}
    ours = {v for k, v in vars(P.CloseCode).items() if k.isupper()}
    assert listed_close == ours


def test_doc_limits_match_the_code() -> None:
    assert f"{P.MAX_FRAME_BYTES} bytes" in DOC
    assert f"1-{P.MAX_TEXT_CHARS} characters" in DOC
    from hitl_desktop.host.relay import RelayConfig

    cfg = RelayConfig()
    assert f"{cfg.rate:g} units/s sustained, bursts of {cfg.burst:g}" in DOC
    assert f"1 unit plus 1 per {cfg.cost_bytes:,} characters" in DOC
    assert f"cost {cfg.heavy_cost:g} more" in DOC
    assert f"{cfg.max_queue_bytes // 2**20} MiB of live frames" in DOC
    assert f"takes no bytes for {cfg.stall_timeout:g} s" in DOC
    assert (f"pages of at most {cfg.replay_page_frames} frames or "
            f"{cfg.replay_page_bytes // 1024} KiB") in DOC
    assert (f"paced at {cfg.replay_rate_bytes / 2**20:g} MiB/s after a burst of "
            f"{cfg.replay_burst_bytes / 2**20:g} MiB") in DOC
    assert (f"{cfg.max_per_session_token} per customer-session or agent-session token, "
            f"{cfg.max_per_desk_token} per desk or admin token") in DOC
    assert f"{cfg.max_per_session} customers and session agents" in DOC
    assert f"{cfg.max_per_address} open sockets per client IP" in DOC
    assert f"open-file limit minus {cfg.fd_reserve}" in DOC
    assert (f"a burst of {cfg.failed_hello_burst:g}, then one every "
            f"{1 / cfg.failed_hello_rate:g} s") in DOC
    assert f"after {cfg.max_rate_drops} drops" in DOC
    assert f"more than {cfg.max_errors} errors within {cfg.error_window:g} s" in DOC
    assert f"{cfg.max_queue:,} frames" in DOC
    assert f"within **{cfg.hello_timeout:g} s**" in DOC
    assert (f"at most {cfg.lobby_burst:g} sessions in a burst per client IP address, "
            f"then one every {1 / cfg.lobby_rate:g} s") in DOC
    assert (f"failed `identity.sign_in` attempts within {cfg.sign_in_window:g} s: "
            f"{cfg.sign_in_per_session} per session, {cfg.sign_in_per_email} per email address, "
            f"{cfg.sign_in_per_ip} per client IP address") in DOC
    assert f"locks that key out for {cfg.sign_in_lockout:g} s" in DOC


def test_enum_fields_list_their_values() -> None:
    """A type column must be readable by a client writer: no Python reprs."""
    assert "<enum" not in DOC and "Union[" not in DOC
    for enum in (P.Role, P.Scope, P.ErrorCode):
        values = ", ".join(f"`{m.value}`" for m in enum)
        assert f"one of {values}" in DOC, enum.__name__
