"""A host that stops lets an operation under way finish: with group commit a chat line
reaches the other side as soon as it is durable, possibly before its handler has told
the co-pilot, and a restart must still find it in the model's history."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hitl_desktop.core.ports import NullCopilot, SessionOutbox
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of


class SlowCopilot(NullCopilot):
    """Records the agent's lines, slowly (as a busy store would)."""

    def __init__(self) -> None:
        self.recorded: list[str] = []

    async def on_agent_message(self, session_id: str, message_id: str, text: str,
                               draft_id: str | None, agent: str) -> None:
        await asyncio.sleep(0.4)
        self.recorded.append(text)


async def test_a_stopping_host_lets_the_copilot_record_a_line_already_relayed(
        tmp_path: Path) -> None:
    slow = SlowCopilot()

    def factory(_outbox: SessionOutbox) -> SlowCopilot:
        return slow

    async with running_host(tmp_path, copilot_factory=factory) as host:
        created = host.create_session(customer_id="CUST1001")
        sid = created.session_id
        customer = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        await agent.send("chat.send", {"text": "Your refund is on its way."}, session=sid)
        got = await customer.expect("chat.message")
        assert got["data"]["text"] == "Your refund is on its way."
        assert slow.recorded == []  # relayed, not yet recorded: the host stops now
    assert slow.recorded == ["Your refund is on its way."]
