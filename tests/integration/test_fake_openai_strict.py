"""The fake rejects what the real API rejects: one test per strictness rule.

A fake that accepts anything hides request bugs (issue 14 found several). Each
request here goes through the real ``openai`` client; the status, ``param`` and
``code`` are the ones the real API sends (see the messages in
tests/support/fake_openai.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.support.fake_openai import Call, FakeOpenAI, Reply

FN = {"type": "function", "name": "get_order", "strict": True,
      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                     "required": ["order_id"], "additionalProperties": False}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.responder = lambda body: Reply(text="ok")
        yield server


async def create(fake: FakeOpenAI, **params: Any) -> Any:
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    try:
        body: dict[str, Any] = {"model": "gpt-4.1-mini", "input": "hi", "store": False}
        body.update(params)
        extra = body.pop("extra_body", None)
        return await client.responses.create(**body, extra_body=extra)
    finally:
        await client.close()


async def rejected(fake: FakeOpenAI, status: int, **params: Any) -> dict[str, Any]:
    with pytest.raises(openai.APIStatusError) as caught:
        await create(fake, **params)
    assert caught.value.status_code == status, caught.value
    body = caught.value.body
    assert isinstance(body, dict)
    error: dict[str, Any] = body.get("error", body)
    return error


async def test_a_valid_request_passes(fake: FakeOpenAI) -> None:
    response = await create(fake)
    assert response.output_text == "ok"


async def test_unknown_top_level_parameter(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, extra_body={"temprature": 0.2})
    assert error["code"] == "unknown_parameter" and error["param"] == "temprature"


async def test_unknown_model(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="gpt-6-imaginary")
    assert error["code"] == "model_not_found" and error["param"] == "model"


async def test_model_the_project_may_not_use(fake: FakeOpenAI) -> None:
    fake.no_access.add("gpt-5")
    error = await rejected(fake, 403, model="gpt-5")
    assert error["code"] == "model_not_found" and "does not have access" in error["message"]


async def test_unknown_vector_store(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 404, tools=[{"type": "file_search",
                                              "vector_store_ids": ["vs_nowhere"]}])
    assert "vs_nowhere" in error["message"]


async def test_several_calls_despite_parallel_tool_calls_false_is_a_script_bug(
        fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(calls=[Call("get_order", {"order_id": "A"}),
                              Call("get_order", {"order_id": "B"})]))
    error = await rejected(fake, 500, tools=[FN], parallel_tool_calls=False)
    assert error["code"] == "fake_bad_script"


async def test_reasoning_item_without_summary(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="gpt-5-mini", input=[
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA"},
        {"role": "user", "content": "hi"}])
    assert error["param"] == "input[0].summary"


async def test_reasoning_item_without_encrypted_content_when_not_stored(
        fake: FakeOpenAI) -> None:
    error = await rejected(fake, 404, model="gpt-5-mini", input=[
        {"type": "reasoning", "id": "rs_1", "summary": []}, {"role": "user", "content": "hi"}])
    assert "not persisted" in error["message"]


@pytest.mark.parametrize("keyword, value", [("minLength", 1), ("maxLength", 9),
                                            ("uniqueItems", True), ("maxProperties", 3)])
async def test_unsupported_strict_schema_keyword(fake: FakeOpenAI, keyword: str,
                                                 value: Any) -> None:
    tool = {**FN, "parameters": {**FN["parameters"],  # type: ignore[dict-item]
                                 "properties": {"order_id": {"type": "string",
                                                             keyword: value}}}}
    error = await rejected(fake, 400, tools=[tool])
    assert error["code"] == "invalid_function_parameters"
    assert f"'{keyword}' is not permitted" in error["message"]


async def test_encrypted_reasoning_include_for_a_chat_snapshot(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="gpt-5-chat-latest",
                           include=["reasoning.encrypted_content"])
    assert error["message"] == "Encrypted content is not supported with this model."


async def test_function_tools_for_a_chat_snapshot(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="gpt-5-chat-latest", tools=[FN])
    assert error["param"] == "tools"


async def test_reasoning_effort_for_a_model_that_does_not_reason(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="gpt-4.1", reasoning={"effort": "low"})
    assert error["param"] == "reasoning.effort"


async def test_streaming_a_model_that_cannot_stream(fake: FakeOpenAI) -> None:
    error = await rejected(fake, 400, model="o1-pro", stream=True)
    assert error["param"] == "stream" and error["code"] == "unsupported_value"


async def test_streaming_from_an_unverified_organisation(fake: FakeOpenAI) -> None:
    fake.verified_org = False
    error = await rejected(fake, 400, model="gpt-5-mini", stream=True)
    assert error["param"] == "stream" and "must be verified" in error["message"]
    whole = await create(fake, model="gpt-5-mini", stream=False)  # not streamed: fine
    assert whole.output_text == "ok"
    streamed = await create(fake, model="gpt-4.1-mini", stream=True)  # other models stream
    async for _ in streamed:
        pass


async def test_listing_models_without_the_models_read_scope(fake: FakeOpenAI) -> None:
    fake.models_read = False
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await client.models.list()
    await client.close()
    assert "api.model.read" in str(caught.value)
