"""The offline assistant: drafts from the knowledge base, no AI model, no network.

It is the default engine when no API key is configured. Each turn it reads
the conversation as typed items, understands the customer's requests,
plans the next tool call (the host decides what runs and what waits for
approval), searches the local index, and either asks for the tool or writes
the draft, streamed as the same ``openai.types.responses`` events a model
sends. Replies only quote article sections and tool results: it never
invents facts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.assistant.offline import history, steering
from hitl_desktop.assistant.offline.composer import _TOOL_INTENT, Composer
from hitl_desktop.assistant.offline.events import Call, Emitter, Pace, Reply
from hitl_desktop.assistant.offline.planner import Planner
from hitl_desktop.assistant.offline.retrieval import Retriever, SearchIndex
from hitl_desktop.assistant.offline.speller import Speller
from hitl_desktop.assistant.offline.understanding import understand
from hitl_desktop.assistant.offline.writer import Writer
from hitl_desktop.assistant.steps import Step, compact
from hitl_desktop.config import Paths, Settings
from hitl_desktop.core.catalog import ToolCatalog
from hitl_desktop.knowledge.index import SearchHit

log = logging.getLogger(__name__)


class RemoteEngine(Protocol):
    """This engine in another process (:class:`.process.SupervisedEngine`)."""

    @property
    def ready(self) -> bool: ...

    @property
    def free(self) -> bool:
        """Ready and not behind: a call now would not wait for others."""
        ...

    async def steps(self, request: TurnRequest, delay_s: float,
                    window_s: float) -> list[Step] | str:
        """The steps, or the engine's error message; raises when the process failed."""
        ...

    def fail(self, why: str) -> None:
        """Stop using the process (logged once); another may be started."""

    def close(self) -> None:
        """Stop the process and wait for it (blocks)."""


class OfflineProvider:
    """Rule-based engine over the local knowledge base (``is_ai`` False).

    ``catalog`` supplies the policy limits (refund and voucher maximums, the
    return window); without one, the shipped catalog's are used.
    """

    name = "offline"
    model: str | None = None
    is_ai = False
    reads_instructions = False  # rules, not a prompt: the host need not build one

    def __init__(
        self,
        index: SearchIndex | None,
        tool_names: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        *,
        catalog: ToolCatalog | None = None,
        delay_s: float = 0.0,
        max_results: int = 5,
        yield_every: int = 4,
    ) -> None:
        from hitl_desktop.store.catalog_file import default_catalog

        self.index = index
        if callable(tool_names):
            tool_names = tool_names()
        self.catalog = catalog if catalog is not None else default_catalog()
        if tool_names is None and catalog is not None:
            tool_names = catalog.names
        self.tool_names = frozenset(tool_names) if tool_names is not None else None
        self.delay_s = max(0.0, delay_s)  # the host may re-pace a running engine
        self.yield_every = max(1, yield_every)
        self.retriever = Retriever(index, max_results)
        vocab = getattr(index, "vocabulary", None)
        self.speller = Speller(vocab if isinstance(vocab, frozenset | set) else ())
        self._parsed: dict[str, Any] = {}  # customer message -> its parse (understand)
        self._closed = False
        self._owned_index: Any = None
        self._rng = random.Random()  # response and item ids (seeded from os.urandom)
        # the engine's own process (app.services starts it): used while it is ready
        self.process: RemoteEngine | None = None

    async def aclose(self) -> None:
        self._closed = True
        remote, self.process = self.process, None
        if remote is not None:
            await asyncio.to_thread(remote.close)  # waits for the worker to exit
        if self._owned_index is not None:
            await asyncio.to_thread(self._owned_index.close)  # never a store on the loop
            self._owned_index = None

    def _markdown(self, article_id: str) -> str | None:
        get = getattr(self.index, "get", None)
        if get is None:
            return None
        try:
            art = get(article_id)
        except Exception:
            log.exception("reading article %s failed", article_id)
            return None
        text = getattr(art, "markdown", None)
        return text if isinstance(text, str) else None

    def plan(self, request: TurnRequest) -> Reply:
        """Decide this response (pure apart from index reads; runs in a worker thread)."""
        conv = history.read(request.history, request.tools, request.customer_id,
                            request.final_round)
        if self.tool_names is not None:
            conv.tools = conv.tools & self.tool_names
            conv.limit_reached = conv.limit_reached or not conv.tools
        und = understand(conv, self.speller, self._parsed)
        for d in conv.pending_decisions():
            intent = _TOOL_INTENT.get(d.tool)
            if intent and intent not in und.topics:
                und.topics.insert(0, intent)
        plan = Planner(conv, und, self.catalog.policy).plan()
        found = self.retriever.retrieve(und)
        if plan.step is not None:
            return Reply(found.queries, found.hits, Call(plan.step.name, plan.step.arguments))
        steer = steering.steer_of(conv, max_voucher=self.catalog.policy.max_voucher)
        if steer is not None:
            voucher = steering.voucher_call(conv, steer)
            if voucher is not None:  # the host checks it and makes the approval card
                return Reply(found.queries, found.hits, Call("issue_voucher", voucher))
        writer = Writer(self._markdown)
        base = steering.without_offers(conv, steer) if steer is not None else conv
        Composer(writer, base, und, plan, found, self.catalog.policy).compose()
        if steer is None:
            return Reply(found.queries, found.hits, None, writer.text, writer.citations)
        return self._steered(writer, conv, steer, found.queries, found.hits)

    def _steered(self, writer: Writer, conv: history.Conversation, steer: steering.Steer,
                 queries: list[str], hits: list[SearchHit]) -> Reply:
        """The composed draft rewritten as the representative's instructions ask."""
        article = None
        if steer.directives.article:
            cited = [hit for _, hit in writer.citations]
            article = steering.article_para(
                next((h for h in cited + hits if h.kind == "faq"), None))
        paras = steering.apply(steering.split(writer.text, writer.citations),
                               steer.directives, article=article,
                               offer=steering.offer(conv, steer))
        text, cites = steering.join(paras)
        return Reply(queries, hits, None, text,
                     [(at, hit) for at, hit in cites if isinstance(hit, SearchHit)])

    def check_result(self, instruction: str, previous_draft: str) -> str | None:
        """Why following ``instruction`` could not change ``previous_draft`` (None: it
        can), e.g. "shorter" on a draft already as short as this engine makes drafts."""
        return steering.check_against(instruction, previous_draft)

    def check_instruction(self, instruction: str) -> str | None:
        """Why this engine cannot follow a representative's instruction (None: it can);
        the host answers ``draft.steer`` with ``unsupported`` and this message."""
        return steering.check(instruction, max_voucher=self.catalog.policy.max_voucher)

    async def stream(self, request: TurnRequest) -> AsyncIterator[ResponseStreamEvent]:
        """Yield one response's events, built from the SDK's own types."""
        if self._closed:
            raise ProviderError("closed", "the offline assistant was shut down")
        try:
            emitter, script = await asyncio.to_thread(self._scripted, request)
        except Exception as exc:
            log.exception("offline engine failed to plan a reply")
            raise ProviderError("offline", f"the offline assistant failed: {exc}") from exc
        async for event in emitter.play(script):
            yield event

    async def steps(self, request: TurnRequest, window_s: float) -> list[Step]:
        """The whole response as the few steps the host's loop plays (translated and
        compacted off the loop: :mod:`hitl_desktop.assistant.steps`); the same updates
        as :meth:`stream`'s events give, text merged within ``window_s``.

        In the engine's own process when the host gave it one and it is up and not
        behind (:mod:`.process`), else in a worker thread; a turn whose process failed
        is drafted here (the process is started again for the next ones)."""
        if self._closed:
            raise ProviderError("closed", "the offline assistant was shut down")
        remote = self.process
        if remote is not None and remote.free:  # else (busy, not up) in a thread here
            try:
                got = await remote.steps(request, self.delay_s, window_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the process, not the engine (which answers str)
                remote.fail(f"a turn failed there ({type(exc).__name__}: {exc})")
            else:
                if isinstance(got, str):
                    raise ProviderError("offline", f"the offline assistant failed: {got}")
                return got
        try:
            return await asyncio.to_thread(self.compact_steps, request, window_s)
        except Exception as exc:
            log.exception("offline engine failed to plan a reply")
            raise ProviderError("offline", f"the offline assistant failed: {exc}") from exc

    def compact_steps(self, request: TurnRequest, window_s: float) -> list[Step]:
        """(worker thread or engine process) Plan, script, translate, compact."""
        emitter, script = self._scripted(request)
        return compact(emitter.timed(script), window_s)

    def _scripted(
        self, request: TurnRequest
    ) -> tuple[Emitter, list[tuple[ResponseStreamEvent, int | None]]]:
        """(worker thread) The reply and its events, built off the host's loop: the loop
        only plays them at the pace."""
        emitter = Emitter(Pace(self.delay_s, self.yield_every), request, self.plan(request),
                          rng=self._rng)
        return emitter, emitter.script()


def make_offline_provider(paths: Paths, settings: Settings) -> OfflineProvider:
    """Build the engine from the app's settings (used by ``assistant.factory``).

    The index lives in the data dir; ``settings.knowledge_dir`` overrides the
    shipped knowledge base; the catalog (and its policy) is the config dir's;
    ``settings.extra["offline_delay_ms"]`` paces the stream.
    """
    from hitl_desktop.knowledge.index import open_index
    from hitl_desktop.store.catalog_file import load_catalog

    index = open_index(paths.data_dir, settings.knowledge_dir)
    extra = settings.extra if isinstance(settings.extra, dict) else {}
    delay_ms = float(extra.get("offline_delay_ms", 6.0))
    provider = OfflineProvider(
        index,
        catalog=load_catalog(paths.config_dir),
        delay_s=delay_ms / 1000.0,
        max_results=int(settings.max_search_results),
    )
    provider._owned_index = index
    return provider
