"""The co-pilot test desk: a real host (relay + co-pilot) on port 0 with a customer
and two named agents on real WebSockets, for the end-to-end co-pilot tests.

Fixtures ``fake``, ``desks`` and ``desk`` are imported by the test modules that
use them (listed in their ``__all__``, as pytest finds fixtures by name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from hitl_desktop.app.services import RunningHost, start_host
from hitl_desktop.assistant.openai_provider import OpenAIProvider
from hitl_desktop.config import Paths, Settings, resolve_paths
from hitl_desktop.core.protocol import ChatSend
from hitl_desktop.host.copilot import HostCopilot, build_copilot
from hitl_desktop.host.tokens import TokenKind
from tests.support.fake_openai import Call, FakeOpenAI, Reply
from tests.support.protocol_client import Client

# --------------------------------------------------------------------- fixtures


class Desk:
    """One running host with a customer and two named agents connected to one session."""

    def __init__(self, host: RunningHost, fake: FakeOpenAI, session_id: str,
                 customer: Client, agent: Client, agent2: Client) -> None:
        self.host, self.fake, self.sid = host, fake, session_id
        self.customer, self.agent, self.agent2 = customer, agent, agent2

    @property
    def copilot(self) -> HostCopilot:
        return cast(HostCopilot, self.host.relay.copilot)

    async def say(self, text: str) -> None:
        await self.customer.send(ChatSend(text=text), self.sid)

    async def draft(self, n: int = 1) -> dict[str, Any]:
        """The n-th completed draft of this session, as the agent received it."""
        data: dict[str, Any] = (await self.agent.wait("draft.completed", count=n))["data"]
        return data

    async def send_draft(self, draft: dict[str, Any], text: str | None = None) -> None:
        await self.agent.send(ChatSend(text=text or draft["text"], draft_id=draft["turn_id"]),
                              self.sid)

    async def order_status(self, order_id: str) -> str:
        store = self.copilot.store
        order = await store.worker.call(store.order, order_id)
        assert order is not None
        return str(order["status"])


def host_paths(tmp_path: Path) -> Paths:
    return resolve_paths(tmp_path / "data", tmp_path / "config").ensure()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def open_desk(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, *,
    key: str | None = "fake", settings: Settings | None = None, max_retries: int = 3,
    provider_factory: Callable[[Paths, Settings], Any] | None = None,
    override: str | None = None, clock: Callable[[], float] | None = None,
) -> Desk:
    if key is not None:
        monkeypatch.setenv("OPENAI_API_KEY", fake.api_key if key == "fake" else key)
    # the OpenAI engine's only way to another address (settings cannot redirect its key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    paths = host_paths(tmp_path)
    settings = settings or Settings(provider="openai", vector_store_id="vs_test",
                                    model="gpt-5-mini")

    def factory(outbox: Any) -> HostCopilot:
        if override is not None:
            return build_copilot(paths, settings, outbox, provider_override=override,
                                 clock=clock)
        provider = (provider_factory(paths, settings) if provider_factory is not None else
                    OpenAIProvider.from_settings(paths, settings, max_retries=max_retries))
        return build_copilot(paths, settings, outbox, provider=provider, clock=clock)

    host = await start_host(paths, settings, port=0, copilot_factory=factory)
    created = host.create_session(customer_id="CUST1001", title="flow")
    tokens = host.relay.tokens
    dana = tokens.issue(TokenKind.AGENT_SESSION, session_id=created.session_id, label="Dana")
    sam = tokens.issue(TokenKind.AGENT_DESK, label="Sam")
    customer = await Client.connect(host.local_url, created.customer_token)
    agent = await Client.connect(host.local_url, dana)
    agent2 = await Client.connect(host.local_url, sam)
    return Desk(host, fake, created.session_id, customer, agent, agent2)


@pytest.fixture
async def desks() -> AsyncIterator[list[Desk]]:
    opened: list[Desk] = []
    yield opened
    for desk in opened:
        for client in (desk.customer, desk.agent, desk.agent2):
            await client.close()
        await desk.host.stop()


@pytest.fixture
async def desk(tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
               desks: list[Desk]) -> Desk:
    opened = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(opened)
    return opened


def last_input(fake: FakeOpenAI) -> list[dict[str, Any]]:
    body = fake.responses_requests()[-1].body
    return list(body["input"])


async def approval_for(desk: Desk, tool: str, arguments: dict[str, Any],
                       text: str = "I'll check with my colleague.") -> dict[str, Any]:
    n = len(desk.agent.of("approval.created")) + 1
    drafts = len(desk.agent.of("draft.completed")) + 1
    desk.fake.enqueue(Reply(calls=[Call(tool, arguments)]), Reply(text=text))
    await desk.say(f"please {tool}")
    created: dict[str, Any] = (await desk.agent.wait("approval.created", count=n))["data"]
    assert created["tool"] == tool
    assert (await desk.agent.wait("draft.completed", count=drafts))["data"]["text"] == text
    return created
