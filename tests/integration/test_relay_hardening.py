"""Hardening rules of the relay that need no attack load: malformed frames, paged
replays and sync coalescing, connection caps, revocation of live connections,
what a customer's summary hides, the rate limit's ``ref``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from hitl_desktop.core.protocol import CloseCode, ErrorCode
from hitl_desktop.host.relay import RelayConfig
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused, token_of


async def test_type_object_or_array_and_lone_surrogate_id_get_a_clear_error(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        cust = await Client.connect(host.url, token_of(created.customer_link))
        await cust.drain()
        sid = created.session_id
        for bad in ('{"v":1,"type":{"a":1},"id":"x1","session":null,"ts":0.0,"data":{}}',
                    '{"v":1,"type":["chat.send"],"id":"x2","session":null,"ts":0.0,"data":{}}',
                    '{"v":1,"type":"chat.send","id":"\\ud800","session":"' + sid
                    + '","ts":0.0,"data":{"text":"hi"}}',
                    '{"v":1,"type":"ack","id":"\\udfff","session":"' + sid
                    + '","ts":0.0,"data":{"seq":1}}'):
            await cust.ws.send(bad)
            err = await cust.expect("error")
            assert err["data"]["code"] == ErrorCode.BAD_MESSAGE.value, err
        # still connected and working
        mid = await cust.send("chat.send", {"text": "still here"}, session=sid)
        assert (await cust.expect("chat.message"))["ref"] == mid
        # the same in a hello: an error and 4001, not 1011
        ws = await connect(host.url, compression=None)
        await ws.send('{"v":1,"type":"hello","id":"\\ud800","session":null,"ts":0.0,'
                      '"data":{"token":"abcd.efghijklmnopqrstuvwxyz"}}')
        first = json.loads(await ws.recv())
        assert first["type"] == "error" and first["ref"] is None
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == CloseCode.AUTH_FAILED


async def test_replay_is_paged_and_a_second_sync_is_coalesced(tmp_path: Path) -> None:
    # a small replay byte budget keeps the replay under way for about a second
    cfg = RelayConfig(replay_page_frames=7, replay_page_bytes=10_000,
                      replay_rate_bytes=30_000, replay_burst_bytes=2_000)
    async with running_host(tmp_path, config=cfg) as host:
        created = host.create_session()
        sid = created.session_id
        st = host.relay.sessions[sid]
        for n in range(100):
            host.relay_log.append_chat(st.row, message_id=f"c{n}", role="customer",
                                       name="C", text=f"line {n}", draft_id=None, ref=None)
        agent = await Client.connect(host.url, token_of(created.agent_link))
        cust = await Client.connect(host.url, token_of(created.customer_link))
        # live traffic while the replay is still under way: in order, no gap, no duplicate
        await cust.send("chat.send", {"text": "live 1"}, session=sid)
        await agent.send("session.sync", {"after_seq": 50}, session=sid)  # coalesced
        back = await agent.send("session.sync", {"after_seq": 0}, session=sid)  # refused
        await cust.send("chat.send", {"text": "live 2"}, session=sid)
        got = await agent.drain(1.0)
        frames = [m for m in got if m.get("seq")]
        assert [m["seq"] for m in frames] == list(range(1, 104))
        assert [m["data"]["text"] for m in frames[-2:]] == ["live 1", "live 2"]
        conflict = [m for m in got if m["type"] == "error"]
        assert [(m["ref"], m["data"]["code"]) for m in conflict] == [(back, "conflict")]
        # once it is done, the same sync is served
        await agent.send("session.sync", {"after_seq": 0}, session=sid)
        again = [m for m in await agent.drain(1.5) if m.get("seq")]
        assert [m["seq"] for m in again] == list(range(1, 104))


async def test_caps_per_token_and_per_session_refuse_with_4008(tmp_path: Path) -> None:
    cfg = RelayConfig(max_per_session_token=2, max_per_session=3)
    async with running_host(tmp_path, config=cfg) as host:
        created = host.create_session()
        c1 = await Client.connect(host.url, token_of(created.customer_link))
        await Client.connect(host.url, token_of(created.customer_link))
        frames, code = await refused(host.url, token_of(created.customer_link))
        assert code == CloseCode.RATE_LIMITED
        assert frames[0]["data"]["code"] == ErrorCode.RATE_LIMITED.value
        await Client.connect(host.url, token_of(created.agent_link))  # third in the session
        frames, code = await refused(host.url, token_of(created.agent_link))
        assert code == CloseCode.RATE_LIMITED and "chat" in frames[0]["data"]["message"]
        await c1.close()
        await asyncio.sleep(0.1)
        await Client.connect(host.url, token_of(created.agent_link))  # room again


async def test_revoking_a_session_closes_its_live_connections_with_4010(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        other = host.create_session()
        cust = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        bystander = await Client.connect(host.url, token_of(other.customer_link))
        desk = await Client.connect(host.url, host.desk_token)
        assert host.relay.revoke_session(created.session_id) == 2
        for client in (cust, agent):
            code = await client.closed_code()
            assert code == CloseCode.REVOKED
        for client in (bystander, desk):
            mid = await client.send("session.list", {}) if client is desk else None
            if mid:
                await client.expect("session.list")
        await bystander.send("chat.send", {"text": "fine"}, session=other.session_id)
        await bystander.expect("chat.message")
        _frames, code = await refused(host.url, token_of(created.customer_link))
        assert code == CloseCode.AUTH_FAILED


async def test_a_customers_summary_hides_the_pending_approval_count(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        host.relay.sessions[created.session_id].row.pending_approvals = 3
        cust = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        assert cust.welcome["sessions"][0]["pending_approvals"] == 0
        assert agent.welcome["sessions"][0]["pending_approvals"] == 3


async def test_rate_limited_errors_carry_the_dropped_frames_ref(tmp_path: Path) -> None:
    cfg = RelayConfig(rate=1.0, burst=2.0)
    async with running_host(tmp_path, config=cfg) as host:
        created = host.create_session()
        cust = await Client.connect(host.url, token_of(created.customer_link))
        sid = created.session_id
        ids = [await cust.send("typing", {"active": True}, session=sid) for _ in range(5)]
        err = await cust.expect("error", code="rate_limited")
        assert err["ref"] in ids[1:]
        assert err["data"]["retry_after"] > 0


async def test_the_rate_limit_close_is_announced_by_an_error_without_retry_after(
        tmp_path: Path) -> None:
    """PROTOCOL.md section 13, as audit9's independent client found it: one error per
    20 drops with ``retry_after``, then past ``max_rate_drops`` one last error with
    ``retry_after`` null and close 4008."""
    cfg = RelayConfig(rate=0.5, burst=2.0, max_rate_drops=45)
    async with running_host(tmp_path, config=cfg) as host:
        created = host.create_session()
        cust = await Client.connect(host.url, token_of(created.customer_link))
        sid = created.session_id
        for _ in range(2 + 46):
            await cust.send("typing", {"active": True}, session=sid)
        assert await cust.closed_code(5) == CloseCode.RATE_LIMITED
        errors = cust.of("error", code="rate_limited")
        assert [e["data"]["retry_after"] is not None for e in errors] == [True] * 3 + [False]
        assert errors[-1]["data"]["message"] == "too many frames: closing"


async def test_a_big_frame_costs_more_of_the_rate_budget(tmp_path: Path) -> None:
    cfg = RelayConfig(rate=0.5, burst=20.0, cost_bytes=1000)
    async with running_host(tmp_path, config=cfg) as host:
        created = host.create_session()
        cust = await Client.connect(host.url, token_of(created.customer_link))
        sid = created.session_id
        for _ in range(4):  # ~9 units each: the third is over the budget of 20
            await cust.send("chat.send", {"text": "z" * 8000}, session=sid)
        got = await cust.drain(0.3)
        assert sum(m["type"] == "chat.message" for m in got) == 2
        assert any(m["type"] == "error" and m["data"]["code"] == "rate_limited" for m in got)


def test_conversation_cache_is_bounded_in_bytes_lru_by_session(tmp_path: Path) -> None:
    from hitl_desktop.core.turns import CustomerLine
    from hitl_desktop.host.conversation import ConversationStore

    store = ConversationStore(tmp_path / "c.sqlite3", max_cache_chars=50_000)
    for n in range(20):  # 20 sessions of ~10 kB each
        store.append(f"s{n}", *(CustomerLine(text="x" * 1000) for _ in range(10)))
    assert store._cached_chars <= 50_000 + 11_000
    assert len(store._cache) < 10 and "s19" in store._cache
    # an evicted session reads back whole, and appends keep their order
    assert [i.text for i in store.items("s0")] == ["x" * 1000] * 10  # type: ignore[attr-defined]
    store.append("s0", CustomerLine(text="later"))
    assert store.items("s0")[-1].text == "later"  # type: ignore[attr-defined]
    store.close()
    again = ConversationStore(tmp_path / "c.sqlite3")
    assert len(again.items("s0")) == 11
    again.close()


def test_damaged_or_emptied_databases_stop_with_one_sentence(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.support.attacks import REPO

    for content in (b"", b"this is not a database at all" * 100):
        data = tmp_path / f"d{len(content)}"
        data.mkdir()
        (data / "relay.sqlite3").write_bytes(content)
        out = subprocess.run(
            [sys.executable, "-m", "hitl_desktop", "host", "--headless", "--port", "0",
             "--no-discovery", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and str(data / "relay.sqlite3") in lines[0], out.stderr
        assert "Traceback" not in out.stderr
        assert (data / "relay.sqlite3").read_bytes() == content  # left as it was


async def test_data_dir_is_private(tmp_path: Path) -> None:
    import os
    import stat

    async with running_host(tmp_path / "data") as host:
        host.create_session()
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for p in data.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        else:
            assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    assert os.name == "posix"
