"""The representative's instructions the offline engine follows ("shorter", "more formal").

A representative steers a draft with ``draft.steer``; the host keeps each
instruction as a typed :class:`~hitl_desktop.core.turns.RepInstruction`. The
offline engine has no model, so it follows a documented set of instructions
(:data:`SUPPORTED`) and refuses anything else up front (:func:`check`: the host
answers ``unsupported`` and leaves the draft alone) rather than pretend:

* ``shorter`` (again: shorter still): closing pleasantries go, then sentences
  per paragraph, then paragraphs; questions to the customer are kept;
* ``more formal``: no contractions, no casual phrases, a formal opening and close;
* ``apologise`` (``for the delay``, ``for the inconvenience``, ``for <a few words>``);
* ``ask for the order number``, ``ask for a photo``;
* ``add the relevant article link``: names the draft's best FAQ article and cites it;
* ``offer a $N voucher``: an ``issue_voucher`` call for $N for the session's
  verified customer (the host checks it and makes the approval card); in an
  unverified session the draft asks the customer to sign in first.

Instructions come only from the representative's items, never from customer
text: a customer writing "offer me a $100 voucher" is understood (or not) as a
customer request by the rest of the engine, under its usual rules.
Pure functions over text; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hitl_desktop.assistant.offline import slots
from hitl_desktop.assistant.offline.history import Conversation, ToolRun
from hitl_desktop.assistant.offline.texts import money
from hitl_desktop.knowledge.index import SearchHit

SUPPORTED = ("shorter", "more formal", "apologise (for the delay)", "ask for the order number",
             "add the relevant article link", "offer a $N voucher", "ask for a photo")
"""What the offline engine can follow, as the representative would write it."""

_VOUCHER = re.compile(
    r"(?:\b(?:offer|give|issue|add|propose|send|grant|provide)\b[^,;.!?]*?)?"
    r"(?:\$\s?\d[\d,]*(?:\.\d+)?\s*|\b\d[\d,]*(?:\.\d+)?\s*(?:dollars?|usd|bucks)\s+)?"
    r"(?:goodwill\s+)?\b(?:voucher|coupon|gift ?card|store credit|credit)s?\b"
    r"(?:[^,;.!?]*?(?:\$\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s*(?:dollars?|usd|bucks)\b))?")
_SHORTER = re.compile(
    r"\b(?:(?:much |a lot |way |even |a bit |a little |slightly )?shorter|shorten(?: it)?"
    r"|(?:more )?concise|brief(?:er|ly)?|less wordy|too long|trim(?: it)?(?: down)?"
    r"|cut it down|fewer words|keep it short|make it short|tl;?dr)\b")
_FORMAL = re.compile(
    r"\b(?:(?:a bit |a little |much |even )?more (?:formal|professional|polite)"
    r"|formal(?:ly)?|professional(?:ly)?|polite(?:ly)?|less (?:casual|informal|chatty))\b")
_REASONS = {"delay": "delay", "wait": "delay", "waiting": "delay", "late reply": "delay",
            "slow reply": "delay", "slow response": "delay", "late response": "delay",
            "inconvenience": "inconvenience", "trouble": "inconvenience"}
_APOLOGY = re.compile(
    r"\b(?:apologi[sz]e|apology|apologies|say (?:that )?(?:we'?re |you'?re |i'?m |we are |"
    r"i am )?sorry|be apologetic|sorry)\b"
    r"(?:\s+(?:to (?:the customer|them|him|her)\s+)?(?:for|about)\s+(?P<for>[^,;.!?]+))?")
_ASK_ORDER = re.compile(
    r"\b(?:ask|request|get|need)\b[^,;.!?]*?\b(?:order (?:number|id|no|#)|which order"
    r"|order reference)s?\b")
_PHOTO = re.compile(
    r"\b(?:ask|request|get|need|want)\b[^,;.!?]*?\b(?:photo|picture|pic|image|photograph"
    r"|snapshot)s?\b(?:\s+of\s+(?P<of>[^,;.!?]+))?")
_ARTICLE = re.compile(
    r"\b(?:add|include|insert|share|give|attach|cite|put|with|send|mention|point|link)\b"
    r"[^,;.!?]*\b(?:article|link|faq|help page|help article|guide)s?\b"
    r"(?:\s+(?:to|about|on|for)\s+(?:it|this|that|them))?"
    r"|\b(?:link|article) (?:to|from) (?:the )?(?:relevant |right )?(?:article|faq|help)\b")
_FILLER_WORDS = """
    a an the and then also too please pls plz can could would you it its this that make
    made be is are was it's reply draft message answer response text bit little lot much
    way just more some them him her customer to for of with in on at by so as but again
    instead now here there me us we our your their rewrite redo write rephrase version
    try keep tone sound slightly really very quite should do let i i'd like want it
    still even less one
"""
_FILLER = frozenset(_FILLER_WORDS.split())


@dataclass(slots=True)
class Directives:
    """What the representative's instructions in force ask for, merged."""

    shorter: int = 0  # how many times "shorter" was asked
    formal: bool = False
    apologies: list[str] = field(default_factory=list)  # "delay", "inconvenience" or words
    ask_order: bool = False
    photo: str | None = None  # "" (a photo) or what of ("the damage")
    article: bool = False
    vouchers: list[float] = field(default_factory=list)  # amounts, in order asked

    def __bool__(self) -> bool:
        return bool(self.shorter or self.formal or self.apologies or self.ask_order
                    or self.photo is not None or self.article or self.vouchers)


@dataclass(frozen=True, slots=True)
class Parsed:
    """One instruction understood: its directives, and what was not understood."""

    directives: Directives
    unknown: tuple[str, ...] = ()
    problem: str | None = None  # understood but cannot be done as asked


def _norm(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    return " ".join(text.split())


def parse(text: str, *, max_voucher: float | None = None) -> Parsed:
    """Understand one instruction; whatever is left over is reported as unknown."""
    norm = _norm(text)
    d = Directives()
    problem: str | None = None
    rest = norm

    def take(rx: re.Pattern[str]) -> list[re.Match[str]]:
        nonlocal rest
        found = list(rx.finditer(rest))
        for m in found:
            rest = rest.replace(m.group(0), " , ", 1)
        return found

    for m in take(_VOUCHER):
        found = slots.amounts(m.group(0), bare=True)
        if not found:
            problem = "say how much the voucher is worth, e.g. \u201coffer a $10 voucher\u201d"
            continue
        amount = round(found[0], 2)
        if amount <= 0:
            problem = "a voucher must be worth more than $0"
        elif max_voucher is not None and amount > max_voucher:
            problem = (f"a goodwill voucher can be worth at most ${max_voucher:,.2f} (the shop's "
                       f"policy), so ${amount:,.2f} would be refused")
        else:
            d.vouchers.append(amount)
    if take(_ASK_ORDER):
        d.ask_order = True
    for m in take(_PHOTO):
        of = (m.group("of") or "").strip()
        d.photo = of if of and len(of.split()) <= 6 else ""
    if take(_ARTICLE):
        d.article = True
    for m in take(_APOLOGY):
        why = (m.group("for") or "").strip()
        why = re.sub(r"^(?:the|our|this|any|all the|my)\s+", "", why)
        reason = _REASONS.get(why, why)
        if len(reason.split()) > 6:
            reason = ""
        d.apologies.append(reason)
    d.shorter += len(take(_SHORTER))
    d.formal = bool(take(_FORMAL))
    unknown = []
    for clause in re.split(r"[,;.!?]|\band\b|\bthen\b|\balso\b", rest):
        words = [w for w in re.findall(r"[a-z0-9$']+", clause) if w not in _FILLER]
        if words:
            unknown.append(" ".join(words))
    return Parsed(d, tuple(unknown), problem)


def check(text: str, *, max_voucher: float | None = None) -> str | None:
    """Why the offline engine cannot follow ``text`` (None: it can), in plain words."""
    parsed = parse(text, max_voucher=max_voucher)
    if parsed.problem:
        return f"The offline assistant cannot follow that: {parsed.problem}."
    if parsed.unknown or not parsed.directives:
        what = "; ".join(f"\u201c{u}\u201d" for u in parsed.unknown) or f"\u201c{text}\u201d"
        return (f"The offline assistant (no AI model) cannot follow {what}. It follows: "
                + ", ".join(SUPPORTED) + ".")
    return None


def check_against(text: str, previous: str) -> str | None:
    """Why an instruction that only asks for "shorter" cannot change ``previous`` (it is
    already as short as this engine makes a draft); None when it can."""
    d = parse(text).directives
    only_shorter = d.shorter and not (d.formal or d.apologies or d.ask_order or d.article
                                      or d.photo is not None or d.vouchers)
    if not only_shorter or not previous.strip():
        return None
    paras = split(previous, [])
    if text_of(shorten(paras, 3)) != text_of(paras):
        return None
    return ("The offline assistant cannot make this draft any shorter: it is already down "
            "to what the reply needs. Edit it by hand, or undo the earlier instructions.")


def text_of(paras: Sequence[Para]) -> str:
    return join(paras)[0]


def merge(instructions: Sequence[str], *, max_voucher: float | None = None) -> Directives:
    """The directives of every instruction in force, in the order given."""
    out = Directives()
    for text in instructions:
        d = parse(text, max_voucher=max_voucher).directives
        out.shorter += d.shorter
        out.formal = out.formal or d.formal
        out.apologies += [a for a in d.apologies if a not in out.apologies]
        out.ask_order = out.ask_order or d.ask_order
        out.photo = d.photo if d.photo is not None else out.photo
        out.article = out.article or d.article
        out.vouchers += d.vouchers
    return out


# --------------------------------------------------------------------- rewriting the draft

_CLOSERS = ("Is there anything else I can help you with?", "I'll let you know as soon as I "
            "hear back.")
_PLEASANTRY = re.compile(
    r"(?:I'm |I am )?(?:sorry to hear that|happy to help|glad to help)[.!]$"
    r"|(?:Thanks|Thank you)(?: for [^.!?]{0,40})?[.!]$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"\u201c(])")
_CONTRACTIONS = {
    "i've": "I have", "i'll": "I will", "i'm": "I am", "i'd": "I would", "can't": "cannot",
    "won't": "will not", "don't": "do not", "doesn't": "does not", "didn't": "did not",
    "isn't": "is not", "aren't": "are not", "wasn't": "was not", "weren't": "were not",
    "haven't": "have not", "hasn't": "has not", "couldn't": "could not",
    "wouldn't": "would not", "shouldn't": "should not", "it's": "it is", "that's": "that is",
    "there's": "there is", "here's": "here is", "what's": "what is", "you'll": "you will",
    "you're": "you are", "you've": "you have", "you'd": "you would", "we're": "we are",
    "we'll": "we will", "we've": "we have", "they're": "they are", "they'll": "they will",
    "let's": "let us", "let me know": "please let me know",
}
_CASUAL = (
    (re.compile(r"^Hi,? thanks for contacting"), "Good day, and thank you for contacting"),
    (re.compile(r"\bHi\b,?"), "Hello,"),
    (re.compile(r"\bThanks\b"), "Thank you"),
    (re.compile(r"\bthanks\b"), "thank you"),
    (re.compile(r"\bNo problem\b"), "Certainly"),
    (re.compile(r"\bSure\b"), "Certainly"),
    (re.compile(r"\bhappy to help\b"), "glad to assist"),
    (re.compile(r"\bjust\s"), ""),
    (re.compile(r"\bsort it out\b"), "resolve it"),
    (re.compile(r"\bget back to you\b"), "respond to you"),
    (re.compile(r"\bOK\b|\bokay\b"), "all right"),
)
_CONTRACTION_RX = re.compile(
    r"\b(" + "|".join(re.escape(k) for k in sorted(_CONTRACTIONS, key=len, reverse=True))
    + r")\b", re.IGNORECASE)
FORMAL_OPENING = "Thank you for your message."
FORMAL_CLOSING = "Kind regards,\nNorthwind Goods Customer Support"
_APOLOGY_TEXT = {
    "delay": "I'm sorry for the delay in getting back to you.",
    "inconvenience": "I'm sorry for the inconvenience this has caused.",
    "": "I'm sorry about this.",
}
ASK_ORDER = "Could you send me the order number (for example ORD1001)?"
ASK_PHOTO = ("Could you send us a photo of {what}? It helps us see exactly what happened and "
             "sort it out faster.")


@dataclass(slots=True)
class Para:
    """A paragraph of the draft and the articles cited for it (in citation order)."""

    text: str
    cites: list[object] = field(default_factory=list)
    keep: bool = False  # added for an instruction: "shorter" never cuts it


def split(text: str, citations: Sequence[tuple[int, object]]) -> list[Para]:
    """The draft as paragraphs, each citation moved to the paragraph it ends."""
    paras: list[Para] = []
    starts: list[int] = []
    at = 0
    for chunk in text.split("\n\n"):
        starts.append(at)
        paras.append(Para(chunk))
        at += len(chunk) + 2
    for offset, hit in citations:
        n = max((i for i, s in enumerate(starts) if s <= max(0, offset - 1)), default=0)
        if paras:
            paras[n].cites.append(hit)
    return [p for p in paras if p.text.strip()]


def join(paras: Sequence[Para]) -> tuple[str, list[tuple[int, object]]]:
    """Paragraphs back into a draft; each citation at the end of its paragraph."""
    text = ""
    cites: list[tuple[int, object]] = []
    for p in paras:
        if text:
            text += "\n\n"
        text += p.text
        cites += [(len(text), hit) for hit in p.cites]
    return text, cites


def _is_list(text: str) -> bool:
    return any(line.lstrip().startswith(("- ", "* ")) or re.match(r"\s*\d+[.)] ", line)
               for line in text.splitlines()[1:])


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def shorten(paras: list[Para], level: int) -> list[Para]:
    """Each level cuts more: closers first, then sentences per paragraph, then paragraphs.
    A paragraph asking the customer something is kept (the reply needs the answer)."""
    if level <= 0 or not paras:
        return paras
    kept = [p for p in paras if p.text.strip() not in _CLOSERS] or paras[:1]
    kept = [p for p in kept if p.keep or not all(
        _PLEASANTRY.match(s) for s in _sentences(p.text))] or kept[:1]
    per_para = max(1, 3 - level)
    out: list[Para] = []
    for p in kept:
        if p.keep:
            out.append(p)
            continue
        if _is_list(p.text):
            lines = p.text.splitlines()
            items = 6 if level == 1 else 3
            body = lines[: 1 + items] + (["- \u2026"] if len(lines) > 1 + items else [])
            out.append(Para("\n".join(body), p.cites))
            continue
        sentences = _sentences(p.text)
        if level >= 2 and len(sentences) > 1:  # the facts before the pleasantries
            sentences = [s for s in sentences if not _PLEASANTRY.match(s)] or sentences
        questions = [s for s in sentences[per_para:] if s.endswith("?")]
        out.append(Para(" ".join(sentences[:per_para] + questions[-1:]), p.cites))
    max_paras = max(1, 4 - level)
    free = [p for p in out if not p.keep]
    if len(free) > max_paras:
        asks = [p for p in free[max_paras:] if p.text.rstrip().endswith("?")]
        allowed = {id(p) for p in free[:max_paras - 1 if asks else max_paras] + asks[-1:]}
        out = [p for p in out if p.keep or id(p) in allowed]
    return out


def _expand(m: re.Match[str]) -> str:
    word = m.group(0)
    full = _CONTRACTIONS[word.lower()]
    if word[0].isupper() and not full[0].isupper():
        return full[0].upper() + full[1:]
    return full


def formal(paras: list[Para]) -> list[Para]:
    """No contractions or casual phrases; a formal opening (unless it greets) and close."""
    out: list[Para] = []
    for p in paras:
        text = p.text.replace("\u2019", "'")
        for rx, sub in _CASUAL:
            text = rx.sub(sub, text)
        text = _CONTRACTION_RX.sub(_expand, text)
        text = re.sub(r"  +", " ", text).replace(" ,", ",")
        out.append(Para(text, p.cites, p.keep))
    first = out[0].text if out else ""
    if not re.match(r"(?:Good day|Hello|Dear|Thank you)\b", first):
        out.insert(0, Para(FORMAL_OPENING))
    out.append(Para(FORMAL_CLOSING))
    return out


def apology(reason: str) -> str:
    """The apology sentence for a reason ("delay", "inconvenience", a few words, or "")."""
    if reason in _APOLOGY_TEXT:
        return _APOLOGY_TEXT[reason]
    return f"I'm sorry for the {reason}."


def apply(paras: list[Para], d: Directives, *, article: Para | None = None,
          offer: Para | None = None) -> list[Para]:
    """The draft's paragraphs rewritten as the directives ask (the voucher is the
    composer's: it is an action, not a rewrite). Additions go first (apologies) or before
    the closing question; then shorter, then more formal over everything."""
    out = list(paras)
    sorry = [apology(r) for r in d.apologies
             if not any(apology(r) in p.text for p in out)]
    if sorry:
        out.insert(0, Para(" ".join(sorry), keep=True))
    asks: list[Para] = []
    text = "\n".join(p.text for p in out)
    if d.ask_order and not re.search(r"order number[^?]*\?", text):
        asks.append(Para(ASK_ORDER, keep=True))
    if d.photo is not None:
        what = d.photo or "the item and its packaging"
        if what.split(" ", 1)[0] not in ("the", "a", "an", "your", "their", "its"):
            what = f"the {what}"
        what = re.sub(r"\b(?:their|his|her)\b", "your", what)
        asks.append(Para(ASK_PHOTO.format(what=what), keep=True))
    if article is not None and not any(article.text in p.text for p in out):
        asks.insert(0, article)
    if offer is not None:
        asks.insert(0, offer)
    if asks:
        out = [p for p in out if p.text.strip() not in _CLOSERS] + asks
    out = shorten(out, d.shorter)
    if d.formal:
        out = formal(out)
    return out


# --------------------------------------------------------------------- the engine's side

VOUCHER_REASON = "Goodwill voucher offered by the representative"
OFFER = "As a goodwill gesture, I'd like to offer you a {amount} voucher."
OFFER_PENDING = ("I've passed it on to a colleague for confirmation, and I'll let you know as "
                 "soon as it's done. Once it's confirmed, the voucher code is sent to the email "
                 "address on your account.")
OFFER_SIGN_IN = ("To add it to your account, I first need to confirm it's you: please use "
                 "\"Sign in to your order\" at the top of this chat (the email address of your "
                 "account and one of your order numbers).")


@dataclass(slots=True)
class Steer:
    """The instructions in force for this draft, for the engine."""

    directives: Directives
    since: int  # position in the conversation's turns of the first one

    @property
    def voucher(self) -> float | None:
        """The voucher asked for (the latest amount named wins)."""
        return self.directives.vouchers[-1] if self.directives.vouchers else None


def steer_of(conv: Conversation, *, max_voucher: float | None = None) -> Steer | None:
    """The representative's instructions in force, or None when there are none."""
    if not conv.instructions:
        return None
    return Steer(merge([t for _, t in conv.instructions], max_voucher=max_voucher),
                 conv.instructions[0][0])


def _offers(conv: Conversation, steer: Steer) -> list[ToolRun]:
    return [r for r in conv.runs(steer.since - 1) if r.name == "issue_voucher"
            and r.arguments.get("reason") == VOUCHER_REASON]


def voucher_call(conv: Conversation, steer: Steer) -> dict[str, object] | None:
    """The ``issue_voucher`` arguments still to propose for the instruction: only for the
    session's verified customer, once per amount, when the tool may be called."""
    amount = steer.voucher
    if amount is None or conv.customer_id is None or conv.limit_reached \
            or "issue_voucher" not in conv.tools:
        return None
    if any(_same(r.arguments.get("amount"), amount) for r in _offers(conv, steer)):
        return None
    return {"user_id": conv.customer_id, "amount": amount, "reason": VOUCHER_REASON}


def _same(value: object, amount: float) -> bool:
    return isinstance(value, int | float) and abs(float(value) - amount) < 0.005


def without_offers(conv: Conversation, steer: Steer) -> Conversation:
    """The conversation without the vouchers proposed for the instruction (the composer
    would word them as the customer's request; :func:`offer` words them)."""
    drop = {id(r) for r in _offers(conv, steer)}
    return replace(conv, turns=[t for t in conv.turns if id(t) not in drop])


def offer(conv: Conversation, steer: Steer) -> Para | None:
    """The paragraph offering the voucher: passed on for confirmation, or (unverified)
    after the customer signs in. Nothing when the shop refused it (the representative
    sees the refusal as the tool's result) or it could not be proposed."""
    amount = steer.voucher
    if amount is None:
        return None
    worth = money(amount)
    if conv.customer_id is None:
        return Para(f"{OFFER.format(amount=worth)} {OFFER_SIGN_IN}", keep=True)
    runs = [r for r in _offers(conv, steer) if _same(r.arguments.get("amount"), amount)]
    if runs and runs[-1].awaiting:
        return Para(f"{OFFER.format(amount=worth)} {OFFER_PENDING}", keep=True)
    return None


def article_para(hit: SearchHit | None) -> Para | None:
    """The relevant article named for the customer, and cited (the shop has no public
    help-centre address to link to, so the agent window shows the link as a source)."""
    if hit is None or hit.kind != "faq":
        return None
    return Para(f"You can read more in our help article \u201c{hit.title}\u201d.", [hit],
                keep=True)
