"""``hitl-desktop rep add|list|remove`` next to a running headless host: a personal desk
link carries the representative's name, survives a rotation of the shared desk link, and
stops working at once when removed from another process. And the desk's state after the
host process is killed and started again. (The commands that must be
separate processes run as subprocesses; the rest run the same functions in a thread, to
keep the test short.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.app import sessions_cli
from hitl_desktop.cli import build_parser
from hitl_desktop.core.links import InviteLink
from tests.integration.test_desk_host import answer
from tests.integration.test_host_cli import cli, headless_host
from tests.support.protocol_client import Client


async def subprocess_cli(*args: str) -> Any:
    """``hitl-desktop ARGS`` as a real process, waited for in a thread."""
    return await asyncio.to_thread(cli, *args)


async def rep_cmd(*argv: str) -> Any:
    """``hitl-desktop rep ...``'s function on the parsed arguments, in a thread."""
    args = build_parser().parse_args(argv)
    fn = {"add": sessions_cli.rep_add, "list": sessions_cli.rep_list,
          "remove": sessions_cli.rep_remove}[args.rep_cmd]
    return await asyncio.to_thread(fn, args)


async def test_personal_desk_links(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with headless_host(tmp_path / "data") as (_proc, info):
        ana = await subprocess_cli("rep", "add", "  Ana  Lima ", "--data-dir", data)
        assert ana["name"] == "Ana Lima"
        link = InviteLink.parse(ana["link"])
        assert link.role == "agent" and link.port == info["port"]
        assert link.token.partition(".")[0] == ana["rep_id"]
        ben = await rep_cmd("rep", "add", "Ben", "--data-dir", data)
        # a second "ana lima" would make names ambiguous: refused, nothing issued
        with pytest.raises(ValueError, match="already"):
            await rep_cmd("rep", "add", "ana lima", "--data-dir", data)
        with pytest.raises(ValueError, match="printable"):
            await rep_cmd("rep", "add", "x" * 65, "--data-dir", data)
        listed = await rep_cmd("rep", "list", "--data-dir", data)
        assert sorted((r["name"], r["link"]) for r in listed) == [
            ("Agent", "shared desk"), ("Ana Lima", "personal"), ("Ben", "personal"),
            ("Host", "admin")]

        client = await Client.connect(link.ws_url, link.token)
        assert client.welcome["you"] == {"rep_id": ana["rep_id"], "name": "Ana Lima"}
        assert client.welcome["display_name"] == "Ana Lima"
        names = {r["name"]: r["online"] for r in client.welcome["reps"]}
        assert names == {"Agent": False, "Ana Lima": True, "Ben": False, "Host": False}

        # rotating the shared desk link leaves personal links alone
        rotated = await subprocess_cli("links", "rotate", "desk", "--data-dir", data)
        assert rotated["revoked_tokens"] == 1
        again = await Client.connect(link.ws_url, link.token)
        assert again.welcome["you"]["name"] == "Ana Lima"
        await again.close()

        # removing Ana (another process) closes her window with 4010; Ben stays
        removed = await subprocess_cli("rep", "remove", "ana lima", "--data-dir", data)
        assert removed == {"rep_id": ana["rep_id"], "name": "Ana Lima", "revoked": True}
        assert await client.closed_code(wait=10.0) == 4010
        with pytest.raises(LookupError, match="no representative"):
            await rep_cmd("rep", "remove", "Ana Lima", "--data-dir", data)
        listed = await rep_cmd("rep", "list", "--data-dir", data)
        assert sorted(r["name"] for r in listed) == ["Agent", "Ben", "Host"]
        assert (await rep_cmd("rep", "remove", ben["rep_id"], "--data-dir", data))[
            "name"] == "Ben"


async def test_the_desk_survives_a_killed_host(tmp_path: Path) -> None:
    """SIGKILL the host right after the last line (no clean stop, the index batch of the
    last INDEX_DELAY_S maybe unwritten), start a new host process on the same data dir: holder,
    status, waiting time, the note and the search index are all there."""
    data = str(tmp_path / "data")
    with headless_host(tmp_path / "data") as (proc, info):
        ana = await rep_cmd("rep", "add", "Ana", "--data-dir", data)
        token = InviteLink.parse(ana["link"]).token
        desk = await Client.connect(info["url"], token)
        customer = await Client.connect(info["url"], InviteLink.parse(info["customer_link"]).token)
        sid = str(customer.session)
        await customer.send("chat.send", {"text": "the pelican lamp flickers"}, session=sid)
        line = await desk.wait("chat.message", where=lambda f: f["session"] == sid)
        await desk.send("session.assign", {"action": "take"}, session=sid)
        await desk.send("note.add", {"text": "ordered a spare pelican bulb"}, session=sid)
        mid = await desk.send("session.status", {"status": "waiting"}, session=sid)
        await desk.wait("session.status_changed", where=lambda f: f["ref"] == mid)
        await customer.send("chat.send", {"text": "and now the switch sparks"}, session=sid)
        await desk.wait("session.status_changed", where=lambda f: f["data"]["by"] == "customer")
        proc.kill()  # SIGKILL: no shutdown, no flush
        proc.wait(10)
        await desk.close()
        await customer.close()
    with headless_host(tmp_path / "data") as (_proc, info):
        desk = await Client.connect(info["url"], token)
        (summary,) = [s for s in desk.welcome["sessions"] if s["session_id"] == sid]
        assert summary["assignee"] == {"rep_id": ana["rep_id"], "name": "Ana"}
        assert summary["status"] == "open" and summary["waiting_since"] == line["ts"]
        mid = await desk.send("search", {"query": "switch sparks"})
        hits = (await answer(desk, mid))["data"]["hits"]
        assert [(h["session_id"], h["kind"]) for h in hits] == [(sid, "chat")]
        mid = await desk.send("search", {"query": "pelican"})
        kinds = sorted(h["kind"] for h in (await answer(desk, mid))["data"]["hits"])
        assert kinds == ["chat", "note"]
        # `session list` on the data dir says the same
        args = build_parser().parse_args(["session", "list", "--data-dir", data])
        listed = await asyncio.to_thread(sessions_cli.list_sessions, args)
        (row,) = [r for r in listed if r["session_id"] == sid]
        assert (row["assignee"]["name"], row["status"], row["waiting_since"]) == (
            "Ana", "open", line["ts"])
        await desk.close()
