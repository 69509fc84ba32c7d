"""What a customer's bare "yes" answers: the offer in the reply the representative sent.

Representatives edit drafts before sending them, and the customer answers the sent
text: a draft asking "a replacement or a refund?" that was edited into "would you
like a refund of $48.00 for the socks?" is answered with a refund in mind (D9167).
The sent reply (a :class:`~hitl_desktop.core.turns.SentReply`, the human's words;
an unsent draft is never in the history) is therefore read here, and only for a
small vocabulary of offers: a question or conditional offer ("would you like",
"shall I", "... if you like") naming one of seven actions (a profile change only with
its new value: "shall I update your email to a@b.example?"). The reply read is the one
sent just before the customer's message or, when the representative sent several in a
row, the latest of them that asks anything: an offer stays open while the replies after
it, up to the customer's message, hold no other question and no other offer ("Would you
like a refund of $48?" then "I'll be here if you need anything."). Anything else in it,
above all text that looks like an instruction to the engine, is not read: a reply
with such text offers nothing here, and the rest of the engine reads no assistant
text at all. An offer only ever becomes a request; the planner still checks the
order's state and the policy, and a representative approves every action.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hitl_desktop.assistant.offline import slots
from hitl_desktop.assistant.offline.history import Conversation, Decision, Said, ToolRun

# every pattern here is matched against lower-cased text (no re.I: the reading of a
# reply is on every confirming turn, and case-blind alternations cost several times more)

#: the words that make a sentence an offer to the customer (not a statement of fact)
_CUE_RE = re.compile(
    r"\b(?:would you (?:like|prefer|rather|want)|do you want|shall i|should i|want me to"
    r"|how about|can i offer|may i offer|(?:let me know|tell me) if you(?:'d| would)? (?:like|want)"
    r"|if you(?:'d| would)? (?:like|want|wish|prefer)(?: me to)?)\b")
#: a question asking which or how much ("Which one would you like me to cancel?", "How
#: much would you like refunded?"): "yes" is no answer to it, so it accepts no action there
_WH_RE = re.compile(r"\b(?:which|what|how much|how many|when|where|who|whom)\b[^,;:]*$")
#: what such a question asks for (else: which order)
_ASKS_AMOUNT_RE = re.compile(r"\bhow much\b|\bamount\b")
_ASKS_PRODUCT_RE = re.compile(r"\b(?:products?|items?)\b|\bwhich of (?:them|these|those|the)\b")
#: words one of which every cue holds (a sentence without them is not searched)
_CUE_WORDS = ("you", "shall i", "should i", "how about", "offer")
#: an offer with no action of its own ("Shall I?", "Would you like me to do that?"):
#: the sentence before it says what
_BARE_CUE_RE = re.compile(
    r"^(?:(?:ok|okay|so|sure|great)[,!]?\s+)?(?:shall i|should i|would you like (?:me to|that)"
    r"|do you want (?:me to|that)|want me to)(?:\s+(?:do (?:that|it|so)"
    r"|go ahead(?: with (?:that|it))?|proceed|arrange (?:that|it)|set (?:that|it) up"
    r"|(?:submit|send|try|put) (?:it|that)(?: through)? again))?"
    r"(?:\s+for you)?\s*[?.!]*$")
#: the actions a sent offer can name, each as the intent the planner walks (one pass)
_ACTION_RE = re.compile(
    r"\b(?=[rmscpvu])(?:(?P<refund>refund(?:ed|ing)?\b|money back\b|reimburse)"
    r"|(?P<replacement>replace(?:ment|d)?\b|send you (?:a )?(?:new|fresh|another)"
    r" (?:one|pair|pack|set)\b)"
    r"|(?P<return>return(?:ed|ing)?\b(?! (?:policy|window|period)))"
    r"|(?P<cancel>cancel(?:l?ed|l?ing|lation)?\b)"
    r"|(?P<password>(?:password )?reset (?:link|email)\b|reset (?:your|the) password\b)"
    r"|(?P<voucher>vouchers?\b|store credit\b|coupon\b)"
    r"|(?P<profile>(?:update|change|correct)\b[^.?!]{0,30}?\b(?:e-?mail|phone|mobile|address"
    r"|name)\b))")
#: the last tool of each offerable intent (the action the offer is for)
_TOOL = {"refund": "create_refund", "replacement": "send_replacement",
         "return": "create_return", "cancel": "cancel_order", "password": "reset_password",
         "voucher": "issue_voucher", "profile": "update_info"}
#: text that looks like an instruction to the engine, or markup/quotes: a reply holding it is
#: not read (the customer may have pasted it, or a model may have been steered into it)
_NOT_READ_RE = re.compile(
    r"ignore (?:all |your |the |any )?(?:previous |prior |above |earlier )?(?:instructions|rules"
    r"|prompts?)|\bsystem\s*:|\b(?:developer|admin|maintenance) mode\b|override|disregard"
    r"|</?\w+[^>]*>|<!--|\{\s*\"|\[(?:system|admin|developer|assistant)\]"
    r"|\b(?:approve|propose|call|run|execute)\b[^.?!]{0,30}\b(?:tool|function|action)s?\b"
    r"|\b(?:create_refund|send_replacement|create_return|cancel_order|reset_password"
    r"|issue_voucher|update_info)\b")
#: a question that offers no action ("Would you like anything else?"): not an offer
_NOTHING_RE = re.compile(
    r"\banything else\b|\bany (?:other|more) questions\b|\bhelp (?:you )?with anything\b")
#: the profile fields an offer may name (one per offer)
_FIELD_RE = re.compile(r"\b(?:e-?mail|phone|mobile|address|name)\b")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_QUOTE_RE = re.compile(r"\"[^\"]*\"|\u201c[^\u201d]*\u201d")


@dataclass(frozen=True, slots=True)
class Offer:
    """What the representative's replies just before the customer's message offer.

    ``asks`` is False when the reply offers nothing at all (then a "yes" accepts
    nothing the engine would infer); ``intents`` are the actions named in its offers
    (one: the customer accepted that one; none or several: the reply is unclear)."""

    at: int  # the offering reply's position in the conversation's turns
    asks: bool
    intents: tuple[str, ...] = ()
    text: str = ""  # the offer's words (from its cue on), e.g. "would you like a refund ...?"
    #: it asks which one or how much, so a bare "yes" answers nothing: what it asks for
    #: ("order", "product" or "amount"; "" when it asks no such question)
    which: str = ""
    asked: tuple[str, ...] = ()  # the actions such a question is about ("... to cancel?")

    @property
    def intent(self) -> str | None:
        """The one action offered, if exactly one is."""
        return self.intents[0] if len(self.intents) == 1 else None


def _low(text: str) -> str:
    return text.lower().replace("\u2019", "'")


def _named(low: str) -> list[str]:
    return list(dict.fromkeys(m.lastgroup for m in _ACTION_RE.finditer(low) if m.lastgroup))


def _offer_parts(text: str) -> list[tuple[str, list[str]]]:
    """The offers in a reply, each from its cue to the end of its sentence, with the
    actions it names. "Shall I?" / "Would you like me to do that?" offers the action its
    sentence before names last ("...the simplest way to get your money back is to cancel
    it. Would you like me to do that?": the cancellation). A question asking which or how
    much is the part "?order", "?product" or "?amount" with the actions it is about."""
    sentences = [s.strip() for s in _SENTENCE_RE.split(_QUOTE_RE.sub(" ", text)) if s.strip()]
    parts: list[tuple[str, list[str]]] = []
    for n, sentence in enumerate(sentences):
        low = _low(sentence)
        if not any(w in low for w in _CUE_WORDS):
            continue
        cue = _CUE_RE.search(low)
        if cue is None or _NOTHING_RE.search(low):
            continue
        if _WH_RE.search(low, 0, cue.start()):  # a question, unclear to a "yes"
            kind = "amount" if _ASKS_AMOUNT_RE.search(low) else (
                "product" if _ASKS_PRODUCT_RE.search(low) else "order")
            parts.append((f"?{kind}", _named(low)))
            continue
        if _BARE_CUE_RE.match(low):  # "I can send a reset link. Shall I?"
            before = sentences[n - 1] if n else ""
            named = [m.lastgroup for m in _ACTION_RE.finditer(_low(before)) if m.lastgroup]
            parts.append((f"{before} {sentence}".strip(), _valued(f"{before} {sentence}",
                                                                  named[-1:])))
            continue
        # "I can cancel it if you like.": the whole sentence; else from the cue on
        at = 0 if cue.group(0).startswith("if you") else cue.start()
        part = sentence[at:] if len(low) == len(sentence) else low[at:]
        parts.append((part, _valued(part, _named(low[at:]))))
    return parts


def _valued(part: str, named: list[str]) -> list[str]:
    """A profile change is an offer only with its one new value, as written ("Shall I
    update your email to a@b.example?"); "Shall I update your email?", a value that is
    no value ("...your name to match your card?", "...the address to the one on
    ORD1003?") or two fields in one offer keep the earlier rule (the value the customer
    gave)."""
    if "profile" in named:
        change = slots.profile_change(part)
        value = change.value if change is not None and change.value else ""
        email = change is not None and change.field == "email"
        fields = {"phone" if w == "mobile" else w.replace("-", "")
                  for w in _FIELD_RE.findall(
                      _low(slots.EMAIL_RE.sub(" ", part)).replace("email address", "email"))}
        as_written = value in part and (email or value[:1].isupper() or value[:1] in "+0123456789")
        if not value or not as_written or slots.order_ids(value) or len(fields) > 1:
            return [i for i in named if i != "profile"]
    return named


def read(text: str, at: int) -> Offer | None:
    """The offer a sent reply makes (None: the reply is not read, see the module doc)."""
    found = _read(text)
    return None if found is None else Offer(at, *found)


@functools.lru_cache(maxsize=1024)
def _read(text: str) -> tuple[bool, tuple[str, ...], str, str, tuple[str, ...]] | None:
    """(asks, intents, text, which, asked) of a reply (each tool round of a reply reads
    it again)."""
    named = _offer_parts(text)
    if not named:
        return False, (), "", "", ()  # instruction-like text or not, it offers nothing
    if _NOT_READ_RE.search(_low(text)):
        return None
    intents = tuple(dict.fromkeys(i for p, found in named if p[:1] != "?" for i in found))
    if len(intents) != 1:
        which = next((p[1:] for p, _ in named if p[:1] == "?"), "")
        asked = tuple(dict.fromkeys(i for p, found in named if p[:1] == "?" for i in found))
        return True, intents, "", which, asked
    return True, intents, " ".join(p for p, found in named if found and p[:1] != "?"), "", ()


def offered(conv: Conversation, before: int) -> Offer | None:
    """The offer open when the customer wrote the message at position ``before``.

    It is the offer of the representative's reply sent just before that message, or of
    an earlier reply in the same run of replies (no customer message between them) when
    every reply after it asks nothing and offers nothing: "Would you like a refund of
    $48?" then "I'll be here if you need anything." leaves the refund open, while a later
    question ("Anything else?") or offer replaces it. None when no reply came between
    this message and the customer's message before, or a reply of the run is not read.
    An offer whose action was already proposed or done since the customer's message
    before (the reply reports it) offers nothing new."""
    run: list[int] = []  # the replies since the customer's message before, latest first
    start = -1
    for n in range(before - 1, -1, -1):
        t = conv.turns[n]
        if isinstance(t, Said):
            if t.role != "assistant":
                start = n
                break
            run.append(n)
    if not run:
        return None
    offer: Offer | None = None
    for at in run:
        turn = conv.turns[at]
        assert isinstance(turn, Said)
        offer = read(turn.text, at)
        if offer is None:
            return None
        if offer.asks or "?" in turn.text:
            break  # the latest reply that asks anything is the one answered
        if at != run[-1] and _NOT_READ_RE.search(_low(turn.text)):
            return None  # a reply passed over is not read either when it holds such text
    assert offer is not None
    if offer.intent is None:
        return offer
    if _proposed(conv, _TOOL[offer.intent], start, before):
        return Offer(offer.at, False)  # nothing left to accept
    return offer


def _proposed(conv: Conversation, tool: str, start: int, end: int) -> bool:
    """Was ``tool`` proposed or run between ``start`` and ``end`` and not turned down since?"""
    live = False
    for t in conv.turns[start + 1:end]:
        if isinstance(t, ToolRun) and t.name == tool and not t.failed:
            live = True
        elif isinstance(t, Decision) and t.tool == tool and t.outcome != "approved":
            live = False
    return live
