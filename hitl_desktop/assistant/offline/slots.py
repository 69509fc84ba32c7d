"""Slots: the values a tool needs, read from what the customer wrote.

Order ids in any case or spacing, amounts in any common form (99.99, $99.99,
99.99 USD, "42 bucks", "twenty dollars", "the full amount"), profile values,
and the customer ids a message names (never the session's own business).
Pure functions over the raw text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hitl_desktop.assistant.offline.lexicon import NUMBER_WORDS

_STRICT_ORDER_RE = re.compile(r"\bORD[\s\-_#.:]?(\d{4})\b", re.I)
_LOOSE_ORDER_RE = re.compile(
    r"(?:\b(?:order|ordr|oder|ordre)(?:\s+(?:no\.?|number|nr\.?|num|id))?\s*[#:]?\s*|#)(\d{4})\b",
    re.I,
)
#: a bare number where an order goes ("the backpack from 1003", "something in 1009"), not
#: a year, an amount, a quantity or a street number; read only when no id is written out
_BARE_ORDER_RE = re.compile(
    r"\b(?:from|in)\s+(?:my\s+|the\s+)?(?!19\d\d\b|20\d\d\b)(\d{4})\b(?![.,]\d)"
    r"(?!\s*(?:\$|%|usd\b|dollars?\b|bucks?\b|days?\b|weeks?\b|months?\b|years?\b|hours?\b"
    r"|minutes?\b|times\b|pieces?\b|items?\b|units?\b|km\b|miles?\b|kg\b|lbs?\b|st\b|street\b"
    r"|ave\b|avenue\b|road\b|rd\b|lane\b|ln\b|blvd\b|court\b|ct\b|drive\b|dr\b|way\b|place\b|pl\b))"
    r"(?!\s+[a-z]+\.?\s+(?:st|street|ave|avenue|road|rd|lane|ln|blvd|court|ct|drive|dr|way|place|pl)\b)",
    re.I,
)
_NEGATED_ORDER_RE = re.compile(r"\bnot\s+(?:ORD[\s\-_#]?|#)?(\d{4})\b", re.I)
CORRECTION_RE = re.compile(
    r"\b(?:no wait|sorry|i meant|actually|correction|my bad|scratch that|make (?:it|that)"
    r"|on second thought)\b",
    re.I,
)
_PRODUCT_ID_RE = re.compile(r"\bP(\d{4})\b")
_CUSTOMER_ID_RE = re.compile(r"\bCUST[\s\-_#]?(\d{4})\b", re.I)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d{1,6}(?:[.,]\d{1,2})?"
_MONEY_RE = re.compile(
    rf"(?:\$|\busd\s?|\bus\$\s?)\s?(?P<a>{_NUM})"
    rf"|(?P<b>{_NUM})\s?(?:\$|(?:usd|dollars?|bucks|buck)\b)",
    re.I,
)
_BARE_RE = re.compile(rf"(?<![\w.#-])(?P<n>{_NUM})(?![\w%-]|\.\d)")
_WORD_MONEY_RE = re.compile(
    r"\b(?P<w>(?:(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen"
    r"|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)[\s-]?){1,3})"
    r"(?:dollars?|bucks)\b",
    re.I,
)
_PERCENT_RE = re.compile(r"\d+\s?%|\bpercent\b", re.I)
_FULL_RE = re.compile(
    r"\b(?:the )?(?:full|whole|entire|total|complete) (?:amount|sum|price|order|refund)\b"
    r"|\beverything i paid\b|\ball (?:of )?(?:my|the) money\b|\bfull refund\b|\bin full\b"
    # "refund everything on ORD1003", "refund ORD1003 completo" (mixed languages)
    r"|\brefund\w*\s+(?:me\s+)?(?:for\s+)?(?:everything|all of it|it all)\b"
    r"|\b(?:completo|completa|complet|complète|komplett|vollständig)\b",
    re.I,
)
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"(?<![\w])(\+?\d[\d\s().\-]{5,}\d)(?![\w])")


def order_ids(text: str) -> list[str]:
    """Order ids in the customer's order: ``ORD1001``, ``ord 1001``, ``#1001``, ``ORD-1001``;
    ids the customer says they did not mean ("ORD1008 not ORD1001") are left out."""
    return list(_order_ids(text))


# the engine reads the same message's slots many times a turn (each request, each
# earlier message, each tool round): kept per text, a pure function of it
@functools.lru_cache(maxsize=4096)
def _order_ids(text: str) -> tuple[str, ...]:
    found: list[tuple[int, str]] = []
    for rx in (_STRICT_ORDER_RE, _LOOSE_ORDER_RE):
        found += [(m.start(), "ORD" + m.group(1)) for m in rx.finditer(text)]
    negated = {"ORD" + m.group(1) for m in _NEGATED_ORDER_RE.finditer(text)}
    out: list[str] = []
    for _, oid in sorted(found):
        if oid not in out and oid not in negated:
            out.append(oid)
    if not out:
        out = list(dict.fromkeys("ORD" + m.group(1) for m in _BARE_ORDER_RE.finditer(text)))
    if len(out) > 1 and CORRECTION_RE.search(text):
        out.reverse()  # "it's ORD1012... no wait, it's ORD1011": the last one is meant
    return tuple(out)


def product_ids(text: str) -> list[str]:
    return list(dict.fromkeys("P" + m.group(1) for m in _PRODUCT_ID_RE.finditer(text)))


def customer_ids(text: str) -> list[str]:
    return list(dict.fromkeys("CUST" + m.group(1) for m in _CUSTOMER_ID_RE.finditer(text)))


def _number(raw: str) -> float | None:
    raw = raw.strip()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", raw):
        raw = raw.replace(",", "")
    else:
        raw = raw.replace(",", ".")
    try:
        return round(float(raw), 2)
    except ValueError:
        return None


def _spoken(words: str) -> float | None:
    total = 0
    for w in re.findall(r"[a-z]+", words.lower()):
        n = NUMBER_WORDS.get(w)
        if n is None:
            return None
        total = total * n if n == 100 and total else total + n
    return float(total) if total else None


def _without_ids(text: str) -> str:
    """The text with ids blanked out, so their digits never read as money."""
    for rx in (
        _STRICT_ORDER_RE,
        _LOOSE_ORDER_RE,
        _BARE_ORDER_RE,
        _PRODUCT_ID_RE,
        _CUSTOMER_ID_RE,
        EMAIL_RE,
        _PHONE_RE,
    ):
        text = rx.sub(lambda m: " " * len(m.group(0)), text)
    return text


def amounts(text: str, *, bare: bool = False) -> list[float]:
    """Money amounts with a currency word or sign; with ``bare``, plain numbers too
    ("refund 99.99 on ORD1003": the message is about money, the number is the amount)."""
    return list(_amounts(text, bare))


@functools.lru_cache(maxsize=4096)
def _amounts(text: str, bare: bool) -> tuple[float, ...]:
    clean = _without_ids(text)
    # every currency match holds "$", "usd", "dollar" or "buck" (any case: casefold
    # also folds the two non-ASCII letters IGNORECASE matches here, U+017F and the Kelvin
    # sign): most messages hold none, and the two patterns cost more than the rest
    folded = clean.casefold()
    spoken = "dollar" in folded or "buck" in folded
    money = spoken or "$" in clean or "usd" in folded
    out: list[float] = []
    for m in _MONEY_RE.finditer(clean) if money else ():
        value = _number(m.group("a") or m.group("b"))
        if value is not None:
            out.append(value)
    for m in _WORD_MONEY_RE.finditer(clean) if spoken else ():
        value = _spoken(m.group("w"))
        if value is not None:
            out.append(value)
    if not out and bare:
        for m in _BARE_RE.finditer(_MONEY_RE.sub(" ", clean) if money else clean):
            value = _number(m.group("n"))
            if len(re.sub(r"\D", "", m.group("n"))) < 2:
                continue  # "refund 4 ord1003": a lone digit is a word ("for"), not money
            if value is not None and not re.search(
                rf"{re.escape(m.group('n'))}\s*(?:days?|weeks?|months?|years?|hours?|items?"
                r"|pairs?|packs?|times|x\b|of\b|in\b|cm|mm|l\b|kg)",
                clean[m.start() :],
                re.I,
            ):
                out.append(value)
    if len(out) > 1 and CORRECTION_RE.search(text):
        out.reverse()  # "refund $20... hmm no, make it $30": the last amount is meant
    return tuple(out)


def has_percent(text: str) -> bool:
    return bool(_PERCENT_RE.search(text))


def wants_full_amount(text: str) -> bool:
    return bool(_FULL_RE.search(text))


@dataclass(frozen=True, slots=True)
class ProfileChange:
    field: str  # email | phone | address | name
    value: str | None


_FIELD_WORDS = (
    ("email", r"\b(?:e-?mail|email address|mail address|emial|emal)\b"),
    # "wrong number, it's 503-555-0199": a number with a phone number after it
    ("phone",
     r"\b(?:phone|mobile|cell|telephone|tel)\b|\bnumber\b(?=.{0,20}\+?\d[\d\s().\-]{6,}\d)"),
    ("address", r"\b(?:address|adress|addres|adres|moved|move|street)\b"),
    ("name", r"\b(?:name|surname)\b"),
)


def profile_field(text: str) -> str | None:
    """The profile field a message talks about (the first one mentioned)."""
    low = text.lower()
    best: tuple[int, str] | None = None
    for name, pat in _FIELD_WORDS:
        m = re.search(pat, low.replace("email address", "email"))
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    if best is None and EMAIL_RE.search(text):
        return "email"
    return best[1] if best else None


def profile_change(text: str, field: str | None = None) -> ProfileChange | None:
    """The field to change and its new value if the message gives one; ``field`` is the
    field asked about earlier when this message only gives the value."""
    field = profile_field(text) or field
    if field is None:
        return None
    if field == "email":
        m = EMAIL_RE.search(text)
        return ProfileChange("email", m.group(0) if m else None)
    if field == "phone":
        value = None
        for cand in _PHONE_RE.finditer(text):
            digits = re.sub(r"\D", "", cand.group(1))
            if len(digits) >= 7:
                value = cand.group(1).strip()
                break
        return ProfileChange("phone", value)
    return ProfileChange(field, _value_after(text, field))


def _value_after(text: str, field: str) -> str | None:
    """The text after "to" / "is" / ":" following the field word, or the whole message
    when it is only the value (a follow-up answering "what is the new address?")."""
    key = r"(?:address|adress|addres|adres|moved|move)" if field == "address" else (
        r"(?:name|surname)")
    start = re.search(key + r"\b", text, re.I)
    value: str | None = None
    if start is None and field == "name":
        # "it should be Alex Morgan Reed without the hyphen": the field was asked about before
        start = re.search(r"\b(?=should (?:be|read)\b|is now\b)", text, re.I)
    if start:
        rest = text[start.end() :]
        for marker in (
            r"\bshould (?:be|read)\b",
            r"\bis now\b",
            r"\bto\b",
            r"\bis\b",
            r":",
            r"=|->",
            r"\s-\s",
        ):
            m = re.search(marker + r"\s*(.+)$", rest, re.I | re.S)
            if m:
                value = m.group(1)
                break
    if value is None:
        if field == "address" and re.search(r"^\s*(?:it'?s |its )?\d+\s+\w+", text, re.I):
            value = text
        else:
            return None
    value = re.split(r"(?:\s*[.!?]\s+|\s+(?:please|pls|thanks|thank you|thx)\b|\n)", value)[0]
    value = re.sub(
        r"^(?:it'?s|its|my new (?:address|name) is|the new (?:address|name) is)\s+",
        "",
        value.strip(),
        flags=re.I,
    )
    value = value.strip().strip(".!?,;\"' ")
    if field == "name" and value.islower():
        value = value.title()
    elif field == "name":
        # a name is its capitalised words ("Alex Morgan Reed without the hyphen")
        words = re.match(r"[A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)*", value)
        value = words.group(0) if words else value
    if len(value) < 2 or len(value) > 200 or not re.search(r"[A-Za-z]", value):
        return None
    if field == "address" and not re.search(r"\d", value):
        return None
    return value
