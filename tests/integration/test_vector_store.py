"""The vector-store sync through the real openai client against the local fake API."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import openai
import pytest

from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.knowledge.articles import default_knowledge_dir, load_articles
from hitl_desktop.knowledge.vector_store import (
    FileProgress,
    FileState,
    Manifest,
    ProbeResult,
    VectorStoreError,
    VectorStoreSync,
    chat_models,
    check_api_key,
)
from tests.support.fake_vector_stores import FakeVectorStoreApi

KEY = "sk-test-key"


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A small copy of the shipped knowledge base we may edit."""
    src = default_knowledge_dir()
    dst = tmp_path / "kb-copy"
    for kind in ("kb", "faq"):
        (dst / kind).mkdir(parents=True)
        for p in sorted((src / kind).glob("*.md"))[:3]:
            shutil.copy(p, dst / kind / p.name)
    assert len(load_articles(dst)) >= 3
    return dst


def _client(api: FakeVectorStoreApi, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=api.base_url, max_retries=0)


def _sync(api: FakeVectorStoreApi, kb: Path, settings: Settings | None = None,
          **kw: object) -> VectorStoreSync:
    paths = resolve_paths().ensure()
    return VectorStoreSync(_client(api), paths, settings or Settings.load(paths),
                           knowledge_dir=kb, poll_interval=0.01, **kw)  # type: ignore[arg-type]


async def test_first_sync_creates_store_uploads_with_attributes_and_saves_id(kb: Path) -> None:
    events: list[FileProgress] = []
    async with FakeVectorStoreApi(api_key=KEY, polls_until_done=2) as api:
        sync = _sync(api, kb)
        result = await sync.run(events.append)

        articles = load_articles(kb)
        assert result.ok and result.created_store
        assert sorted(result.uploaded) == sorted(a.article_id for a in articles)
        # one store, every file attached with the attributes that map results back
        assert list(api.stores) == [result.vector_store_id]
        attached = api.attached(result.vector_store_id)
        assert len(attached) == len(articles)
        by_id = {o["attributes"]["article_id"]: o for o in attached.values()}
        for a in articles:
            attrs = by_id[a.article_id]["attributes"]
            assert attrs == {"article_id": a.article_id, "kind": a.kind, "slug": a.slug,
                             "title": a.title, "path": f"{a.kind}/{a.slug}.md"}
            assert by_id[a.article_id]["status"] == "completed"
        assert all(c.body and c.body["purpose"] == "assistants"
                   for c in api.calls_to("POST", "/v1/files"))
        assert sorted(api.uploaded_filenames()) == sorted(f"{a.slug}.md" for a in articles)
        # the store id is in the settings on disk, not only in memory
        assert Settings.load(resolve_paths()).vector_store_id == result.vector_store_id
        store = await _client(api).vector_stores.retrieve(result.vector_store_id)
        assert store.file_counts.completed == len(articles)

    # progress: each file went queued -> uploading -> processing -> done, fraction ends at 1
    states: dict[str, list[FileState]] = {}
    for e in events:
        states.setdefault(e.article_id, []).append(e.state)
    for seq in states.values():
        assert seq[0] is FileState.QUEUED and seq[-1] is FileState.DONE
        assert FileState.UPLOADING in seq and FileState.PROCESSING in seq
    assert events[-1].fraction == pytest.approx(1.0)
    assert all(b.fraction >= 0 for b in events)


async def test_resync_uploads_only_changed_and_deletes_removed(kb: Path) -> None:
    async with FakeVectorStoreApi(api_key=KEY) as api:
        first = await _sync(api, kb).run()
        n = len(first.uploaded)
        articles = load_articles(kb)
        changed, removed = articles[0], articles[1]
        old_file = {o["attributes"]["article_id"]: fid
                    for fid, o in api.attached(first.vector_store_id).items()}
        changed.path.write_text(changed.path.read_text("utf-8") + "\nOne more line.\n", "utf-8")
        removed.path.unlink()
        api.calls.clear()

        second = await _sync(api, kb).run()
        assert second.vector_store_id == first.vector_store_id and not second.created_store
        assert second.uploaded == [changed.article_id]
        assert second.deleted == [removed.article_id]
        assert len(second.unchanged) == n - 2
        assert len(api.calls_to("POST", "/v1/files")) == 1
        assert not api.calls_to("POST", "/v1/vector_stores") or all(
            "/files" in c.path for c in api.calls_to("POST", "/v1/vector_stores"))
        attached = api.attached(first.vector_store_id)
        assert len(attached) == n - 1
        # the replaced copy and the removed article are gone from the store and from files
        assert old_file[changed.article_id] not in attached
        assert old_file[changed.article_id] not in api.files
        assert old_file[removed.article_id] not in api.files

        api.calls.clear()
        third = await _sync(api, kb).run()
        assert third.uploaded == [] and third.deleted == []
        assert not api.calls_to("POST", "/v1/files")


async def test_cancel_then_resume_uploads_the_rest(kb: Path) -> None:
    async with FakeVectorStoreApi(api_key=KEY) as api:
        api.hold_uploads_after = 2
        done: list[str] = []
        sync = _sync(api, kb, concurrency=1)
        articles = load_articles(kb)

        def on_progress(e: FileProgress) -> None:
            if e.state is FileState.DONE:
                done.append(e.article_id)

        task = asyncio.ensure_future(sync.run(on_progress))
        await asyncio.wait_for(api.upload_held.wait(), 10)  # third upload is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(done) == 2
        manifest = Manifest.load(sync.manifest_path)
        assert {a for a, e in manifest.files.items() if e.state == "completed"} == set(done)

        api.release_uploads()
        api.calls.clear()
        result = await _sync(api, kb).run()
        assert sorted(result.uploaded) == sorted(
            a.article_id for a in articles if a.article_id not in done)
        assert sorted(result.unchanged) == sorted(done)
        assert len(api.attached(result.vector_store_id)) == len(articles)


async def test_reuses_configured_store_and_replaces_a_deleted_one(kb: Path) -> None:
    async with FakeVectorStoreApi(api_key=KEY) as api:
        store = await _client(api).vector_stores.create(name="mine")
        paths = resolve_paths().ensure()
        settings = Settings(vector_store_id=store.id)
        settings.save(paths)
        result = await _sync(api, kb, settings).run()
        assert result.vector_store_id == store.id and not result.created_store

        await _client(api).vector_stores.delete(store.id)
        again = await _sync(api, kb, Settings.load(paths)).run()
        assert again.created_store and again.vector_store_id != store.id
        assert sorted(again.uploaded) == sorted(result.uploaded)  # all, into the new store
        saved = json.loads(paths.settings_file.read_text())
        assert saved["vector_store_id"] == again.vector_store_id


async def test_failed_processing_is_reported_and_retried_next_run(kb: Path) -> None:
    bad = load_articles(kb)[0]
    async with FakeVectorStoreApi(api_key=KEY, fail_filenames={f"{bad.slug}.md"}) as api:
        events: list[FileProgress] = []
        result = await _sync(api, kb).run(events.append)
        assert result.failed == {bad.article_id: "The file could not be parsed."}
        assert any(e.article_id == bad.article_id and e.state is FileState.FAILED
                   and e.message for e in events)
        api.fail_filenames.clear()
        again = await _sync(api, kb).run()
        assert again.uploaded == [bad.article_id] and again.ok


async def test_bad_key_is_a_clear_error(kb: Path) -> None:
    async with FakeVectorStoreApi(api_key=KEY) as api:
        paths = resolve_paths().ensure()
        sync = VectorStoreSync(_client(api, "sk-wrong-key-123"), paths, Settings(),
                               knowledge_dir=kb)
        with pytest.raises(VectorStoreError, match="rejected"):
            await sync.run()
        wrong = await check_api_key(_client(api, "sk-wrong-key-123"), "gpt-5-mini")
        assert wrong.probe.result is ProbeResult.BAD_KEY and not wrong.probe.result.usable
        assert "did not accept this key" in wrong.probe.message
        good = await check_api_key(_client(api), "gpt-5-mini")
        assert good.probe.result is ProbeResult.OK and "gpt-5-mini" in good.models
        assert chat_models(good.models)[0].startswith("gpt-5")
        assert "text-embedding-3-small" not in chat_models(good.models)


async def test_fake_rejects_what_the_real_api_rejects() -> None:
    async with FakeVectorStoreApi(api_key=KEY) as api:
        client = _client(api)
        with pytest.raises(openai.BadRequestError):
            await client.files.create(file=("a.md", b"x", "text/markdown"),
                                      purpose="nonsense")  # type: ignore[arg-type]
        f = await client.files.create(file=("a.md", b"x", "text/markdown"), purpose="assistants")
        vs = await client.vector_stores.create(name="t")
        with pytest.raises(openai.BadRequestError):
            await client.vector_stores.files.create(
                vs.id, file_id=f.id, attributes={"k": "v" * 600})
        with pytest.raises(openai.BadRequestError):
            await client.vector_stores.files.create(
                vs.id, file_id=f.id, extra_body={"bogus": 1})
        with pytest.raises(openai.NotFoundError):
            await client.vector_stores.files.create(vs.id, file_id="file-missing")
        with pytest.raises(openai.NotFoundError):
            await client.vector_stores.retrieve("vs_missing")
