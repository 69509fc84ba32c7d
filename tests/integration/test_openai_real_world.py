"""What a real key meets first (issue 14), through the real ``openai`` client against the
strict fake: unverified organisations, chat snapshots, refusals, 401/403/model_not_found,
reasoning through the tool loop, and the key never leaving for a local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.factory import make_provider
from hitl_desktop.assistant.openai_provider import OpenAIProvider
from hitl_desktop.assistant.stream import Completed, Failed, TextDelta, Update, translate
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.openai_models import (
    can_draft,
    drafting_models,
    is_reasoning_model,
)
from hitl_desktop.core.protocol import ApprovalApprove
from tests.support.copilot_desk import Desk, approval_for, desks, fake, last_input, open_desk
from tests.support.fake_openai import Call, FakeOpenAI, HttpError, Reply, replay_turns
from tests.support.turns import GET_ORDER, of, turn_request

__all__ = ["desks", "fake"]


def provider(fake: FakeOpenAI, **kwargs: Any) -> OpenAIProvider:
    options: dict[str, Any] = {"api_key": fake.api_key, "base_url": fake.base_url,
                               "model": "gpt-5-mini", "vector_store_id": "vs_test",
                               "max_retries": 0}
    options.update(kwargs)
    return OpenAIProvider(**options)


async def collect(p: OpenAIProvider, *items: dict[str, Any],
                  tools: list[dict[str, Any]] | None = None) -> list[Update]:
    request = turn_request("Where is ORD1001?", *items, tools=tools)
    return [u async for u in translate(p.stream(request))]


# ----------------------------------------------------------------- model knowledge


def test_reasoning_models_come_from_a_list_not_a_prefix() -> None:
    assert is_reasoning_model("gpt-5-mini") and is_reasoning_model("gpt-5-2025-08-07")
    assert is_reasoning_model("o4-mini") and is_reasoning_model("gpt-5.1-codex-max")
    assert not is_reasoning_model("gpt-5-chat-latest")  # the regex used to catch it
    assert not is_reasoning_model("gpt-4.1-mini") and not is_reasoning_model("llama3.1")


def test_the_picker_offers_only_models_that_can_run_the_request() -> None:
    listed = ["gpt-5-chat-latest", "o1-pro", "o1", "gpt-4o-audio-preview", "gpt-4.1",
              "gpt-3.5-turbo-instruct", "computer-use-preview", "gpt-5-mini", "gpt-5",
              "text-embedding-3-small", "gpt-4o-realtime-preview", "gpt-4.1-2025-04-14",
              "gpt-5-codex", "gpt-4o-search-preview", "gpt-4o-mini-tts", "o4-mini"]
    assert drafting_models(listed) == ["gpt-5-mini", "gpt-5", "gpt-4.1", "gpt-4.1-2025-04-14",
                                       "o4-mini"]
    assert not can_draft("gpt-5-chat-latest") and can_draft("gpt-5-nano")


# ----------------------------------------------------------------- request shape


async def test_reasoning_effort_is_low_by_default_and_configurable(
        fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="a"), Reply(text="b"), Reply(text="c"))
    for model, effort in (("gpt-5-mini", "low"), ("gpt-5", "medium")):
        p = provider(fake, model=model, reasoning_effort=effort)
        assert of(await collect(p), Completed)
        await p.aclose()
    plain = provider(fake, model="gpt-4.1-mini")
    assert of(await collect(plain), Completed)  # the strict fake rejects reasoning here
    await plain.aclose()
    bodies = [r.body for r in fake.responses_requests()]
    assert [b.get("reasoning") for b in bodies] == [{"effort": "low"}, {"effort": "medium"},
                                                    None]
    assert "reasoning.encrypted_content" not in bodies[2].get("include", [])


async def test_chat_latest_gets_no_encrypted_reasoning_and_no_tools(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="Your order ships tomorrow."))
    p = provider(fake, model="gpt-5-chat-latest")
    updates = await collect(p, tools=[GET_ORDER])
    await p.aclose()
    assert of(updates, Completed)[0].text == "Your order ships tomorrow."
    (request,) = fake.responses_requests()
    assert request.status == 200
    body = request.body
    assert "tools" not in body and "reasoning" not in body
    assert "reasoning.encrypted_content" not in body.get("include", [])


# ----------------------------------------------------------------- unverified organisations


async def test_unverified_org_gets_whole_drafts_and_the_model_is_remembered() -> None:
    async with FakeOpenAI(verified_org=False) as fake:
        fake.enqueue(Reply(text="Your order ORD1001 is pending."), Reply(text="Anything else?"))
        p = provider(fake)  # the default model, gpt-5-mini
        first = await collect(p)
        assert of(first, Completed)[0].text == "Your order ORD1001 is pending."
        assert "".join(u.text for u in of(first, TextDelta)) == "Your order ORD1001 is pending."
        assert p.notice is not None and "arrive whole" in p.notice
        assert "platform.openai.com/settings/organization/general" in p.notice
        second = await collect(p)
        await p.aclose()
        assert of(second, Completed)[0].text == "Anything else?"
        statuses = [(r.body["stream"], r.status) for r in fake.responses_requests()]
        # one refused stream, then whole responses only (no second refusal)
        assert statuses == [(True, 400), (False, 200), (False, 200)]


async def test_unverified_org_desk_gets_the_draft_and_the_status_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, desks: list[Desk]) -> None:
    async with FakeOpenAI(verified_org=False) as server:
        desk = await open_desk(tmp_path, server, monkeypatch)
        desks.append(desk)
        server.enqueue(Reply(text="Hello! ORD1001 is on its way."))
        await desk.say("Where is my order?")
        assert (await desk.draft())["text"] == "Hello! ORD1001 is on its way."
        status = await desk.agent.wait(
            "assistant.status", where=lambda f: "arrive whole" in (f["data"]["message"] or ""))
        assert status["data"]["state"] == "ready"


# ----------------------------------------------------------------- refusals and errors


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_refusal_is_shown_as_a_refusal(streamed: bool) -> None:
    async with FakeOpenAI(verified_org=streamed) as fake:
        fake.enqueue(Reply(refusal="I'm sorry, I can't help with that request."))
        p = provider(fake)
        updates = await collect(p)
        await p.aclose()
        assert not of(updates, Completed)
        (failed,) = of(updates, Failed)
        assert failed.code == "refusal"
        assert "refused" in failed.message and "can't help with that" in failed.message


async def test_refusal_reaches_the_agent_as_a_refusal(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    fake.enqueue(Reply(refusal="I can't assist with that."))
    await desk.say("Tell me another customer's address")
    failed = (await desk.agent.wait("draft.failed"))["data"]
    assert "refused" in failed["message"] and "can't assist" in failed["message"]


async def test_401_403_and_model_not_found_are_told_apart(fake: FakeOpenAI) -> None:
    wrong = provider(fake, api_key="sk-wrong-0000000000")
    (auth,) = of(await collect(wrong), Failed)
    await wrong.aclose()

    fake.no_access.add("gpt-5")
    no_access = provider(fake, model="gpt-5")
    (denied,) = of(await collect(no_access), Failed)
    await no_access.aclose()

    unknown = provider(fake, model="gpt-6-imaginary")
    (missing,) = of(await collect(unknown), Failed)
    await unknown.aclose()

    fake.enqueue(HttpError(403, "Country, region, or territory not supported",
                           code="unsupported_country_region_territory"))
    region = provider(fake)
    (forbidden,) = of(await collect(region), Failed)
    await region.aclose()

    assert auth.code == "auth" and "rejected the API key (401)" in auth.message
    assert denied.code == "model_not_found" and "403" in denied.message
    assert "key works" in denied.message and "may not use this model" in denied.message
    assert missing.code == "model_not_found" and "no such model" in missing.message
    assert forbidden.code == "forbidden" and "country" in forbidden.message
    assert len({auth.message, denied.message, missing.message, forbidden.message}) == 4


# ----------------------------------------------------------------- the key stays with OpenAI


async def test_the_key_never_reaches_a_compatible_base_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeOpenAI() as openai_fake, FakeOpenAI(hosted_file_search=False) as local:
        local.responder = lambda body: Reply(text="from the local server")
        openai_fake.enqueue(Reply(text="from OpenAI"))
        paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
        # an old settings file: base_url served both engines
        paths.settings_file.write_text(json.dumps({
            "provider": "openai", "base_url": local.base_url, "vector_store_id": "vs_test"}))
        settings = Settings.load(paths)
        assert settings.compatible_base_url == local.base_url  # migrated, not dropped
        monkeypatch.setenv("OPENAI_API_KEY", openai_fake.api_key)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        default = make_provider(paths, settings)
        assert isinstance(default, OpenAIProvider)
        assert default._base_url is None  # the SDK default: api.openai.com
        await default.aclose()
        monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)  # an explicit choice
        p = make_provider(paths, settings)
        updates = [u async for u in translate(p.stream(turn_request("hi")))]
        await p.aclose()
        assert of(updates, Completed)[0].text == "from OpenAI"
        assert not local.requests  # nothing, key or otherwise, went to the local server
        assert openai_fake.requests[0].headers["Authorization"] == \
            f"Bearer {openai_fake.api_key}"


def test_an_openai_base_url_left_in_the_settings_is_dropped(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    paths.settings_file.write_text(json.dumps({"base_url": "https://api.openai.com/v1"}))
    assert Settings.load(paths).compatible_base_url is None


# ----------------------------------------------------------------- the tool loop


async def test_reasoning_and_pre_call_text_travel_through_the_tool_loop(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    fake.enqueue(Reply(reasoning=True, text="Let me look that order up.",
                       calls=[Call("get_order", {"order_id": "ORD1001"})]),
                 Reply(reasoning=True, text="ORD1001 is pending."))
    await desk.say("Where is ORD1001?")
    draft = await desk.draft()
    assert draft["text"].endswith("ORD1001 is pending.")
    items = last_input(fake)
    kinds = [(i.get("type") or "message", i.get("role")) for i in items]
    call_at = kinds.index(("function_call", None))
    # the reasoning (encrypted) and the text written before the call precede it
    reasoning = items[call_at - 2]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"]
    assert reasoning["summary"] == []
    assert items[call_at - 1] == {"type": "message", "role": "assistant",
                                  "content": "Let me look that order up."}
    assert items[call_at + 1]["type"] == "function_call_output"
    assert all(r.status == 200 for r in fake.responses_requests())


async def test_approval_outcome_on_the_openai_path_keeps_input_valid(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    created = await approval_for(desk, "cancel_order", {"order_id": "ORD1001"})
    fake.enqueue(Reply(text="Your order is cancelled."))
    await desk.agent.send(ApprovalApprove(approval_id=created["approval_id"]), desk.sid)
    await desk.agent.wait("draft.completed", where=lambda f: f["data"]["text"] ==
                          "Your order is cancelled.")
    assert all(r.status == 200 for r in fake.responses_requests())



# ----------------------------------------------------------------- documented real shapes


async def test_documented_reasoning_stream_round_trips_through_the_strict_fake(
        fake: FakeOpenAI, recorded_streams: Path) -> None:
    """The reasoning model's tool loop as the real API streams it: what goes back in the
    second request is the completed response's reasoning item (with its id, summary and
    encrypted content) and the call under its id; the strict fake accepts it."""
    lines = (recorded_streams / "documented-reasoning-function-call.jsonl").read_text()
    events = [json.loads(line) for line in lines.splitlines()]
    final_reasoning = next(e for e in events if e["type"] == "response.completed")[
        "response"]["output"][0]
    fake.enqueue(*replay_turns(recorded_streams / "documented-reasoning-function-call.jsonl"))
    p = provider(fake)
    history: list[dict[str, Any]] = [{"role": "user", "content": "Where is ORD1001?"}]
    first = await collect(p, *history)
    (done,) = of(first, Completed)
    (call,) = done.tool_calls
    assert call.name == "get_order" and call.arguments == {"order_id": "ORD1001"}
    reasoning, sent_call = done.output_items
    assert reasoning == {"type": "reasoning", "id": final_reasoning["id"], "summary": [],
                         "encrypted_content": final_reasoning["encrypted_content"]}
    assert sent_call["id"].startswith("fc_") and sent_call["call_id"] == call.call_id
    history += [*done.output_items, {"type": "function_call_output", "call_id": call.call_id,
                                     "output": '{"status":"pending"}'}]
    second = await collect(p, *history)
    await p.aclose()
    assert of(second, Completed)[0].text.startswith("Your order ORD1001 is still pending")
    assert [r.status for r in fake.responses_requests()] == [200, 200]
    assert fake.responses_requests()[1].body["input"][1] == reasoning


async def test_documented_refusal_stream_is_a_refusal(fake: FakeOpenAI,
                                                      recorded_streams: Path) -> None:
    fake.enqueue(*replay_turns(recorded_streams / "documented-refusal.jsonl"))
    p = provider(fake, model="gpt-4.1-mini")
    (failed,) = of(await collect(p), Failed)
    await p.aclose()
    assert failed.code == "refusal" and "can't help with that request" in failed.message


async def test_a_model_that_cannot_stream_says_so_not_verification(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="Whole answer."))
    p = provider(fake, model="o1-pro", vector_store_id=None)
    updates = await collect(p, tools=[])
    await p.aclose()
    assert of(updates, Completed)[0].text == "Whole answer."
    assert p.notice is not None and "cannot stream" in p.notice and "verif" not in p.notice


async def test_the_key_check_warns_about_a_chat_snapshot_and_offers_a_drafting_model(
        fake: FakeOpenAI) -> None:
    import openai

    from hitl_desktop.knowledge.vector_store import ProbeResult, check_api_key

    fake.responder = lambda body: Reply(text="OK")
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    check = await check_api_key(client, "gpt-5-chat-latest")
    await client.close()
    assert check.probe.result is ProbeResult.OK
    assert "cannot use tools" in check.probe.message
    assert check.alternative == "gpt-5-mini"
