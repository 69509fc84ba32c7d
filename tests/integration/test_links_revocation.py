"""Replacing a leaked link: ``hitl-desktop links rotate`` / ``session revoke`` (real CLI
processes) next to a running host process: live connections close with 4010 at once,
the old token is refused, also after a restart; deleting host-links.json rotates too."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.core.links import InviteLink
from tests.support.attacks import REPO, close_code, host_process, open_ws

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")


def cli(data_dir: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "hitl_desktop", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


async def first_frame(url: str, token: str) -> tuple[str, int | None]:
    ws = await open_ws(url, token)
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    code = await close_code(ws, 0.5)
    await ws.close()
    return first["type"], code


async def test_links_rotate_closes_live_connections_and_survives_a_restart(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    with host_process(data, {"sessions": 1}) as host:
        old_desk = host.info["desk_token"]
        desk = await open_ws(host.url, old_desk)
        await asyncio.wait_for(desk.recv(), 5)
        rotated = cli(data, "links", "rotate", "desk")
        assert rotated["revoked_tokens"] == 1
        new_desk = InviteLink.parse(rotated["link"]).token
        assert new_desk != old_desk
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await close_code(desk, 5.0) == 4010
        assert loop.time() - t0 < 3.0  # the host polls the log every second
        assert await first_frame(host.url, old_desk) == ("error", 4001)
        assert (await first_frame(host.url, new_desk))[0] == "welcome"
        # the lobby link still works: only the desk link was replaced
        assert (await first_frame(host.url, host.info["lobby_token"]))[0] == "welcome"
    with host_process(data, {"sessions": 0}) as host:  # across a restart
        assert host.info["desk_token"] == new_desk
        assert await first_frame(host.url, old_desk) == ("error", 4001)
        assert (await first_frame(host.url, new_desk))[0] == "welcome"


async def test_deleting_host_links_json_revokes_the_old_links(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with host_process(data, {"sessions": 0}) as host:
        old = {k: host.info[k] for k in ("desk_token", "lobby_token", "admin_token")}
    (data / "host-links.json").unlink()
    with host_process(data, {"sessions": 0}) as host:
        for key, token in old.items():
            assert host.info[key] != token
            assert await first_frame(host.url, token) == ("error", 4001)
    assert oct((data / "host-links.json").stat().st_mode & 0o777) == "0o600"


async def test_session_revoke_cli_closes_the_sessions_connections(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with host_process(data, {"sessions": 2}) as host:
        s0, s1 = host.session(0), host.session(1)
        cust = await open_ws(host.url, s0["customer_token"])
        other = await open_ws(host.url, s1["customer_token"])
        for ws in (cust, other):
            await asyncio.wait_for(ws.recv(), 5)
        out = cli(data, "session", "revoke", s0["session_id"])
        assert out["revoked_tokens"] == 2
        assert await close_code(cust, 5.0) == 4010
        assert await close_code(other, 1.0) is None  # another session: untouched
        assert await first_frame(host.url, s0["agent_token"]) == ("error", 4001)
        await other.close()
