"""Claims of docs/PROTOCOL.md an independent client relies on, checked through real sockets.

Found by writing a client from the document alone: the order of frames after a
``welcome``, the name an unverified customer writes under, which errors carry the
envelope ``session``, and which operations a closed session answers with
``session_closed``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.support.host import running_host
from tests.support.protocol_client import Client


def test_frames_after_welcome_names_errors_and_closed_sessions(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(data: Path) -> None:
    async with running_host(data) as host:
        visitor = await Client.connect(host.local_url, host.lobby_token)
        sid = visitor.session
        assert sid and visitor.welcome["display_name"] == "Customer"
        assert visitor.welcome["identity"] == {
            "signed_in": False, "customer_name": None, "method": None}
        await visitor.expect("session.opened", session=sid)
        said = await visitor.send("chat.send", {"text": "hello"}, session=sid)
        line = await visitor.expect("chat.message", ref=said)
        assert line["data"]["author"] == {"role": "customer", "name": "Customer"}

        # §5: an agent gets welcome, then assistant.status, then the replay (of the
        # sessions its resume names, for a desk) in seq order
        agent = await Client.connect(host.local_url, host.desk_token, resume={sid: 0})
        frames = await agent.drain(0.5)
        assert frames[0]["type"] == "assistant.status"
        seqs = [f["seq"] for f in frames if f.get("session") == sid and f["seq"]]
        assert seqs[:2] == [1, 2] and seqs == sorted(seqs)

        # §11: a frame failing validation is answered with session null, even if it named one
        await visitor.ws.send(json.dumps({
            "v": 1, "type": "chat.send", "id": "bad1", "session": sid, "seq": None,
            "ts": 0.0, "data": {"text": "hi", "extra": 1}}))
        bad = await visitor.expect("error", ref="bad1")
        assert bad["data"]["code"] == "bad_message" and bad["session"] is None
        refused = await visitor.send("session.close", {}, session=sid)
        forbidden = await visitor.expect("error", ref=refused)
        assert forbidden["data"]["code"] == "forbidden" and forbidden["session"] == sid

        # §11 session_closed: chat, sign-in and a second close in a closed session
        closing = await agent.send("session.close", {}, session=sid)
        await visitor.expect("session.closed", ref=closing)
        attempts: list[tuple[Client, str, dict[str, Any]]] = [
            (visitor, "chat.send", {"text": "still there?"}),
            (visitor, "identity.sign_in",
             {"email": "alex.morgan@example.com", "order_id": "ORD1001"}),
            (agent, "session.close", {}),
            (agent, "draft.regenerate", {}),
        ]
        for client, type_, payload in attempts:
            ref = await client.send(type_, payload, session=sid)
            err = await client.expect("error", ref=ref)
            assert err["data"]["code"] == "session_closed", type_
        reopening = await agent.send("session.reopen", {}, session=sid)
        await visitor.expect("session.reopened", ref=reopening)
        again = await agent.send("session.reopen", {}, session=sid)
        assert (await agent.expect("error", ref=again))["data"]["code"] == "conflict"
        await visitor.close()
        await agent.close()
