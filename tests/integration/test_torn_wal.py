"""A lost log tail (torn WAL, as after a power cut): the host loses its last commits
while an agent already holds their seqs. After the restart no resuming client gets a
reused seq without being told: the host continues after its durable seq reservation
and sends a ``session.gap`` that names the lost range."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.attacks import frame, host_process, open_ws

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL of a subprocess")
LOG_FILES = ("relay.sqlite3", "relay.sqlite3-wal")


async def _chat(url: str, s: dict[str, str], texts: list[str], agent_seqs: list[int]) -> None:
    """The customer writes each line; the agent reads until it has it (its seqs noted)."""
    cust = await open_ws(url, s["customer_token"], resume={s["session_id"]: 10**6})
    agent = await open_ws(url, s["agent_token"], resume={s["session_id"]: max(agent_seqs,
                                                                                default=0)})
    try:
        for text in texts:
            mid = f"c-{text}"
            await cust.send(frame("chat.send", {"text": text}, session=s["session_id"],
                                  msg_id=mid))
            async with asyncio.timeout(5):
                while True:
                    msg = json.loads(await agent.recv())
                    if msg.get("seq"):
                        agent_seqs.append(msg["seq"])
                    if msg["type"] == "chat.message" and msg.get("ref") == mid:
                        break
    finally:
        await cust.close()
        await agent.close()


async def test_a_lost_log_tail_never_hands_out_a_held_seq_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    spec: dict[str, Any] = {"sessions": 1, "relay": {"checkpoint_interval": 3600.0}}
    seqs: list[int] = []
    with host_process(data, spec) as host:
        s = host.session(0)
        await _chat(host.url, s, [f"early {i}" for i in range(5)], seqs)
        for name in LOG_FILES:  # what reached the disk before the power cut
            shutil.copy2(data / name, snapshot / name)
        await _chat(host.url, s, [f"late {i}" for i in range(8)], seqs)
        held = max(seqs)  # the agent holds seqs the disk never got
        host.proc.kill()
        host.proc.wait(10)
    for name in LOG_FILES:  # the power cut: the WAL's tail is gone
        shutil.copy2(snapshot / name, data / name)
    (data / "relay.sqlite3-shm").unlink(missing_ok=True)

    with host_process(data, {"sessions": 0}) as host:
        agent = await open_ws(host.url, s["agent_token"], resume={s["session_id"]: held})
        cust = await open_ws(host.url, s["customer_token"], resume={s["session_id"]: held})
        await cust.send(frame("chat.send", {"text": "after the restart"},
                              session=s["session_id"], msg_id="c-after"))
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while not any(m.get("ref") == "c-after" for m in got):
                msg = json.loads(await agent.recv())
                if msg.get("seq") is not None:
                    got.append(msg)
        await agent.close()
        await cust.close()
    gap = got[0]
    assert gap["type"] == "session.gap", got
    # the agent is told that it holds seqs the host lost ...
    assert gap["data"]["first_seq"] <= held < gap["data"]["last_seq"] < gap["seq"]
    # ... and never receives a seq it already holds for another message
    assert all(m["seq"] > held for m in got), [m["seq"] for m in got]
    assert got[-1]["data"]["text"] == "after the restart"


async def test_a_clean_stop_leaves_no_gap(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seqs: list[int] = []
    with host_process(data, {"sessions": 1}) as host:
        s = host.session(0)
        await _chat(host.url, s, ["one", "two"], seqs)
    with host_process(data, {"sessions": 0}) as host:
        await _chat(host.url, s, ["three"], seqs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
