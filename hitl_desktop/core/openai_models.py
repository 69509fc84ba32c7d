"""What we know about OpenAI model ids: which can draft for us, which reason.

Why lists and not a regex: a prefix test such as ``^gpt-5`` also catches
``gpt-5-chat-latest``, which is *not* a reasoning model, rejects
``include=["reasoning.encrypted_content"]`` and rejects function tools. The
co-pilot's request needs the Responses API, function tools and the hosted
``file_search`` tool in one call; only the families below do all three (checked
against the platform's model pages). A dated snapshot (``gpt-4.1-2025-04-14``)
belongs to its family. Anything else is still accepted as free text in the
wizard and the settings (new models appear faster than releases); the provider
then treats it as a plain, non-reasoning model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

# Responses API + function tools + file_search, reasoning (send reasoning.effort and
# include encrypted reasoning so it can travel through the tool loop with store=false)
DRAFTING_REASONING: Final = (
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.2",
    "o3", "o4-mini",
)
# Responses API + function tools + file_search, not reasoning
PLAIN_FAMILIES: Final = (
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini",
)
# every reasoning family we know (some cannot draft for us: no streaming, or coding-only)
REASONING_FAMILIES: Final = (
    *DRAFTING_REASONING, "o1", "o1-pro", "o1-mini", "o3-mini", "o3-pro", "gpt-5-pro",
    "gpt-5-codex", "gpt-5.1-codex", "gpt-5.1-codex-mini", "gpt-5.1-codex-max",
    "codex-mini-latest",
)
# reachable through the Responses API but unable to run the co-pilot's request
# (no function tools, no streaming, or a different modality); never offered
UNSUITABLE_MARKERS: Final = (
    "chat-latest", "-chat", "instruct", "computer-use", "audio", "realtime", "search",
    "transcribe", "tts", "embedding", "image", "dall-e", "whisper", "moderation", "sora",
    "codex", "deep-research", "-pro", "davinci", "babbage", "gpt-3.5",
)
# The wizard's picker, best first (also offered when the key cannot list models)
SUGGESTED: Final = ("gpt-5-mini", "gpt-5", "gpt-5-nano", "gpt-4.1-mini", "gpt-4.1")
# models that stream for every organisation: the fallback offered when a
# GPT-5-family model needs a verified organisation to stream
STREAMS_UNVERIFIED: Final = ("gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini")

_SNAPSHOT = re.compile(r"^(?P<family>.+?)(-\d{4}-\d{2}-\d{2})?$")


def family(model: str) -> str:
    """``gpt-4.1-2025-04-14`` -> ``gpt-4.1`` (lower-cased; unknown ids unchanged)."""
    match = _SNAPSHOT.match(model.strip().lower())
    return match.group("family") if match else model.strip().lower()


def is_unsuitable(model: str) -> bool:
    name = model.strip().lower()
    return any(marker in name for marker in UNSUITABLE_MARKERS)


def is_reasoning_model(model: str) -> bool:
    """True only for the known reasoning families (and their dated snapshots);
    never for the chat snapshots (``gpt-5-chat-latest``)."""
    return accepts_tools(model) and family(model) in REASONING_FAMILIES


def can_draft(model: str) -> bool:
    """True for a known model that can run the co-pilot's request (tools + file_search)."""
    return not is_unsuitable(model) and family(model) in (*DRAFTING_REASONING,
                                                           *PLAIN_FAMILIES)


def accepts_tools(model: str) -> bool:
    """False for the chat snapshots (``*-chat-latest``) that reject function tools.

    Unknown ids are given the benefit of the doubt (the API says so if not)."""
    name = model.strip().lower()
    return "chat-latest" not in name and not name.endswith("-chat")


def drafting_models(ids: Iterable[str]) -> list[str]:
    """The ids worth offering in the model picker, best first (suggested order, then
    reasoning families, then the rest alphabetically; snapshots after their family)."""
    keep = sorted({i for i in ids if can_draft(i)})
    order = {m: n for n, m in enumerate(SUGGESTED)}

    def rank(model: str) -> tuple[int, int, str]:
        fam = family(model)
        return (order.get(fam, len(order)), 0 if fam == model else 1, model)

    return sorted(keep, key=rank)
