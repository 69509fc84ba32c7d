"""Sync the knowledge folder into an OpenAI vector store, for the file_search tool.

Why a service of its own: the setup wizard, the CLI and tests all need the same
resumable upload. Every article is uploaded (files API, purpose ``assistants``)
and attached to the store with attributes ``{article_id, kind, slug, title,
path}`` so file_search results map back to local articles. A manifest in the data
dir (article id -> content hash, file id, state) makes the sync resumable after a
cancel or a crash, and lets a re-run upload only what changed and delete what was
removed or replaced. No Qt here: progress goes to a plain callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Final

import openai
from openai import AsyncOpenAI

from hitl_desktop.config import Paths, Settings
from hitl_desktop.core.openai_models import (
    STREAMS_UNVERIFIED,
    SUGGESTED,
    accepts_tools,
    drafting_models,
    is_reasoning_model,
)
from hitl_desktop.knowledge.articles import KbArticle, knowledge_root, load_articles

log = logging.getLogger(__name__)

MANIFEST_NAME: Final = "vector_store_manifest.json"
MANIFEST_VERSION: Final = 1
DEFAULT_STORE_NAME: Final = "HITL Desk knowledge base"
ATTRIBUTE_KEYS: Final = ("article_id", "kind", "slug", "title", "path")


class FileState(StrEnum):
    """Where one article is in the sync."""

    QUEUED = "queued"
    UPLOADING = "uploading"
    PROCESSING = "processing"
    DONE = "done"
    UNCHANGED = "unchanged"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"
    CANCELLED = "cancelled"


# how far one file is towards done, for the overall fraction
_WEIGHT: Final = {
    FileState.QUEUED: 0.0,
    FileState.UPLOADING: 0.15,
    FileState.PROCESSING: 0.5,
    FileState.DONE: 1.0,
    FileState.UNCHANGED: 1.0,
    FileState.DELETING: 0.5,
    FileState.DELETED: 1.0,
    FileState.FAILED: 1.0,
    FileState.CANCELLED: 0.0,
}
FINAL_STATES: Final = frozenset(
    {FileState.DONE, FileState.UNCHANGED, FileState.DELETED, FileState.FAILED}
)


@dataclass(frozen=True, slots=True)
class FileProgress:
    """One progress report: a file changed state; ``fraction`` is the whole sync's."""

    article_id: str
    title: str
    state: FileState
    fraction: float
    message: str | None = None


ProgressCallback = Callable[[FileProgress], None]


class VectorStoreError(Exception):
    """The sync could not run (bad key, store unreachable); the message says why."""


@dataclass(slots=True)
class ManifestEntry:
    """What we know we put in the store for one article."""

    content_hash: str
    file_id: str | None = None
    vs_file_id: str | None = None
    # uploaded: file exists, not attached | attached: processing | completed | failed
    state: str = "uploaded"
    filename: str = ""
    title: str = ""
    error: str | None = None


@dataclass(slots=True)
class Manifest:
    """The on-disk record that makes the sync resumable and incremental."""

    vector_store_id: str | None = None
    files: dict[str, ManifestEntry] = field(default_factory=dict)
    updated_at: float = 0.0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable vector-store manifest %s: %s", path, exc)
            return cls()
        if not isinstance(raw, dict) or raw.get("version") != MANIFEST_VERSION:
            return cls()
        known = set(ManifestEntry.__dataclass_fields__)
        files = {
            str(k): ManifestEntry(**{kk: vv for kk, vv in v.items() if kk in known})
            for k, v in (raw.get("files") or {}).items()
            if isinstance(v, dict) and "content_hash" in v
        }
        return cls(raw.get("vector_store_id"), files, float(raw.get("updated_at") or 0.0))

    def save(self, path: Path) -> None:
        self.updated_at = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data = {
            "version": MANIFEST_VERSION,
            "vector_store_id": self.vector_store_id,
            "updated_at": self.updated_at,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
        }
        tmp.write_text(json.dumps(data, indent=2), "utf-8")
        tmp.replace(path)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """An article with what we would upload for it."""

    article: KbArticle
    filename: str
    content: bytes
    attributes: dict[str, str | float | bool]
    content_hash: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What a sync will do, computed without touching the network."""

    upload: list[PlannedFile]
    unchanged: list[PlannedFile]
    remove: list[str]  # article ids whose store files go away

    @property
    def total(self) -> int:
        return len(self.upload) + len(self.unchanged) + len(self.remove)


@dataclass(slots=True)
class SyncResult:
    """The outcome of one sync run."""

    vector_store_id: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    created_store: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


def article_attributes(article: KbArticle) -> dict[str, str | float | bool]:
    """The attributes file_search returns with each result (max 512 chars a value)."""
    return {k: str(v)[:512] for k, v in article.attributes.items()}


def plan_file(article: KbArticle) -> PlannedFile:
    content = Path(article.path).read_bytes()
    attrs = article_attributes(article)
    digest = hashlib.sha256(content)
    digest.update(json.dumps(attrs, sort_keys=True).encode())
    return PlannedFile(article, f"{article.slug}.md", content, attrs, digest.hexdigest())


class VectorStoreSync:
    """Create or reuse the vector store and make it mirror the knowledge folder.

    ``run`` is cancellable at any await (cancel its task); the manifest is saved
    after every step, so the next ``run`` resumes where it stopped.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        paths: Paths,
        settings: Settings,
        *,
        knowledge_dir: Path | None = None,
        store_name: str = DEFAULT_STORE_NAME,
        poll_interval: float = 1.0,
        processing_timeout: float = 600.0,
        concurrency: int = 4,
        persist_settings: bool = True,
    ) -> None:
        self.client = client
        self.paths = paths
        self.settings = settings
        # False: the caller saves the settings (the wizard, on Finish); the manifest in
        # the data dir still remembers the store, so a cancelled wizard reuses it
        self.persist_settings = persist_settings
        self.knowledge_dir = knowledge_dir or knowledge_root(settings.knowledge_dir)
        self.store_name = store_name
        self.poll_interval = poll_interval
        self.processing_timeout = processing_timeout
        self.concurrency = max(1, concurrency)
        self.manifest_path = paths.data_dir / MANIFEST_NAME
        self._states: dict[str, FileState] = {}
        self._titles: dict[str, str] = {}
        self._on_progress: ProgressCallback | None = None

    # ------------------------------------------------------------------ planning

    def articles(self) -> list[KbArticle]:
        return load_articles(self.knowledge_dir)

    def plan(self, manifest: Manifest | None = None) -> SyncPlan:
        """Compare the folder with the manifest: what to upload, keep and remove."""
        manifest = manifest if manifest is not None else Manifest.load(self.manifest_path)
        upload: list[PlannedFile] = []
        unchanged: list[PlannedFile] = []
        seen: set[str] = set()
        for article in self.articles():
            planned = plan_file(article)
            seen.add(article.article_id)
            entry = manifest.files.get(article.article_id)
            if entry and entry.content_hash == planned.content_hash and entry.state == "completed":
                unchanged.append(planned)
            else:
                upload.append(planned)
        remove = sorted(a for a in manifest.files if a not in seen)
        return SyncPlan(upload, unchanged, remove)

    # ------------------------------------------------------------------ progress

    def _report(self, article_id: str, state: FileState, message: str | None = None) -> None:
        self._states[article_id] = state
        if self._on_progress is None:
            return
        total = len(self._states) or 1
        fraction = sum(_WEIGHT[s] for s in self._states.values()) / total
        try:
            self._on_progress(
                FileProgress(article_id, self._titles.get(article_id, article_id), state,
                             min(1.0, fraction), message)
            )
        except Exception:
            log.exception("progress callback failed")

    # ------------------------------------------------------------------ the sync

    async def run(self, on_progress: ProgressCallback | None = None) -> SyncResult:
        """Sync the folder into the store; save the store id into the settings."""
        self._on_progress = on_progress
        self._states.clear()
        manifest = await asyncio.to_thread(Manifest.load, self.manifest_path)
        store_id, created = await self._ensure_store(manifest)
        if manifest.vector_store_id != store_id:
            # a different (or new) store: nothing of the old manifest is in it
            if manifest.files:
                log.info("vector store changed to %s: uploading everything", store_id)
            manifest = Manifest(vector_store_id=store_id)
        else:
            await self._verify_remote(manifest)
        manifest.vector_store_id = store_id
        self._save(manifest)
        if self.settings.vector_store_id != store_id:
            self.settings.vector_store_id = store_id
            if self.persist_settings:
                await asyncio.to_thread(self.settings.save, self.paths)

        plan = await asyncio.to_thread(self.plan, manifest)
        result = SyncResult(store_id, created_store=created)
        for p in plan.unchanged:
            self._titles[p.article.article_id] = p.article.title
        for p in plan.upload:
            self._titles[p.article.article_id] = p.article.title
        for aid in plan.remove:
            self._titles[aid] = manifest.files[aid].title or aid
        # announce everything first so a UI can fill its table in one go
        for p in plan.unchanged:
            self._report(p.article.article_id, FileState.UNCHANGED)
            result.unchanged.append(p.article.article_id)
        for p in plan.upload:
            self._report(p.article.article_id, FileState.QUEUED)
        for aid in plan.remove:
            self._report(aid, FileState.QUEUED, "removed from the folder")

        sem = asyncio.Semaphore(self.concurrency)
        try:
            async with asyncio.TaskGroup() as tg:
                for aid in plan.remove:
                    tg.create_task(self._guarded(sem, partial(self._remove, manifest, aid, result)))
                for p in plan.upload:
                    tg.create_task(self._guarded(sem, partial(self._upload, manifest, p, result)))
        except asyncio.CancelledError:
            for aid, state in list(self._states.items()):
                if state not in FINAL_STATES:
                    self._report(aid, FileState.CANCELLED)
            self._save(manifest)
            raise
        self._save(manifest)
        log.info(
            "vector store %s synced: %d uploaded, %d unchanged, %d deleted, %d failed",
            store_id, len(result.uploaded), len(result.unchanged), len(result.deleted),
            len(result.failed),
        )
        return result

    @staticmethod
    async def _guarded(
        sem: asyncio.Semaphore, step: Callable[[], Awaitable[None]]
    ) -> None:
        async with sem:
            await step()

    def _save(self, manifest: Manifest) -> None:
        # a few KB of JSON: cheap enough to write on the loop after each step
        manifest.save(self.manifest_path)

    async def _ensure_store(self, manifest: Manifest) -> tuple[str, bool]:
        for candidate in (self.settings.vector_store_id, manifest.vector_store_id):
            if not candidate:
                continue
            try:
                store = await self.client.vector_stores.retrieve(candidate)
            except openai.NotFoundError:
                log.warning("vector store %s no longer exists; creating a new one", candidate)
                continue
            except openai.APIStatusError as exc:
                raise VectorStoreError(_api_message(exc)) from exc
            except openai.APIConnectionError as exc:
                raise VectorStoreError(f"cannot reach the API: {exc}") from exc
            if store.status == "expired":
                log.warning("vector store %s expired; creating a new one", candidate)
                continue
            return store.id, False
        try:
            store = await self.client.vector_stores.create(
                name=self.store_name, metadata={"app": "hitl-desktop"}
            )
        except openai.APIStatusError as exc:
            raise VectorStoreError(_api_message(exc)) from exc
        except openai.APIConnectionError as exc:
            raise VectorStoreError(f"cannot reach the API: {exc}") from exc
        log.info("created vector store %s", store.id)
        return store.id, True

    async def _verify_remote(self, manifest: Manifest) -> None:
        """Forget manifest entries whose file is no longer in the store."""
        if not manifest.vector_store_id or not manifest.files:
            return
        remote: dict[str, str] = {}
        try:
            async for vsf in self.client.vector_stores.files.list(
                manifest.vector_store_id, limit=100
            ):
                remote[vsf.id] = vsf.status
        except openai.APIError as exc:
            log.warning("could not list the store's files (%s); trusting the manifest", exc)
            return
        for entry in manifest.files.values():
            if entry.state in ("completed", "attached") and entry.vs_file_id not in remote:
                entry.state = "missing"
            elif entry.vs_file_id in remote and remote[entry.vs_file_id] == "failed":
                entry.state = "failed"

    async def _upload(self, manifest: Manifest, p: PlannedFile, result: SyncResult) -> None:
        aid = p.article.article_id
        store_id = manifest.vector_store_id
        assert store_id is not None
        old = manifest.files.get(aid)
        try:
            resumable = old is not None and old.content_hash == p.content_hash
            if resumable and old is not None and old.state in ("uploaded", "attached"):
                entry = old  # resume: reuse the uploaded file
            else:
                if old is not None:
                    # replaced content (or failed earlier): drop the old copy first
                    await self._delete_remote(store_id, old)
                entry = ManifestEntry(p.content_hash, filename=p.filename, title=p.article.title)
                manifest.files[aid] = entry
                self._save(manifest)
            if entry.file_id is None or entry.state not in ("uploaded", "attached"):
                self._report(aid, FileState.UPLOADING)
                fobj = await self.client.files.create(
                    file=(p.filename, p.content, "text/markdown"), purpose="assistants"
                )
                entry.file_id, entry.state = fobj.id, "uploaded"
                self._save(manifest)
            if entry.state == "uploaded":
                self._report(aid, FileState.UPLOADING, "attaching")
                vsf = await self.client.vector_stores.files.create(
                    store_id, file_id=entry.file_id, attributes=p.attributes
                )
                entry.vs_file_id, entry.state = vsf.id, "attached"
                self._save(manifest)
            self._report(aid, FileState.PROCESSING)
            status, error = await self._wait_processed(store_id, entry.vs_file_id or "")
            entry.state, entry.error = status, error
            self._save(manifest)
            if status == "completed":
                result.uploaded.append(aid)
                self._report(aid, FileState.DONE)
            else:
                result.failed[aid] = error or status
                self._report(aid, FileState.FAILED, error or status)
        except openai.APIError as exc:
            msg = _api_message(exc)
            log.warning("upload of %s failed: %s", aid, msg)
            result.failed[aid] = msg
            self._report(aid, FileState.FAILED, msg)

    async def _wait_processed(self, store_id: str, vs_file_id: str) -> tuple[str, str | None]:
        deadline = time.monotonic() + self.processing_timeout
        while True:
            vsf = await self.client.vector_stores.files.retrieve(
                vs_file_id, vector_store_id=store_id
            )
            if vsf.status == "completed":
                return "completed", None
            if vsf.status in ("failed", "cancelled"):
                err = vsf.last_error.message if vsf.last_error else vsf.status
                return "failed", err
            if time.monotonic() > deadline:
                return "failed", "processing timed out"
            await asyncio.sleep(self.poll_interval)

    async def _remove(self, manifest: Manifest, aid: str, result: SyncResult) -> None:
        entry = manifest.files[aid]
        store_id = manifest.vector_store_id
        assert store_id is not None
        self._report(aid, FileState.DELETING)
        try:
            await self._delete_remote(store_id, entry)
        except openai.APIError as exc:
            msg = _api_message(exc)
            result.failed[aid] = msg
            self._report(aid, FileState.FAILED, msg)
            return
        del manifest.files[aid]
        self._save(manifest)
        result.deleted.append(aid)
        self._report(aid, FileState.DELETED)

    async def _delete_remote(self, store_id: str, entry: ManifestEntry) -> None:
        """Detach and delete a file; already-gone counts as done."""
        if entry.vs_file_id:
            with contextlib.suppress(openai.NotFoundError):
                await self.client.vector_stores.files.delete(
                    entry.vs_file_id, vector_store_id=store_id
                )
        if entry.file_id:
            with contextlib.suppress(openai.NotFoundError):
                await self.client.files.delete(entry.file_id)
        entry.file_id = entry.vs_file_id = None


def _api_message(exc: openai.APIError) -> str:
    if isinstance(exc, openai.AuthenticationError):
        return "the API key was rejected (401)"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict) and inner.get("message"):
                return f"{inner['message']} ({exc.status_code})"
        return f"{exc.message} ({exc.status_code})"
    return str(exc)


def make_client(api_key: str, settings: Settings, *, timeout: float = 60.0) -> AsyncOpenAI:
    """The client the wizard uses: OpenAI, or ``OPENAI_BASE_URL`` — never the compatible
    server's address (``settings`` is accepted for the callers' convenience only)."""
    del settings
    return AsyncOpenAI(api_key=api_key, timeout=timeout, max_retries=2)


VERIFY_URL: Final = "https://platform.openai.com/settings/organization/general"
BILLING_URL: Final = "https://platform.openai.com/settings/organization/billing"
KEYS_URL: Final = "https://platform.openai.com/api-keys"
LIMITS_URL: Final = "https://platform.openai.com/settings/organization/limits"
PROBE_INPUT: Final = "Reply with the single word OK."


class ProbeResult(StrEnum):
    """What one tiny real call with the chosen model found."""

    OK = "ok"  # streams: drafts appear word by word
    WHOLE_ONLY = "whole_only"  # works, but only unstreamed (unverified organisation)
    BAD_KEY = "bad_key"  # 401
    NO_QUOTA = "no_quota"  # 429 insufficient_quota
    NO_MODEL_ACCESS = "no_model_access"  # 403 model_not_found: the project may not use it
    NO_SUCH_MODEL = "no_such_model"  # 400/404 model_not_found
    FORBIDDEN = "forbidden"  # other 403 (restricted key, region)
    UNREACHABLE = "unreachable"  # network
    OTHER = "other"

    @property
    def usable(self) -> bool:
        """Drafts will work with this key and model (maybe not word by word)."""
        return self in (ProbeResult.OK, ProbeResult.WHOLE_ONLY)


@dataclass(frozen=True, slots=True)
class Probe:
    """The outcome of :func:`probe_model`, with a sentence a shop owner understands."""

    model: str
    result: ProbeResult
    message: str
    detail: str = ""  # the API's own words, for the curious (and the log)


@dataclass(slots=True)
class KeyCheck:
    """The setup wizard's key check: the models the key lists, and the real call."""

    models: list[str]  # every id the key can list ([] when it may not list models)
    probe: Probe
    listing_note: str = ""  # why no list came back (a restricted key), or ""
    alternative: str | None = None  # a model that works better, when the chosen one does not


def _error_parts(exc: openai.APIError) -> tuple[str, str, str]:
    """(code, param, message) from an API error body."""
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return "", "", str(exc.message)
    return (str(inner.get("code") or ""), str(inner.get("param") or ""),
            str(inner.get("message") or exc.message))


def classify(exc: openai.APIError, model: str) -> Probe:
    """An API error from the probe as a :class:`Probe` (plain words, the fix, the link)."""
    code, param, detail = _error_parts(exc)
    low = detail.lower()
    if isinstance(exc, openai.APIConnectionError):
        return Probe(model, ProbeResult.UNREACHABLE, "Cannot reach OpenAI from this PC. Check "
                     "the internet connection (or a proxy or firewall) and try again.", detail)
    if isinstance(exc, openai.AuthenticationError):
        return Probe(model, ProbeResult.BAD_KEY, "OpenAI did not accept this key. Copy it "
                     f"again from {KEYS_URL} (it starts with \"sk-\"), paste it here and "
                     "check again. A key that was deleted or revoked stops working.", detail)
    if code == "insufficient_quota":
        return Probe(model, ProbeResult.NO_QUOTA, "The key is right, but the OpenAI account "
                     "has no credit left, so nothing can be drafted yet. Add a payment "
                     f"method or buy credit at {BILLING_URL}, then check again.", detail)
    if code == "model_not_found" or "does not have access to model" in low:
        if isinstance(exc, openai.PermissionDeniedError):
            return Probe(model, ProbeResult.NO_MODEL_ACCESS, f"The key is right, but its "
                         f"project is not allowed to use {model}. Pick another model, "
                         f"or allow {model} for the project at {LIMITS_URL}.", detail)
        return Probe(model, ProbeResult.NO_SUCH_MODEL, f"OpenAI has no model called "
                     f"\"{model}\". Check the spelling, or pick one from the list.", detail)
    if isinstance(exc, openai.PermissionDeniedError):
        return Probe(model, ProbeResult.FORBIDDEN, "The key is right, but it is not allowed "
                     "to draft replies. If it is a restricted key, give it \"Write\" access "
                     "to Responses and to Vector stores (or use an unrestricted key).", detail)
    if isinstance(exc, openai.RateLimitError):
        return Probe(model, ProbeResult.OTHER, "OpenAI is busy for this account right now "
                     "(rate limit). Wait a minute and check again.", detail)
    if isinstance(exc, openai.BadRequestError) and param == "stream":
        if "verif" in low:
            return Probe(model, ProbeResult.WHOLE_ONLY, "✓ The key works. OpenAI only lets "
                         f"verified organisations stream {model}, so drafts will appear all "
                         "at once instead of word by word (they still work). To get live "
                         "drafts, verify your organisation (a short ID check, a few minutes) "
                         f"at {VERIFY_URL}.", detail)
        return Probe(model, ProbeResult.WHOLE_ONLY, f"✓ The key works. {model} cannot stream, "
                     "so drafts will appear all at once instead of word by word.", detail)
    return Probe(model, ProbeResult.OTHER, f"OpenAI refused the test call: {detail}", detail)


async def _tiny_call(client: AsyncOpenAI, model: str, *, stream: bool) -> None:
    params: dict[str, object] = {"model": model, "input": PROBE_INPUT, "store": False,
                                 "max_output_tokens": 16, "stream": stream}
    if is_reasoning_model(model):
        params["reasoning"] = {"effort": "low"}
    if not stream:
        await client.responses.create(**params)  # type: ignore[call-overload]
        return
    events = await client.responses.create(**params)  # type: ignore[call-overload]
    try:
        async for _event in events:  # 16 tokens at most: read to the end (a break would
            pass  # leave the SDK's generator to be finalised outside the loop)
    finally:
        await events.close()


async def probe_model(client: AsyncOpenAI, model: str) -> Probe:
    """One tiny real call with ``model``, streamed as the co-pilot streams; if streaming
    is refused, the same call unstreamed (so "works, drafts arrive whole" is told apart)."""
    try:
        await _tiny_call(client, model, stream=True)
    except openai.APIError as exc:
        probe = classify(exc, model)
        if probe.result is not ProbeResult.WHOLE_ONLY:
            return probe
        try:
            await _tiny_call(client, model, stream=False)
        except openai.APIError as again:
            return classify(again, model)
        return probe
    return Probe(model, ProbeResult.OK, f"✓ The key works, and {model} answered a test "
                 "message. Drafts will appear word by word.")


async def list_model_ids(client: AsyncOpenAI) -> tuple[list[str], str]:
    """The model ids the key can list, or ``([], why)`` when it may not list them (a
    restricted key without Models:Read still drafts fine). Raises ``openai.APIError``
    for a wrong key or no connection (the probe says it better)."""
    try:
        return [m.id async for m in client.models.list()], ""
    except openai.PermissionDeniedError as exc:
        log.info("the key may not list models: %s", _error_parts(exc)[2])
        return [], ("This key may not list models (a restricted key), which is fine: the "
                    "list below shows the usual models.")


async def check_api_key(client: AsyncOpenAI, model: str) -> KeyCheck:
    """The wizard's key check: list the models, then one tiny real call with ``model``.

    When the model does not work (or only unstreamed), up to three other models the
    key lists are tried and the first that streams is offered."""
    try:
        ids, note = await list_model_ids(client)
    except openai.APIError as exc:
        return KeyCheck([], classify(exc, model))
    probe = await probe_model(client, model)
    if probe.result.usable and not accepts_tools(model):
        probe = Probe(model, probe.result, f"{probe.message} But {model} cannot use tools: "
                      "its drafts would not search the knowledge base or look up orders. "
                      "Pick a model from the list for that.", probe.detail)
    check = KeyCheck(ids, probe, note)
    if probe.result in (ProbeResult.WHOLE_ONLY, ProbeResult.NO_MODEL_ACCESS,
                        ProbeResult.NO_SUCH_MODEL) or not accepts_tools(model):
        listed = drafting_models(ids) if ids else list(SUGGESTED)
        fallbacks = list(STREAMS_UNVERIFIED) if probe.result is ProbeResult.WHOLE_ONLY else []
        candidates = [m for m in [*fallbacks, *listed] if m != model and (not ids or m in ids)]
        for candidate in list(dict.fromkeys(candidates))[:3]:
            other = await probe_model(client, candidate)
            if other.result is ProbeResult.OK:
                check.alternative = candidate
                break
    return check


def chat_models(ids: Iterable[str]) -> list[str]:
    """The model ids worth offering for drafting replies (Responses + function tools +
    file_search), best first; the suggested ones when the key listed none."""
    return drafting_models(ids) or list(SUGGESTED)
