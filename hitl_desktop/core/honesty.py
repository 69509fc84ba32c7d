"""Two host-side checks that keep what a representative sees trustworthy.

* :func:`instruction_signs` — does a *customer's* message look like it is
  talking to the system rather than to support (fake tags, "ignore previous
  instructions", "you are now", "approved by the agent"…)? A card whose
  request came from such a message is flagged.
* :func:`outcome_claims` — does a *draft* say an action happened (refunded,
  cancelled, sent, reset…) while that action is only pending, was rejected,
  failed, expired or was refused by the shop? The editor marks such a draft
  before it can be sent.

Both read text written by others (the customer, the model, the offline
engine), word by word; neither is used to recover facts the host wrote.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

MAX_SCAN_CHARS: Final = 20_000  # bounded cost for hostile input

# (pattern over the lower-cased customer text, why it looks like instructions)
_INSTRUCTION_SIGNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(p), why) for p, why in (
        (r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:previous|prior|above|"
         r"earlier|all|your|the)\b[^.!?\n]{0,20}\b(?:instructions?|rules?|prompts?|polic(?:y|ies)"
         r"|guidelines?|directives?)", "asks to ignore the system's instructions"),
        (r"</?\s*(?:system|assistant|agent|developer|admin|customer|user|representative|tool|"
         r"instructions?|im_start|im_end)\b[^>]{0,40}>", "contains fake conversation tags"),
        (r"\[\s*/?\s*(?:system|inst|admin|agent|developer)\s*\]", "contains fake system markers"),
        (r"(?:^|\n)\s*(?:system|assistant|developer|admin|agent|representative|support agent)"
         r"\s*(?:message|note|override)?\s*:", "impersonates the system or an agent"),
        (r"\byou are now\b|\bact as\b|\bpretend (?:to be|you are)\b|\bnew instructions?\b|"
         r"\bjailbreak\b|\bdeveloper mode\b|\bdan mode\b", "tries to change the assistant's role"),
        (r"\b(?:already |pre-?)?(?:approved|authori[sz]ed|verified|confirmed) by (?:the |a )?"
         r"(?:agent|representative|manager|admin|supervisor|system|support)",
         "claims an approval nobody gave"),
        (r"\b(?:as|i am|i'm) (?:the |an? )?(?:admin(?:istrator)?|manager|supervisor|"
         r"developer|system)\b", "claims to be staff"),
        (r"\b(?:do not|don't|without) (?:ask(?:ing)?|wait(?:ing)?|need(?:ing)?) (?:for )?"
         r"(?:approval|confirmation|the agent|a human)", "asks to skip the approval"),
        (r"\b(?:execute|run|call|invoke)\b[^.!?\n]{0,20}\b(?:tool|function|command|"
         r"create_refund|cancel_order|issue_voucher|reset_password|update_info|"
         r"send_replacement|create_return)\b", "asks to run tools directly"),
        (r"\b(?:print|reveal|show|repeat)\b[^.!?\n]{0,20}\b(?:system prompt|instructions|"
         r"your prompt)\b", "asks for the system's instructions"),
    )
)


def instruction_signs(text: str) -> list[str]:
    """Why ``text`` (a customer's message) looks like instructions to the system;
    empty when it reads as an ordinary request."""
    low = text[:MAX_SCAN_CHARS].lower()
    return [why for pattern, why in _INSTRUCTION_SIGNS if pattern.search(low)]


# --------------------------------------------------------------------- claims

#: Per action: the words that, in a draft, state its outcome as done.
CLAIM_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "cancel_order": ("cancelled", "canceled", "cancellation is complete",
                     "cancellation has been processed"),
    "create_refund": ("refunded", "refund has been", "refund is on its way", "issued a refund",
                      "processed a refund", "processed your refund", "refund was issued",
                      "refund has gone"),
    "reset_password": ("reset link has been sent", "sent you a reset", "sent a reset",
                       "password has been reset", "sent a password reset",
                       "sent you a password", "reset link was sent", "link is on its way"),
    "send_replacement": ("replacement has been sent", "replacement is on its way",
                         "shipped a replacement", "sent a replacement", "sent you a replacement",
                         "replacement was sent", "replacement has shipped"),
    "issue_voucher": ("voucher has been", "issued a voucher", "issued you", "added a voucher",
                      "voucher was added", "voucher was issued", "voucher is on its way"),
    "create_return": ("return has been opened", "opened a return", "return is open",
                      "return label has been", "emailed you a return", "sent you a return label",
                      "return was opened", "return label was"),
    "create_complaint": ("complaint has been recorded", "recorded your complaint",
                         "complaint was recorded", "filed your complaint",
                         "complaint has been filed", "logged your complaint"),
    "update_info": ("has been updated", "have updated", "'ve updated", "was updated",
                    "has been changed", "have changed", "'ve changed", "was changed"),
}

#: Words saying *some* action is done or under way; the tool is the one the sentence
#: names by topic (or the only action that has not happened).
UNDER_WAY: Final = ("processing it now", "i'm processing", "i am processing", "being processed",
                    "under way", "underway", "taking care of it now", "i've taken care",
                    "i have taken care", "it's done", "it is done", "has been done", "all done",
                    "is now complete", "have completed", "'ve completed", "went through",
                    "has gone through", "has been processed", "was processed")
TOPICS: Final[dict[str, tuple[str, ...]]] = {
    "cancel_order": ("cancel",),
    "create_refund": ("refund", "money back"),
    "reset_password": ("password", "reset"),
    "send_replacement": ("replacement", "replace"),
    "issue_voucher": ("voucher",),
    "create_return": ("return",),
    "create_complaint": ("complaint",),
    "update_info": ("email", "phone", "address", "name", "details", "account"),
}
#: With a topic word of the action in the same sentence: it is said to be done.
COMPLETED: Final = ("processed", "completed", "done", "went through",
                    "gone through", "finalised", "finalized", "is on its way", "are on their way")
#: ... or someone is said to have acted on it.
AGENTIVE: Final = ("i've ", "i have ", "we've ", "we have ", "has been ", "have been ",
                   "i just ", "we just ")
_STRICT_NEGATIONS: Final = ("not ", "n't ", "cannot", "unable", "once ", "if ", "when ",
                             "as soon as", "will ", "i'll ", "for confirmation", "passed on",
                             "colleague")
_NEGATIONS: Final = ("not ", "n't ", "cannot", "can't", "unable", "no longer", "once ",
                     "if ", "when ", "after ", "until ", "will ", "would ", "could ", "can be",
                     "pending", "awaiting", "waiting", "request to", "request for",
                     "requested a", "requested the", "asked a", "asked the", "asked my",
                     "asked our", "passed on", "colleague", "confirmation",
                     "looked up", "looked into", "checked", "see ", "help ",
                     "submitted", "forwarded", "confirm", "approval", "review", "already been "
                     "cancelled")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|\n+")
_ORDER_ID: Final = re.compile(r"\bord[\s#-]?\d{3,}\b")


@dataclass(frozen=True, slots=True)
class Claim:
    """A draft sentence that states an outcome the host knows did not happen."""

    tool: str
    sentence: str
    reason: str


def outcome_claims(text: str, not_done: Mapping[str, str],
                   order_ids: Mapping[str, Iterable[str]] | None = None,
                   also_done: Iterable[str] = ()) -> list[Claim]:
    """Sentences of ``text`` (a draft) claiming an action in ``not_done`` happened.

    ``not_done`` maps a tool name to why it has not happened ("is waiting for a
    representative's approval", "was rejected", "failed: …", "was refused by the
    shop: …"). ``order_ids`` (optional, per tool) narrows a claim to sentences
    naming one of those orders when the sentence names any order at all, so
    "ORD1004 was cancelled last month" does not trip a pending ORD1001.
    A sentence that hedges (not, will, once, pending, waiting for approval…) is
    not a claim. For a tool in ``also_done`` (another action of it did happen),
    only a sentence naming one of the not-done orders is a claim.
    """
    claims: list[Claim] = []
    done_too = set(also_done)
    if not not_done:
        return claims
    for sentence in _SENTENCE_END.split(text[:MAX_SCAN_CHARS]):
        low = sentence.lower().strip()
        if not low:
            continue
        if any(w in low for w in UNDER_WAY) and not any(n in low for n in _STRICT_NEGATIONS):
            named = [t for t in not_done if any(w in low for w in TOPICS.get(t, ()))]
            tools = named or (list(not_done) if len(not_done) == 1 else [])
            if tools:
                claims.append(Claim(tool=tools[0], sentence=sentence.strip(), reason=(
                    f"{tools[0].replace('_', ' ')} {not_done[tools[0]]}; the draft says it "
                    "is done or under way")))
                continue
        if any(n in low for n in _NEGATIONS):
            continue
        for tool, why in not_done.items():
            words = CLAIM_WORDS.get(tool, ())
            topical = tool != "update_info" and any(
                w in low for w in TOPICS.get(tool, ())) and any(
                w in low for w in (*COMPLETED, *AGENTIVE))
            if not topical and not any(w in low for w in words):
                continue
            ids = [i.lower() for i in (order_ids or {}).get(tool, ())]
            names_one = any(i in low for i in ids)
            if ids and _ORDER_ID.search(low) and not names_one:
                continue
            if tool in done_too and not names_one:
                continue
            claims.append(Claim(tool=tool, sentence=sentence.strip(),
                                reason=f"{tool.replace('_', ' ')} {why}; the draft says it "
                                "happened"))
            break
    return claims
