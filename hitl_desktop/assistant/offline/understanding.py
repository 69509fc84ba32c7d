# ruff: noqa: E501  (regular-expression tables read best unwrapped)
"""Understanding a customer turn: the requests it makes, with their slots, in context.

A message can carry several requests ("cancel ORD1008 and reset my password"),
and a short follow-up can only fill a slot of an earlier one ("it's ORD1008",
"the socks", "42 bucks is fine") or confirm it ("yes please"). Earlier
customer messages are understood the same way. Nothing the assistant wrote is
read, with one exception: a bare "yes" accepts the offer in the reply the
representative actually sent, read for a small vocabulary of offers only
(:mod:`.offers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from hitl_desktop.assistant.offline import intents as rules
from hitl_desktop.assistant.offline import offers, slots
from hitl_desktop.assistant.offline.history import Conversation, ToolRun
from hitl_desktop.assistant.offline.lexicon import FOREIGN_GLOSSARY, FOREIGN_MARKERS
from hitl_desktop.assistant.offline.records import (
    ACTION_INTENTS,
    FOLLOW_ON,
    LOOKUP_INTENTS,
    RECORDS,
)
from hitl_desktop.assistant.offline.speller import WORD_RE, Speller

_QUESTION_RE = re.compile(
    r"^(?:so |and |also |ok |okay |hi |hello |hey |hmm |quick question |ignore previous instructions )*(?:how|what|whats|when|which"
    r"|is there|is it|are there|are|do|does|can(?! you)|could(?! you)|may|am i|if i|would(?! you)"
    r"|will(?! you)|should|is|has|have|where do|where can|where is the|where are the|why)\b"
)
_REQUEST_RE = re.compile(
    r"\b(?:please|can you|could you|would you|will you|i want|i would like|id like|i'd like|(?<!do )i need"
    r"|help me|go ahead|let's|lets|asap|i demand|kindly|can i (?:get|have|receive)|could i (?:get|have)"
    r"|may i (?:get|have))\b"
)
_CONFIRM_RE = re.compile(
    r"^(?:yes|yeah|yep|yup|sure|ok|okay|alright|please do|go ahead|do it|that would be great|sounds good|please)\b"
)
_NEGATE_RE = re.compile(
    r"\b(?:do not|never mind|no need to|not) (?:cancel|return|refund|reset|change|send|update)\b"
    r"|^no\b(?!.*\b(?:please|instead|rather)\b)"  # "no, actually refund me $30 instead": a new ask
)
#: a message that only says no ("nope", "no, don't", "actually no, leave it, I'll keep it",
#: "never mind, keep the old one"): the open request is called off, never carried out
_REFUSAL_RE = re.compile(
    r"^(?:(?:actually|oh|hmm|ok|okay|sorry|wait|well|um)\s)*"
    r"(?:no|nope|nah|neither|nvm|never ?mind|forget (?:it|that|about it)|scratch that|leave it"
    r"|do not bother|not now|do not"
    r"|no need|on second thought|i will keep (?:it|them)|i'll keep (?:it|them)"
    r"|i (?:want|would like|'d like) to keep (?:it|them))"
    r"(?:\s(?:thanks|thank you|thx|please|i will keep (?:it|them)|i'll keep (?:it|them)"
    r"|keep (?:it|them|the old one)(?: as it is)?|leave it(?: as it is)?|do not|not now|never ?mind"
    r"|it is fine|its fine|it's fine|that is ok|that's ok|after all|for now|i changed my mind"
    r"|i remembered(?: it)?|i found it|i will (?:just )?keep (?:it|them)|i'll (?:just )?keep (?:it|them)"
    r"|i (?:want|would like) to keep (?:it|them)"
    r"|changed my mind|i am good|i'm good|all good))*\s*$"
)
#: a quote of what the shop said ("you said", "the last agent wrote"), not a text to repeat
_ATTRIBUTED_RE = re.compile(
    r"\b(?:you|your (?:colleague|agent|team|rep\w*|email|message)|the (?:last |other )?"
    r"(?:agent|colleague|rep\w*|email|message|bot))\s+(?:said|wrote|told me|say|says|promised)\b",
    re.I)
#: a refusal that takes back what was asked, not a "no" to "anything else?"
_WITHDRAW_RE = re.compile(
    r"\b(?:never ?mind|nvm|changed my mind|second thought|keep (?:it|them)|remembered|found it"
    r"|scratch that)\b")
_MORE_RE = re.compile(r"\btell me more\b|\bmore (?:info|information|details)\b|\bhow does that work\b|\bhow that works\b|\bexplain\b")
_FOLLOW_RE = re.compile(r"^(?:and|what about|how about|what if|hmm|so|ok and|also)\b")
_SAME_RE = re.compile(
    r"\b(?:do (?:that|the same|it)|same)\b.*\b(?:too|as well|also)\b|\bthe same for\b"
    r"|^(?:and|also|plus) (?:the|my|that|those) [a-z]+(?: [a-z]+)? (?:too|as well)$"  # "and the backpack too"
)
#: a follow-up that names the thing it is about ("and the backpack too": not the socks again)
_NAMES_THING_RE = re.compile(r"\b(?:the|my|that|those)\s+(?!same\b|order\b)[a-z]{3,}")
_PRONOUN_RE = re.compile(r"\b(?:it|that|this|them|those|the order|that order|this order)\b")
_INJECTION_RE = re.compile(
    r"ignore (?:all |your |the |any )?(?:previous |prior |above |earlier )?(?:instructions|rules|prompts?)"
    r"|ignore the above|no limits|without limits|(?:no|without) restrictions|unrestricted|override"
    r"|system (?:override|prompt)|developer mode|admin mode|\bdan\b|jailbreak|\bpretend\b|disregard"
    r"|forget (?:your|the|all|about) (?:rules|instructions|guidelines)|as the (?:store )?(?:manager|admin|owner)"
    r"|i'?m the developer|</?(?:user|system|developer|assistant)>|\{\s*\"|mark it approved|approve (?:it|every|all)"
    r"|repeat after me|print your|list your tools|^\s*system\s*:|maintenance mode"
    r"|\b(?:reply|respond|answer) (?:only )?with (?:the word|only|just)\b|<!--"
    r"|</?(?:tool_?call|function_?call|tool|function)\b"
    r"|\[(?:system|admin|developer|assistant)\]",
    re.I,
)
#: asking about other people's accounts without naming a customer id ("the phone number
#: on file for Priya Shah", "every order in the database")
_OTHERS_RE = re.compile(
    r"\b(?:every|all|other) (?:customers?|users?|accounts?)\b|\bother (?:customer|user|person)'?s\b"
    r"|\b(?:every|all(?: the)?) orders? (?:in|of) (?:the|your) (?:database|system|shop|store)\b"
    r"|\bon file for (?!(?:me|my|us|our|myself)\b)\w+",
    re.I,
)
#: another person named with their details ("Jonas Weber's phone number", "what did Alex
#: Morgan buy"): case-sensitive, a name is two capitalised words
_NAMED_OTHER_RE = re.compile(
    r"\b[A-Z][a-z]+ [A-Z][a-z]+(?:'s|s') (?:\w+ )?(?:phone|number|email|e-mail|address|orders?"
    r"|account|details|password|purchases)\b"
    r"|\b(?:what|which \w+) (?:did|has) [A-Z][a-z]+ [A-Z][a-z]+ (?:buy|bought|order|ordered|purchase)"
    r"|\b(?:does|did|has) [A-Z][a-z]+ [A-Z][a-z]+ (?:have|has|order|ordered|buy|bought|placed)\b"
    r"|\b(?:whoever|the person who|the customer who|someone who) (?:ordered|placed|bought|made)\b"
    # "Kenji's tracking number": one name will do with a possessive and their details
    r"|\b(?!(?:It|That|What|There|Here|He|She|Who|Where|Let|This|Today|Everyone|Nobody)\b)"
    r"[A-Z][a-z]+(?:'s|s') (?:\w+ )?(?:phone|email|e-mail|address|orders?|account|details"
    r"|password|tracking)\b"
)
_QUOTED_RE = re.compile(r"<!--.*?-->|<(\w+)>.*?</\1>|</?\w+>|(?<!\w)'[^']{12,}'(?!\w)|(?<!\w)\"[^\"]{12,}\"(?!\w)|\{.*\}", re.S)
_CLAUSE_RE = re.compile(
    r"(?<=[.!?;])\s+|\s+(?:and also|also|plus|and then|then|btw|by the way|oh and|and)\s+"
    r"(?=(?:can|could|would|please|i|my|how|what|when|where|is|do|send|cancel|reset|change|update"
    r"|give|list|show|refund|return|track|tell|whats|what's)\b)|,\s+(?:also|and)\s+"
    # "3 questions: do you ship to canada, how long do refunds take, ...": one per question
    r"|[,:]\s+(?=(?:how|what|whats|what's|when|where|why|which|do|does|can i|could i|is|are)\b)"
)
_STATUS_WORDS = re.compile(r"\b(?:where|when|has not|have not|not (?:arrived|received|yet)|still|status|yet)\b")
DAMAGE_WORDS = re.compile(r"\b(?:damaged?|broken|broke|defective|faulty|cracked|shattered|smashed|ripped|torn|scratched|dented|chipped|holes?|frayed|dead|wrong|stain\w*|junk|not working|tears?|rips?|cracks?|crackl\w*|buzz(?:es|ing)?|rattl\w*|flicker\w*|stopped (?:working|charging)|not charging)\b")


@dataclass(frozen=True, slots=True)
class Request:
    """One thing the customer asks for, with what they said about it."""

    intent: str
    clause: str  # the customer's words for it (for tickets, reasons and search)
    order_id: str | None
    own_order: bool  # the id was given in this turn (not carried from earlier)
    product_words: str  # text to match the order's products against
    amount: float | None
    full_amount: bool
    percent: bool
    question: bool  # asked as a policy question: answer, do not act
    since: int  # turn index of the message it came from (its tools run after it)
    reports_damage: bool = False
    profile: slots.ProfileChange | None = None
    complaint_type: str = "other"
    negated: bool = False
    #: "yes" to the representative's "which one would you like me to cancel?", or orders
    #: named as alternatives: what to ask for again ("order", "product", "amount"); nothing
    #: is done
    again: str = ""
    #: "cancel ORD1001 or ORD1008, not sure which": the orders the customer chooses between
    choices: tuple[str, ...] = ()


@dataclass(slots=True)
class Understanding:
    """The latest customer turn, understood in context."""

    text: str
    norm: str
    requests: list[Request]
    topics: list[str]  # intents to search for, first = the article to open first
    confirm: bool = False
    more: bool = False
    foreign: bool = False
    injection: bool = False
    other_customer: bool = False
    social: list[str] = field(default_factory=list)  # greeting / thanks


@dataclass(frozen=True, slots=True)
class _Parsed:
    text: str
    norm: str
    intents: list[str]
    clauses: dict[str, str]
    question: dict[str, bool]
    raw: str = ""  # as written (profile values such as an email address live here)


def is_foreign(text: str) -> bool:
    low = text.lower()
    words = re.findall(r"[^\W\d_]+", low)
    marks = sum(w in FOREIGN_MARKERS for w in words)
    accents = bool(re.search(r"[¿¡ñäöüßçàèéêœ]", low))
    return (accents and marks >= 1) or (marks >= 2 and marks * 2 >= len(words))


def english_words(text: str) -> str:
    """The message with the glossary's foreign words put in English (for searching)."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    return " ".join(FOREIGN_GLOSSARY.get(w, w) for w in words)


def _clean(text: str) -> str:
    """What the customer asks, without quoted text or pasted markup (not requests)."""
    # a quoted sentence stands as "that" ('"ships in 1 day" is too slow, just cancel it' is
    # no question starting with "is"); pasted markup goes
    return slots.EMAIL_RE.sub(" ", _QUOTED_RE.sub(
        lambda m: " that " if m.group(0)[:1] in "\"'" else " ", text))


#: intents asked for several orders at once ("cancel ORD1001 and ORD1008"): one request each
_PER_ORDER_INTENTS = ("cancel", "tracking", "missing")
#: orders named as alternatives ("ORD1001 or ORD1008", "either ...", "not sure which",
#: "one of ...", "whichever"): one request that asks which, not one per order
_EITHER_RE = re.compile(
    r"\b(?:either|whichever|not sure which|(?:do not|don't|dont) know which|one of)\b"
    r"|\d\s*,?\s+or\s+(?!rather\b|actually\b|i mean\b|wait\b)(?:ord|order|#|\d)", re.I)
#: several orders meant together ("ORD1001 and ORD1008", "both", "all of them")
_BOTH_RE = re.compile(r"\b(?:and|both|all|each|plus)\b|&", re.I)


def _alternatives(clause: str) -> tuple[str, ...]:
    """The orders a clause names as alternatives, one to be chosen (none if it names
    fewer than two, names them together, or corrects one by the other)."""
    ids = slots.order_ids(clause)
    if len(ids) < 2 or slots.CORRECTION_RE.search(clause) or not _EITHER_RE.search(clause) \
            or _BOTH_RE.search(clause):
        return ()
    return tuple(ids)


#: a follow-up that points back at what was asked before ("how long does it take to get there")
_POINTS_BACK_RE = re.compile(r"\b(?:there|it|that|this|them|those)\b")

#: "sorry typo, it should be alex@b.example": a corrected value for what was just proposed
_CORRECTS_RE = re.compile(
    r"\b(?:typo|i meant|should (?:be|read|have been)|correction|my bad|make (?:it|that))\b")

_WONDER_RE = re.compile(
    r"\b(?:(?:like|want) to know|wondering|is it possible|would it be possible|do you know)\b"
    r"|\bif i (?:do not|don't|did not|change|decide|want)\b|^what if\b|\bwhat happens if\b"
    r"|\bpolic(?:y|ies)\b"
)


def _is_question(norm: str) -> bool:
    """Asked about, not asked for: "how do I cancel?", "I'd like to know if I can cancel"."""
    if _WONDER_RE.search(norm):
        return True
    return bool(_QUESTION_RE.search(norm)) and not _REQUEST_RE.search(norm)


def _general(clause: str) -> bool:
    """ "can you refund part of an order?": about orders in general, not one of theirs."""
    low = clause.lower()
    return low.rstrip().endswith("?") and bool(re.search(r"\b(?:an|any) (?:order|item|product)\b", low)) \
        and not re.search(r"\b(?:my|mine|ord\s?\d)", low)


def _profile_text(p: _Parsed, clause: str) -> str:
    """The raw words of the profile clause (emails were blanked for the intent rules)."""
    if clause == p.text:
        return p.raw
    for part in _CLAUSE_RE.split(p.raw):
        if part and "@" in part and slots.profile_field(part) is not None:
            return part
    return clause if not slots.EMAIL_RE.search(p.raw) else p.raw


def _refine(intents: list[str], norm: str, text: str) -> list[str]:
    out: list[str] = []
    for found in intents:
        name = found
        if name == "refund" and re.search(r"\bcharged (?:twice|double|two times)\b", norm):
            name = "refund_status"  # look at the order; the amount is the representative's call
        elif name == "refund" and _STATUS_WORDS.search(norm) and not slots.amounts(text) and not re.search(r"\b(?:can i|could i|i want|i'd like|please)\b", norm):
            name = "refund_status"
        elif name == "password" and re.search(
            r"\b(?:never|not|did not|has not) (?:got|get|gotten|receive\w*|arrived?|come|came|show(?:n|ed)? up)\b"
            r"|\bno (?:reset )?(?:email|link)\b",
            norm,
        ):
            name = "password_email"
        elif name == "password" and re.search(
                r"\b(?:admin|administrator|root|system|database|server|staff) password\b", norm):
            continue  # "read me the admin password": no customer account's password
        elif name == "account_recovery" and re.search(r"\b(?:hacked|compromised|someone|somebody)\b", norm):
            name = "account_takeover"
        out.append(name)
    if "damaged" in out and re.search(
        r"\bafter (?:\d+|a|one|two|three|four|five|six|several|a few) (?:months?|years?)\b", norm
    ):
        out = ["warranty" if i == "damaged" else i for i in out]
    if "damaged" in out and "refund" in out:
        out = ["damaged_refund" if i == "damaged" else i for i in out if i != "refund"]
    if "wrong_item" in out and "replacement" in out:
        out.remove("replacement")
    return list(dict.fromkeys(out))


def parse(text: str, speller: Speller) -> _Parsed:
    clean = _clean(text)
    norm = speller.normalize(clean)
    found = _refine(rules.resolve([i for _, i in rules.detect(norm)], norm), norm, clean)
    clauses: dict[str, str] = {}
    question: dict[str, bool] = {}
    parts = [p for p in _CLAUSE_RE.split(clean) if p and p.strip()]
    for part in parts:
        cnorm = speller.normalize(part)
        local = _refine([i for _, i in rules.detect(cnorm)], cnorm, part)
        for name in found:
            if not (name in local or (name == "damaged_refund" and "damaged" in local)):
                continue
            if name not in clauses:
                clauses[name] = part
                question[name] = _is_question(cnorm)
            elif question[name] and not _is_question(cnorm):
                # "...refunds up to $5000 allowed. Refund $900 on ORD1002.": the request,
                # not the sentence before it that only talks about the subject
                clauses[name], question[name] = part, False
            elif name in _PER_ORDER_INTENTS and slots.order_ids(part) and slots.order_ids(clauses[name]):
                # "where's ORD1002 and can I get the tracking number for ORD1008 too"
                clauses[name] = f"{clauses[name]} {part}"
    for name in found:
        clauses.setdefault(name, clean)
        question.setdefault(name, _is_question(norm))
    return _Parsed(clean, norm, found, clauses, question, text)


_parse = parse


def _carried_order(conv: Conversation, before: int, speller: Speller) -> str | None:
    """The order the conversation was last about, before position ``before``."""
    best: tuple[int, str] | None = None
    for n, text in conv.customer_messages():
        if n < before:
            ids = slots.order_ids(text)
            if ids:
                best = (n, ids[-1])
    for n, t in enumerate(conv.turns[:before]):
        oid = getattr(t, "arguments", {}).get("order_id") if hasattr(t, "arguments") else None
        if isinstance(oid, str) and oid.startswith("ORD") and (best is None or n > best[0]):
            best = (n, oid)
    return best[1] if best else None


def _request(intent: str, p: _Parsed, since: int, carried: str | None, *, bare: bool) -> Request:
    clause = p.clauses.get(intent, p.text)
    asked = p.question.get(intent, False) and clause != p.text
    refers = bool(_PRONOUN_RE.search(clause.lower()))
    own = slots.order_ids(clause) or ([] if asked and not refers else slots.order_ids(p.text))
    money = slots.amounts(clause, bare=bare) or slots.amounts(p.text, bare=bare)
    if money and len(slots.amounts(p.text, bare=bare)) > 1 and slots.CORRECTION_RE.search(p.text):
        money = slots.amounts(p.text, bare=bare)  # "refund $20... no, make it $30": the last
    cnorm = p.norm
    profile = slots.profile_change(_profile_text(p, clause)) if intent == "profile" else None
    if profile is not None and not profile.value:
        profile = slots.profile_change(p.raw, profile.field) or profile
    pointed = bool(carried) and bool(_PRONOUN_RE.search(clause.lower()))
    # "can I return the tracker from ORD1008": about one of their orders, a request
    may_i = bool(carried or slots.order_ids(clause)) and intent in ACTION_INTENTS and bool(
        re.match(r"^(?:so |ok |okay )?(?:can|could|may) i\b", cnorm)) and not _general(clause)
    # "whats taking so long with ORD1013": the answer is in the order, look it up
    question = (p.question.get(intent, False) or _general(clause)) \
        and not (profile is not None and profile.value) and not may_i \
        and not (intent in LOOKUP_INTENTS and bool(slots.order_ids(clause)))
    # "cancel ORD1001 or ORD1008, not sure which": neither is acted on, the draft asks which
    choices = _alternatives(clause) if intent in ACTION_INTENTS and not question \
        and "order" in RECORDS[intent].needs else ()
    return Request(
        intent=intent, clause=clause.strip(),
        order_id=None if choices else own[0] if own else carried,
        own_order=(bool(own) or pointed) and not choices, product_words=clause, amount=money[0] if money else None,
        full_amount=slots.wants_full_amount(p.text), percent=slots.has_percent(p.text),
        question=question,
        since=since,
        reports_damage=bool(DAMAGE_WORDS.search(cnorm)),
        profile=profile,
        complaint_type=rules.complaint_type(cnorm) if intent == "complaint" else "other",
        negated=bool(_NEGATE_RE.search(cnorm)) and intent in ACTION_INTENTS,
        again="order" if choices else "",
        choices=choices,
    )


_KEEP_RE = re.compile(r"\b(?:but )?(?:keep|except|apart from|not)\b", re.I)


def _per_order(reqs: list[Request]) -> list[Request]:
    """ "cancel ORD1001 and ORD1008": one request per order (not the ones to keep)."""
    out: list[Request] = []
    for r in reqs:
        ids = slots.order_ids(r.clause) if r.intent in _PER_ORDER_INTENTS else []
        keep = _KEEP_RE.search(r.clause)
        if keep:
            ids = [i for i in ids if i not in slots.order_ids(r.clause[keep.start():])]
        if len(ids) > 1 and not slots.CORRECTION_RE.search(r.clause) \
                and not (r.intent in ACTION_INTENTS and _alternatives(r.clause)):
            # "cancel ORD1001 or ORD1008": one, asked which (looking both up is harmless)
            out += [replace(r, order_id=oid, own_order=True) for oid in ids]
        else:
            out.append(r)
    return out


def _by_product(conv: Conversation, req: Request) -> Request:
    """ "the jacket one" after a list of orders: the one listed order with that product."""
    if req.order_id is not None or "order" not in RECORDS[req.intent].needs:
        return req
    shown = any(isinstance(t, ToolRun) and t.name == "get_order_history"
                for t in conv.turns[:conv.latest_index])
    if not shown:  # the customer has not seen their orders yet: ask, do not guess
        return req
    rows = conv.order_history() or []
    words = {w.rstrip("s") for w in re.findall(r"[a-z]{3,}", req.product_words.lower())}
    words -= {"the", "one", "and", "order", "item", "product", "set", "pack"}
    hits = [str(o.get("order_id")) for o in rows
            if words & {w.rstrip("s") for p in o.get("products") or []
                        for w in re.findall(r"[a-z]{3,}", str(p).lower())}]
    return replace(req, order_id=hits[0], own_order=True) if len(hits) == 1 else req


def _fulfilled(conv: Conversation, req: Request, before: int) -> bool:
    """Was the request's last tool called after it was made and before ``before`` (calls
    made during the current turn mean its chain is still running)?"""
    tools = RECORDS[req.intent].tools
    return bool(tools) and any(
        isinstance(t, ToolRun) and t.name == tools[-1] and req.since < n < before
        for n, t in enumerate(conv.turns))


def _merge(earlier: Request, p: _Parsed, since: int, *, same: bool) -> Request:
    """An earlier request completed by a follow-up that only gives slots."""
    own = slots.order_ids(p.text)
    money = slots.amounts(p.text, bare=True)
    profile = earlier.profile
    if earlier.intent == "profile":
        # "yes" to "shall I update your email to ...?": the value asked about stays
        given = slots.profile_change(p.raw, profile.field if profile else None)
        profile = given if given is not None and given.value else profile
    return replace(
        earlier,
        order_id=own[0] if own else earlier.order_id,
        own_order=bool(own) or earlier.own_order,
        product_words=p.text if same and _NAMES_THING_RE.search(p.norm) else f"{p.text} {earlier.product_words}",
        amount=money[0] if money else earlier.amount,
        full_amount=slots.wants_full_amount(p.text) or earlier.full_amount,
        question=False,
        since=since if same else earlier.since,
        reports_damage=earlier.reports_damage or bool(DAMAGE_WORDS.search(p.norm)),
        profile=profile,
        # "ORD1008 please" after "cancel ORD1001 or ORD1008?": chosen, nothing to ask
        again="" if own and earlier.choices else earlier.again,
        choices=() if own else earlier.choices,
    )


def _accepted(offer: offers.Offer, intent: str, p: _Parsed, carried: str | None) -> Request:
    """The action of the sent offer the customer said yes to: its order, products and
    amount are the offer's (the customer's own amount or products in the "yes" added);
    the planner checks it as any request."""
    own = slots.order_ids(offer.text)
    money = slots.amounts(p.text, bare=True) or slots.amounts(offer.text)
    profile = None
    if intent == "profile":  # "yes" to "shall I update your email to a@b.example?"
        profile = slots.profile_change(offer.text)
        given = slots.profile_change(p.raw, profile.field if profile else None)
        profile = given if given is not None and given.value else profile
    return Request(
        intent=intent, clause=f"Accepted the offer \u201c{offer.text}\u201d", order_id=own[0] if own else carried,
        own_order=True, product_words=f"{offer.text} {p.text}",
        amount=money[0] if money and intent in ("refund", "voucher") else None,
        full_amount=slots.wants_full_amount(offer.text) or slots.wants_full_amount(p.text),
        percent=slots.has_percent(offer.text), question=False, since=offer.at,
        reports_damage=bool(DAMAGE_WORDS.search(offer.text.lower())), profile=profile)


#: the actions whose "which order / product / how much?" a draft asks again
_ASKED_AGAIN = frozenset({"cancel", "return", "refund", "replacement", "damaged_refund"})


#: how many customer messages' parses an engine keeps (``understand``'s ``memo``)
PARSE_MEMO_LIMIT = 4096


def understand(conv: Conversation, speller: Speller,
               memo: dict[str, _Parsed] | None = None) -> Understanding:
    """The latest customer message's requests, completed from earlier turns.

    ``memo`` keeps each message's parse (a pure function of its text and the speller)
    across calls: every tool round of a reply, and every later turn, reads the same
    customer messages again."""

    def parse(text: str, speller: Speller) -> _Parsed:
        if memo is None:
            return _parse(text, speller)
        hit = memo.get(text)
        if hit is None:
            hit = _parse(text, speller)
            if len(memo) >= PARSE_MEMO_LIMIT:
                memo.clear()
            memo[text] = hit
        return hit

    latest_at = conv.latest_index
    text = conv.latest
    foreign = is_foreign(text)
    p = parse(english_words(text) if foreign else text, speller)
    carried = _carried_order(conv, latest_at, speller)
    injection = bool(_INJECTION_RE.search(text))  # searched once: the dearest pattern here
    if not injection and not slots.order_ids(p.text):
        # 'you wrote "ORD1002 can still be cancelled", so cancel it': the quoted order is
        # what the message is about (the quote itself is not a request)
        carried = next(iter(slots.order_ids(text)), carried)
    money_talk = bool(set(p.intents) & {"refund", "voucher", "damaged_refund"})
    reqs = [_request(i, p, latest_at, carried, bare=money_talk) for i in p.intents
            if RECORDS[i].reply != "social"]
    social = [i for i in p.intents if RECORDS[i].reply == "social"]
    u = Understanding(text, p.norm, reqs, [r.intent for r in reqs], foreign=foreign,
                      injection=injection, social=social)
    named_other = bool(_NAMED_OTHER_RE.search(text))
    u.other_customer = any(c != conv.customer_id for c in slots.customer_ids(text)) or bool(
        _OTHERS_RE.search(text)) or named_other
    if named_other and "privacy" not in u.topics:
        u.topics.insert(0, "privacy")  # whose data we share is the privacy article's subject
    u.more = bool(_MORE_RE.search(p.norm))
    acting = [r for r in reqs if r.intent in ACTION_INTENTS or r.intent in ("missing", "tracking")]
    gives_slot = bool(slots.order_ids(text) or slots.amounts(text, bare=True) or slots.EMAIL_RE.search(text)
                      or slots.wants_full_amount(text) or len(p.norm.split()) <= 6
                      or bool(_CORRECTS_RE.search(p.norm)))  # "it should be Alex Morgan Reed"
    refusal = not acting and bool(_REFUSAL_RE.search(p.norm))
    u.confirm = bool(_CONFIRM_RE.search(p.norm)) and not acting
    same = bool(_SAME_RE.search(p.norm))
    # the last three earlier messages, parsed (not all of them, then three kept: with more
    # sessions' messages than the memo holds, every turn parsed its session's whole
    # history again, and a draft's cost grew with the conversation: issue 18)
    last_three = [(n, t) for n, t in conv.customer_messages() if n < latest_at][-3:]
    earlier = [(n, parse(t, speller)) for n, t in last_three]
    same = bool(_SAME_RE.search(p.norm))
    asks = _is_question(p.norm) and not u.confirm and not same
    # the reply the customer answers: a bare "yes" accepts the one action it offers; a
    # reply that offers nothing turns no finished request into its follow-on
    offer = offers.offered(conv, latest_at) if u.confirm and not refusal else None
    follow_on = offer is None or offer.asks
    if offer is not None and offer.intent is not None and not asks and not same:
        u.requests = [_accepted(offer, offer.intent, p, carried)] + [
            r for r in reqs if r.intent != offer.intent]
        u.topics = [r.intent for r in u.requests]
    elif offer is not None and offer.which and len(p.norm.split()) <= 3 and not (
            slots.order_ids(text) or slots.amounts(text, bare=True)):
        # "yes" to "which one would you like me to cancel?": no answer, nothing done; the
        # question is asked again (of the action it names, else the one asked for before)
        intent = next(iter(offer.asked), None) or next(
            (i for _, ep in reversed(earlier) for i in ep.intents if i in ACTION_INTENTS), None)
        if intent in _ASKED_AGAIN:
            u.requests = [Request(intent, p.text, carried, False, p.text, None, False, False,
                                  False, latest_at, again=offer.which)]
            u.topics = [intent]
    elif (not acting and not asks and not refusal and (gives_slot or u.confirm or same)
            and social[:1] != ["thanks"]):
        for n, ep in reversed(earlier):
            ecarried = _carried_order(conv, n, speller)
            bare = bool(set(ep.intents) & {"refund", "voucher", "damaged_refund"})
            cands = [_request(i, ep, n, ecarried, bare=bare) for i in ep.intents
                     if i in ACTION_INTENTS or i in ("missing", "tracking")]
            cands = [c for c in cands if not c.negated and (u.confirm or not c.question)]
            if not cands:
                continue
            out: list[Request] = []
            for cand in cands:
                c, done = cand, _fulfilled(conv, cand, latest_at)
                if done and u.confirm and follow_on and c.intent in FOLLOW_ON:
                    c = replace(c, intent=FOLLOW_ON[c.intent], since=latest_at)
                    done = False
                if done and not same and not slots.order_ids(text) and not _CORRECTS_RE.search(p.norm):
                    continue
                out.append(_merge(c, p, latest_at, same=same or done))
            if out:
                u.requests = out + [r for r in reqs if r.intent not in {o.intent for o in out}]
                u.topics = [r.intent for r in u.requests]
                break
    if refusal:  # "nope" to "shall I send a reset link?": called off, not carried out
        for n, ep in reversed(earlier):
            acts = [i for i in ep.intents if i in ACTION_INTENTS]
            if acts:
                was = _request(acts[0], ep, n, _carried_order(conv, n, speller), bare=False)
                # not "no" to "anything else?"; but "never mind, I'll keep it" after the
                # proposal withdraws it (the representative has not approved it yet)
                if not _fulfilled(conv, was, latest_at) or _WITHDRAW_RE.search(p.norm):
                    u.requests = [replace(was, negated=True, question=False, since=latest_at)]
                    u.topics = [acts[0]]
                break
    if not u.requests and not social and not u.injection and not u.other_customer \
            and slots.order_ids(text):
        oid = slots.order_ids(text)[0]  # "ORD1002" on its own: what is its status?
        u.requests = [Request("tracking", text.strip(), oid, True, text, None, False, False,
                              False, latest_at)]
        u.topics = ["tracking"]
    if not p.intents and not u.injection and not social and _ATTRIBUTED_RE.search(text):
        # 'you said "you'll receive a prepaid return label", it's been 3 days': what the quote
        # is about is the topic (never a request: the customer did not ask for it)
        quoted = " ".join(m.group(0).strip("\"'") for m in _QUOTED_RE.finditer(text))
        said = [i for i in parse(quoted, speller).intents if RECORDS[i].reply != "social"] \
            if quoted else []
        u.topics = list(dict.fromkeys(said + u.topics))
    u.requests = [_by_product(conv, r) for r in _per_order(u.requests)]
    before = earlier[-1][1].intents if earlier else []
    if not u.topics and (u.more or _FOLLOW_RE.search(p.norm) or not p.intents):
        u.topics = [i for i in before if RECORDS[i].reply != "social"]
    elif u.topics and (_FOLLOW_RE.search(p.norm) or _POINTS_BACK_RE.search(p.norm)):
        info = [i for i in before if RECORDS[i].reply == "info"]
        if info and all(RECORDS[i].reply == "info" for i in u.topics):
            # "and internationally?" after shipping: its own topic first; "how long does it
            # take to get there" after "do you ship to Japan?": the earlier, narrower topic
            # the new one gives way to (shipping -> international)
            narrower = [e for e in info for t in u.topics
                        if e != t and rules.resolve([t, e], p.norm) == [e]]
            u.topics = list(dict.fromkeys(narrower + u.topics + info))
    return u


def words_of(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())
