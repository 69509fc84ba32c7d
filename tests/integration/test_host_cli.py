"""The headless host and the session CLI as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hitl_desktop.core.links import InviteLink
from tests.support.protocol_client import Client, token_of

PY = sys.executable


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    return env


@contextmanager
def headless_host(
    data_dir: Path, *extra: str
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc = subprocess.Popen(
        [PY, "-m", "hitl_desktop", "host", "--headless", "--port", "0",
         "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the host prints it once listening
        if not line:
            raise AssertionError(f"host died: {proc.stderr.read() if proc.stderr else ''}")
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def cli(*args: str) -> Any:
    out = subprocess.run([PY, "-m", "hitl_desktop", *args], capture_output=True, text=True,
                         env=_env(), timeout=60, check=True)
    return json.loads(out.stdout)


def test_headless_prints_links_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "hostdata"
    with headless_host(data) as (proc, info):
        assert {"url", "agent_link", "customer_link", "admin_link", "data_dir"} <= set(info)
        assert info["url"].startswith("ws://127.0.0.1:") and info["url"].endswith("/ws")
        assert InviteLink.parse(info["agent_link"]).role == "agent"
        assert InviteLink.parse(info["customer_link"]).role == "customer"
        assert Path(info["data_dir"]) == data.resolve()
        host_json = json.loads((data / "host.json").read_text())
        assert host_json["port"] == info["port"] and host_json["pid"] == proc.pid
        mode = stat.S_IMODE((data / "host-links.json").stat().st_mode)
        assert mode == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "host stopped" in err
        # the secrets are never logged
        for link in (info["agent_link"], info["customer_link"], info["admin_link"]):
            assert token_of(link).split(".")[1] not in err
    # links are stable across restarts
    with headless_host(data) as (_proc, again):
        assert token_of(again["agent_link"]) == token_of(info["agent_link"])
        assert token_of(again["customer_link"]) == token_of(info["customer_link"])


def test_headless_host_never_imports_qtwidgets(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, sys, threading, time
        from pathlib import Path
        from hitl_desktop.cli import main
        data = Path({str(tmp_path / 'd')!r})
        def watch():
            while not (data / "host.json").exists():
                time.sleep(0.05)
            sys.stderr.write("QTWIDGETS=%s\\n" % ("PySide6.QtWidgets" in sys.modules))
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=watch, daemon=True).start()
        sys.exit(main(["host", "--headless", "--port", "0", "--data-dir", str(data)]))
    """)
    out = subprocess.run([PY, "-c", script], check=False, capture_output=True, text=True,
                         env=_env(),
                         timeout=60)
    assert "QTWIDGETS=False" in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr


def test_sigkill_and_restart_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "hostdata"
    texts = [f"message {i}" for i in range(40)]

    before_kill: list[tuple[int, str]] = []

    async def chat(url: str, cust_tok: str, agent_tok: str, sid: str) -> None:
        cust = await Client.connect(url, cust_tok)
        agent = await Client.connect(url, agent_tok)
        for i, text in enumerate(texts):
            who = cust if i % 2 == 0 else agent
            await who.send("chat.send", {"text": text}, session=sid)
            # the echo means it is logged (the host logs before it relays)
            await who.expect("chat.message", text=text)
        await agent.drain(0.2)
        got = [m["data"]["text"] for m in agent.seen if m["type"] == "chat.message"]
        assert got == texts
        before_kill.extend((m["seq"], m["id"]) for m in agent.seen if m["seq"] is not None)

    with headless_host(data) as (proc, info):
        made = cli("session", "new", "--data-dir", str(data), "--customer-id", "CUST1004",
                   "--title", "Crash test")
        assert InviteLink.parse(made["customer_link"]).port == info["port"]
        sid = made["session_id"]
        asyncio.run(chat(info["url"], token_of(made["customer_link"]),
                         token_of(made["agent_link"]), sid))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    async def check(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        cust = await Client.connect(url, token_of(made["customer_link"]), resume={sid: 0})
        agent = await Client.connect(url, token_of(made["agent_link"]), resume={sid: 0})
        return await cust.drain(0.5), await agent.drain(0.2)

    with headless_host(data) as (_proc, info2):
        frames, agent_frames = asyncio.run(check(info2["url"]))
    # every durable frame an agent saw before the kill is still there, same seq and id,
    # and an agent's replay has no gap but the one a session.gap announces (after an
    # unclean stop the host continues after its reserved seqs: docs/PROTOCOL.md s. 10)
    replay = [(m["seq"], m["id"]) for m in agent_frames if m["seq"] is not None]
    assert set(before_kill) <= set(replay)
    gaps = [m for m in agent_frames if m["type"] == "session.gap"]
    assert len(gaps) == 1 and gaps[0]["data"]["first_seq"] == max(s for s, _ in before_kill) + 1
    skipped = set(range(gaps[0]["data"]["first_seq"], gaps[0]["data"]["last_seq"] + 1))
    expected = [s for s in range(1, replay[-1][0] + 1) if s not in skipped]
    assert [seq for seq, _ in replay] == expected
    chat_texts = [m["data"]["text"] for m in frames if m["type"] == "chat.message"]
    assert chat_texts == texts
    # the co-pilot's agent-only durable frames (drafts, tool calls) take seqs too,
    # so a customer's seqs rise strictly but may skip
    seqs = [m["seq"] for m in frames]
    assert seqs[0] == 1 and seqs == sorted(set(seqs))
    listed = cli("session", "list", "--data-dir", str(data))
    assert [s["session_id"] for s in listed] == [sid]
    assert listed[0]["last_seq"] >= len(texts) + 1
    assert listed[0]["customer_name"] == "Maria Garcia"


def test_session_new_next_to_a_running_host_reaches_the_desk(tmp_path: Path) -> None:
    data = tmp_path / "hostdata"

    async def run(info: dict[str, Any]) -> None:
        desk = await Client.connect(info["url"], token_of(info["agent_link"]))
        made = await asyncio.to_thread(cli, "session", "new", "--data-dir", str(data))
        upd = await desk.expect("session.updated", wait=10, session=made["session_id"])
        assert upd["data"]["summary"]["customer_id"] is None  # no --customer: anonymous
        assert upd["data"]["summary"]["identity"]["state"] == "anonymous"
        cust = await Client.connect(info["url"], token_of(made["customer_link"]))
        await cust.send("chat.send", {"text": "hello from the CLI session"},
                        session=made["session_id"])
        msg = await desk.expect("chat.message")
        assert msg["session"] == made["session_id"] and msg["seq"] == 2

    with headless_host(data) as (_proc, info):
        started = time.monotonic()
        asyncio.run(run(info))
        assert time.monotonic() - started < 20
