# ruff: noqa: E501  (regular-expression tables read best unwrapped)
"""Understanding customer messages without a model: intents and slots.

Pure functions (no I/O), so every rule is unit-testable. The offline engine
uses them to decide what to search and which tool the OpenAI path would call.
Rules are deliberately plain keyword patterns over a typo-corrected text: they
are predictable for the representative, and measured on
``tests/data/offline_labelled.jsonl``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hitl_desktop.knowledge.text import edit_distance_le

# ----------------------------------------------------------------------------- lexicon

#: Words the intent rules rely on; misspellings within a small edit distance of
#: one of them are corrected before matching ("cancle" -> "cancel").
LEXICON: frozenset[str] = frozenset(
    """
    cancel cancelled cancellation cancelling return returns returning returned refund refunds
    refunded money back reimburse replacement replace replaced exchange swap damaged damage
    broken defective faulty cracked shattered smashed ripped torn scratched dented working
    shipping shipped delivery deliver delivered arrive arrived arriving package parcel
    tracking track where order orders history previous past purchases status password
    forgot reset change update login locked account email address phone number name voucher
    coupon discount code complaint complain unhappy disappointed terrible awful horrible
    international abroad overseas countries country customs payment methods paypal visa
    mastercard amex apple google card pay hours open weekend saturday sunday privacy data
    delete warranty guarantee website checkout crash error bug app late delayed lost missing
    never received wrong stolen support contact human agent person representative supervisor
    manager express standard free cost costs long days week still yet receive
    """.split()  # noqa: SIM905
)

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STRICT_ORDER_RE = re.compile(r"\bORD[\s\-_#]?(\d{4})\b", re.I)
_LOOSE_ORDER_RE = re.compile(
    r"(?:\border(?:\s+(?:no\.?|number|nr\.?|num|id))?\s*[#:]?\s*|#)(\d{4})\b", re.I
)
_PRODUCT_ID_RE = re.compile(r"\bP(\d{4})\b", re.I)
_MONEY_RE = re.compile(
    r"(?:\$|usd\s?)\s?(\d{1,5}(?:[.,]\d{1,2})?)|(\d{1,5}(?:[.,]\d{1,2})?)\s?(?:\$|(?:usd|dollars?|bucks)\b)",
    re.I,
)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"(?<![\w])(\+?\d[\d\s().\-]{5,}\d)(?![\w])")


_COMMON: frozenset[str] = frozenset(
    """
    the and for you your with this that have has had was were are can could would should
    will not but what when how why who which there their they them then than from into
    about just like want need help please thanks thank some more most very also only still
    does did done dont didnt cant wont its it's i'm ive been being get got make made take
    took give gave send sent come came know let lets tell told said says look see seen ago
    day days week weeks month months time today yesterday item items thing things stuff
    back order orders my me our us hi hey hello dear all any one two out off over here
    now new old good bad last first next same other another sure okay sorry hope know
    list lust lost most post past fast cast case cash care card cart part port sort fort
    word work worth world wall well will bill fill full pull push rush must mist miss
    hand hard held help hold home hope hour your four fore form from fame game name same
    shop ship shoe show slow snow stop step shot spot spat data date gate late lane line
    mine nine fine five life like bike mike make made mode more move love live give gave
    dress press price prise print paint point joint about above again along among could
    email mail phone place plane plans think thing three there these those where while
    which whole whose would write wrote wrong right light night might sight size color
    colour small large medium pair pairs socks jacket lamp pillow pillows speaker bottle
    backpack blanket headphones tracker knife mat lantern tote mug coffee set ordered
    number today tomorrow street road avenue lane city already arrives called sorry
    morning evening afternoon actually instead maybe really since because though
    """.split()  # noqa: SIM905
)


_KNOWN: set[str] = set()
_SUFFIXES = ("s", "es", "ed", "d", "ing", "al", "er", "ers", "ly", "y")


def learn_vocabulary(words: Iterable[str]) -> None:
    """Remember words known to be spelt correctly (e.g. the knowledge base's own
    vocabulary) so they are never "corrected" into a lexicon word."""
    _KNOWN.update(w for w in words if w.isalpha() and len(w) >= 5)
    _correct_cached.cache_clear()


def _is_known(word: str) -> bool:
    if word in LEXICON or word in _COMMON or word in _KNOWN:
        return True
    return any(
        word.endswith(suf) and (word[: -len(suf)] in LEXICON or word[: -len(suf)] in _KNOWN)
        for suf in _SUFFIXES
    )


def correct_word(word: str) -> str:
    """The lexicon word a misspelt ``word`` most likely means, else ``word``."""
    if len(word) < 5 or not word.isalpha() or _is_known(word):
        return word
    return _correct_cached(word)


@functools.lru_cache(maxsize=4096)
def _correct_cached(word: str) -> str:
    limit = 1 if len(word) < 8 else 2
    best: tuple[int, str] | None = None
    for cand in sorted(LEXICON):
        if abs(len(cand) - len(word)) > limit or cand[0] != word[0]:
            continue
        for d in range(1, limit + 1):
            if edit_distance_le(word, cand, d):
                if best is None or d < best[0]:
                    best = (d, cand)
                break
    return best[1] if best else word


def normalize(text: str) -> str:
    """Lower-case, typo-corrected, single-spaced text for the intent rules."""
    low = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    low = re.sub(r"\bcan't\b", "cannot", low)
    low = re.sub(r"\bcant\b", "cannot", low)
    low = re.sub(r"\bwon't\b|\bwont\b", "will not", low)
    low = re.sub(r"n't\b", " not", low)
    words = [correct_word(w) for w in _WORD_RE.findall(low)]
    return " ".join(words)


# ----------------------------------------------------------------------------- intents

#: intent -> patterns (over normalized text). Order matters only for ties.
_INTENT_PATTERNS: dict[str, tuple[str, ...]] = {
    "cancel": (
        r"\bcancel\w*\b",
        r"\bcall off\b",
        r"\b(?:do not|dont|no longer) (?:want|need) (?:the |this |that |my )?(?:order|it)\b",
        r"\bstop (?:the |my |this )?order\b",
        r"\bchanged my mind\b",
    ),
    "return": (
        r"\breturn(?:s|ing|ed)?\b(?! (?:policy|window)\b)",
        r"\breturn (?:policy|window)\b",
        r"\bsend (?:it|them|this|that|the \w+(?: \w+)?) back\b",
        r"\bsend back\b",
        r"\bbring (?:it|them) back\b",
    ),
    "refund": (
        r"\brefund\w*\b",
        r"\bmoney back\b",
        r"\breimburse\w*\b",
        r"\bcharged (?:twice|double)\b",
    ),
    "replacement": (
        r"\breplac\w*\b",
        r"\bexchange\w*\b",
        r"\bswap\w*\b",
        r"\bsend (?:me )?(?:a |another |a new )(?:one|unit|pair)\b",
        r"\bsend (?:me )?(?:a |another )?new\b",
        r"\bnew one\b",
    ),
    "damaged": (
        r"\b(?:damaged?|broken|broke|defective|faulty|cracked|shattered|smashed|ripped|torn"
        r"|scratched|dented|chipped|leaking|leaks)\b",
        r"\b(?:stopped|not|doesnt|does not|isnt|is not) work(?:ing|s)?\b",
        r"\bdead on arrival\b",
        r"\bin pieces\b",
    ),
    "missing": (
        r"\b(?:never|not|still not|hasnt|has not|havent|have not|didnt|did not) "
        r"(?:arrived?|received?|came|come|shown up|show up|got(?:ten)? it)\b",
        r"\b(?:lost|missing|stolen)\b",
        r"\bwrong (?:item|product|thing|size|colou?r)\b",
        r"\b(?:someone|somebody) else'?s\b|\binstead of (?:my|what i)\b",
        r"\b(?:says|shows|marked(?: as)?) delivered\b|\bnothing (?:at|on|in front of) (?:my|the)\b",
        r"\b(?:is|are|its|it is) late\b|\blate delivery\b|\bdelayed\b",
    ),
    "tracking": (
        r"\bwhere(?: is|s| are)? (?:my|the)\b",
        r"\btrack(?:ing|ed)?\b",
        r"\bstatus of\b|\border status\b|\bwhat is the status\b",
        r"\bwhen (?:will|does|do|is|can) (?:it|they|my (?:order|package|parcel|stuff|items?|jacket|delivery)|the (?:order|package|parcel|delivery))\b.*\b(?:arrive|come|get|deliver\w*|ship\w*)\b",
        r"\bhas (?:it|my order|the order) shipped\b|\bshipped yet\b|\bupdate on (?:my )?order\b",
        r"\b(?:says?|shows?) (?:pending|processing|shipped|completed)\b",
        r"\bmean\w*\b.*\b(?:pending|processing|shipped|status)\b|\b(?:pending|processing|status)\b.*\bmean\w*\b",
    ),
    "order_history": (
        r"\b(?:past|previous|old|all|recent|earlier|last few) (?:orders|purchases)\b",
        r"\border history\b|\bpurchase history\b",
        r"\b(?:list|show|see|view)(?: of)? (?:all )?(?:my )?(?:orders|purchases)\b",
        r"\bwhat (?:have i|did i) (?:order(?:ed)?|bought|buy|purchased?|get|got)\b",
        r"\bmy orders\b",
        r"\b(?:everything|all|what) i(?:'ve| have|ve)? (?:ever )?(?:ordered|bought|purchased)\b",
    ),
    "password": (
        r"\bpassword\b|\bpwd\b|\bpasswd\b|\bpw\b",
        r"\b(?:cannot|can not|unable to|not able to|cant) (?:log|sign) ?in\b",
        r"\b(?:log|sign) ?in (?:problem|issue)s?\b",
    ),
    "account_recovery": (
        r"\b(?:lost|no longer have|do not have|dont have) access to (?:my )?(?:email|e mail|inbox)\b",
        r"\b(?:hacked|compromised|someone else used)\b",
        r"\b(?:someone|somebody)(?: else)? (?:logged|log|got|has got|has gotten|gotten|broke) ?in(?:to)?\b",
        r"\brecover (?:my )?account\b",
        r"\blocked out\b|\baccount (?:is )?locked\b",
    ),
    "profile": (
        r"\b(?:change|update|correct|fix|edit|new|modify|wrong)\b.{0,40}\b(?:email|e mail|phone"
        r"|number|address|name|details|info|information|profile)\b",
        r"\b(?:email|phone|address|name|number)\b.{0,30}\b(?:changed|is wrong|is outdated|update)\b",
        r"\b(?:i (?:have )?moved|moving|we moved)\b",
        r"\bmy (?:new )?(?:email|phone|phone number|address|name) is\b",
    ),
    "voucher": (
        r"\b(?:voucher|coupon|discount|promo|gift card|giftcard|compensation|credit)\w*\b",
        r"\b(?:discount|promo|voucher|coupon|gift) codes?\b",
        r"\bgoodwill\b|\bmake up for\b",
    ),
    "complaint": (
        r"\bcomplain\w*\b",
        r"\b(?:unacceptable|disgusted|furious|outraged|terrible service|awful service"
        r"|horrible service|very disappointed|extremely disappointed|fed up)\b",
        r"\bformal(?:ly)? complaint\b",
    ),
    "bug": (
        r"\b(?:website|site|app|checkout|page|cart|basket)\b.{0,60}\b(?:crash\w*|error\w*|bug"
        r"|broken|not working|does not work|doesnt work|freez\w*|stuck|blank|500)\b",
        r"\b(?:crash\w*|error\w*|bug)\b.{0,40}\b(?:website|site|app|checkout|page|cart)\b",
        r"\berror (?:message|code)\b",
    ),
    "international": (
        r"\binternational\w*\b|\babroad\b|\boverseas\b|\bcustoms\b|\bduties\b|\bworldwide\b",
        r"\b(?:ship|deliver|send)\w* (?:to|outside)\b.{0,20}\b(?:canada|mexico|uk|united kingdom"
        r"|england|germany|france|spain|italy|netherlands|europe|eu|japan|australia|new zealand"
        r"|korea|singapore|switzerland|norway|ireland|sweden|denmark|austria|belgium|poland"
        r"|portugal|brazil|india|china|other countries|country)\b",
        r"\bwhich countries\b|\bwhat countries\b",
    ),
    "shipping": (
        r"\bshipping\b|\bdelivery\b|\bpostage\b|\bexpress\b|\bnext day\b|\bfree ship\w*\b",
        r"\bhow (?:long|fast|quickly)\b.{0,40}\b(?:take|ship|deliver|arrive|get)\w*\b",
        r"\bdeliver to (?:a )?po box\b",
    ),
    "payment": (
        r"\bpay(?:ment|ing)? (?:with|by|using|via|in)\b|\bpayments?\b|\bhow (?:can|do|could) i pay\b|\bpaypal\b|\bvisa\b|\bmastercard\b|\bamex\b|\bamerican express\b"
        r"|\bapple pay\b|\bgoogle pay\b|\bcredit card\b|\bdebit card\b|\bcash on delivery\b"
        r"|\bbank transfer\b|\bdeclined\b|\bcheque\b|\bcheck out with\b",
    ),
    "hours": (
        r"\b(?:opening|open|business|support|office|working) hours\b|\bwhen are you open\b",
        r"\bare you open\b|\bopen on\b|\b(?:saturday|sunday|weekend)s?\b",
        r"\bwhat time\b|\bcontact (?:you|support|customer service)\b|\bphone number for support\b",
    ),
    "privacy": (
        r"\bprivacy\b|\bgdpr\b|\bpersonal data\b|\bmy data\b|\bdata (?:you|do you) (?:store|keep|have)\b",
        r"\bdelete (?:my )?account\b|\bclose (?:my )?account\b|\bunsubscribe\b|\bmarketing emails?\b"
        r"|\bnewsletter\b",
    ),
    "warranty": (r"\bwarrant\w*\b|\bguarantee\w*\b|\bcovered\b",),
    "human": (
        r"\b(?:speak|talk|chat) (?:to|with) (?:a |an )?(?:human|person|real person|agent"
        r"|representative|supervisor|manager)\b",
        r"\bsupervisor\b|\bmanager\b|\bescalate\b",
    ),
    "thanks": (r"^(?:ok(?:ay)? )?(?:thanks|thank you|thx|ty|great|perfect|awesome|cheers)\b",),
    "greeting": (r"^(?:hi|hello|hey|good (?:morning|afternoon|evening))\b",),
}

_COMPILED = {k: tuple(re.compile(p) for p in v) for k, v in _INTENT_PATTERNS.items()}

#: Query words added to the knowledge-base search per intent (the articles' vocabulary).
INTENT_QUERY: dict[str, str] = {
    "cancel": "cancel order cancellation",
    "return": "return product",
    "refund": "refunds refund paid money back",
    "replacement": "replacement exchange",
    "damaged": "damaged defective product",
    "missing": "late lost missing delivery parcel",
    "tracking": "tracking number where is my order status",
    "order_history": "order history past orders",
    "password": "reset password",
    "account_recovery": "account recovery access",
    "profile": "update profile details change",
    "voucher": "voucher",
    "complaint": "complaint",
    "bug": "problem website ticket",
    "international": "international shipping countries",
    "shipping": "delivery shipping options cost",
    "payment": "payment methods",
    "hours": "support hours contact",
    "privacy": "privacy personal data",
    "warranty": "warranty",
    "human": "escalation supervisor",
}

#: Intents that ask to change something on the account (vs. asking for information).
ACTION_INTENTS: frozenset[str] = frozenset(
    {"cancel", "return", "refund", "replacement", "password", "profile", "voucher", "complaint"}
)

_QUESTION_RE = re.compile(
    r"^(?:so |and |also |ok |okay |hi |hello |hey |quick question )*(?:how|what|whats|what's|when|which"
    r"|is there|is it|are there|are|do|does|can(?! you)|could(?! you)|may|am i|if i|would(?! you)"
    r"|will(?! you)|should|is|has|have|where do|where can|where is the|where are the"
    r"|will i|how long|how many|how much|is the|are the|what is|what are|why)\b"
)
_REQUEST_RE = re.compile(
    r"\b(?:please|pls|plz|can you|could you|would you|will you|i want|i wanna|i would like"
    r"|id like|i'd like|i need|help me|i wish|go ahead|i'd love|lets|let's|just|asap|now"
    r"|i demand|i expect|i want to|i am requesting|i request|kindly)\b"
)


@dataclass(frozen=True, slots=True)
class ProfileChange:
    field: str  # email | phone | address | name
    value: str | None


@dataclass(slots=True)
class Understanding:
    """What one customer message asks for, with the slots the tools need."""

    text: str
    normalized: str
    intents: list[str]  # in the order the customer mentioned them
    order_ids: list[str]
    product_ids: list[str]
    amounts: list[float]
    question: bool  # phrased as a question about policy, not a request to act
    profile: ProfileChange | None = None
    complaint_type: str = "other"
    wants_all: bool = False  # "return everything", "the whole order"
    segments: dict[str, str] = field(default_factory=dict)  # intent -> its clause


def order_ids_in(text: str) -> list[str]:
    """Order ids in a text: ``ORD1001``, ``ord 1001``, ``order #1001``, ``#1001``."""
    found: list[tuple[int, str]] = []
    for m in _STRICT_ORDER_RE.finditer(text):
        found.append((m.start(), "ORD" + m.group(1)))
    for m in _LOOSE_ORDER_RE.finditer(text):
        found.append((m.start(), "ORD" + m.group(1)))
    out: list[str] = []
    for _, oid in sorted(found):
        if oid not in out:
            out.append(oid)
    return out


def amounts_in(text: str) -> list[float]:
    """Money amounts: ``$20``, ``20 dollars``, ``USD 12.50``, ``20,50$``."""
    out = []
    for m in _MONEY_RE.finditer(text):
        raw = (m.group(1) or m.group(2)).replace(",", ".")
        try:
            out.append(round(float(raw), 2))
        except ValueError:
            continue
    return out


def _clauses(text: str) -> list[tuple[int, str]]:
    """Split a message into clauses (sentences and "and also"-joined requests)."""
    parts = re.split(
        r"(?<=[.!?;])\s+|\s+(?:and also|also|plus|and then|then|btw|by the way|oh and|and)\s+"
        r"(?=(?:can|could|would|please|i|my|how|what|when|where|is|do|send|cancel|reset"
        r"|change|update|give|list|show|refund|return)\b)",
        text,
    )
    out, pos = [], 0
    for p in parts:
        idx = text.find(p, pos)
        out.append((max(idx, 0), p))
        pos = max(idx, 0) + len(p)
    return out


def detect_intents(norm: str) -> list[tuple[int, str]]:
    """(position, intent) for every intent whose pattern matches the normalized text."""
    hits: list[tuple[int, str]] = []
    for intent, patterns in _COMPILED.items():
        first = min((m.start() for p in patterns for m in [p.search(norm)] if m), default=None)
        if first is not None:
            hits.append((first, intent))
    hits.sort()
    return hits


def _resolve(intents: list[str], norm: str, order_ids: list[str]) -> list[str]:
    """Merge overlapping intents into what the customer actually asks for."""
    s = list(dict.fromkeys(intents))

    def drop(name: str) -> None:
        if name in s:
            s.remove(name)

    if "return" in s and "refund" in s:
        if re.search(
            r"\b(?:i|we) (?:already |have )?(?:returned|sent (?:it|them|\w+ \w+) back)\b", norm
        ):
            drop("return")  # "I returned it weeks ago, where is my refund?"
        elif re.search(r"\breturn (?:policy|window)\b", norm) is None:
            drop(
                "refund"
            )  # "return it and get my money back": the return is the action  # "return it and get my money back": the return is the action
    if (
        "cancel" in s
        and "refund" in s
        and not re.search(r"\brefund (?:for|of|on) (?!.*cancel)", norm)
    ):
        drop("refund")  # cancelling refunds automatically
    if "replacement" in s and "damaged" in s:
        drop("damaged")
    if "refund" in s and "damaged" in s:
        drop("damaged")
    if "return" in s and "damaged" in s:
        drop("damaged")
    if "replacement" in s and "return" in s and re.search(r"\bexchange\b", norm):
        drop("replacement")  # "exchange" = return + new order per policy
    if "password" in s and "account_recovery" in s:
        if re.search(r"\baccess to (?:my )?(?:email|e mail|inbox)\b", norm):
            drop("password")
        else:
            drop("account_recovery")
    if (
        "profile" in s
        and "password" in s
        and not re.search(r"\b(?:email|phone|address|name)\b", norm)
    ):
        drop("profile")
    if (
        "profile" in s
        and "password" in s
        and re.search(r"\bchange (?:my )?password\b", norm)
        and not re.search(r"\b(?:email|phone|address)\b.{0,20}\bto\b", norm)
    ):
        drop("profile")
    if "international" in s and "shipping" in s:
        drop("shipping")
    if (
        "complaint" in s
        and "voucher" in s
        and not re.search(r"\bvoucher|compensation|coupon\b", norm)
    ):
        drop("voucher")
    if "missing" in s and "tracking" in s:
        drop("tracking")
    if "bug" in s and "damaged" in s:
        drop("damaged")
    if "bug" in s and "payment" in s:
        drop("payment")
    if "voucher" in s and "payment" in s:
        drop(
            "voucher"
            if _QUESTION_RE.search(norm) and s.index("payment") < s.index("voucher")
            else "payment"
        )
    if "missing" in s and "shipping" in s:
        drop("shipping")
    if "tracking" in s and "shipping" in s:
        drop("shipping")
    if "damaged" in s and "shipping" in s:
        drop("shipping")
    if "missing" in s and "damaged" in s and re.search(r"\bwrong (?:item|product)\b", norm) is None:
        drop("missing")
    if "order_history" in s and "tracking" in s and not order_ids:
        drop("tracking")
    if "hours" in s and len(s) > 1 and not re.search(r"\b(?:hours|open)\b", norm):
        drop("hours")
    if (
        "shipping" in s
        and set(s) & {"refund", "cancel", "return", "password", "voucher", "warranty"}
        and not re.search(r"\b(?:shipping|delivery|deliver|ship)\b", norm)
    ):
        drop("shipping")
    if "refund" in s:
        drop("tracking")  # "when do I get my money back" / "where is my refund"
        drop("missing")  # "my refund has not arrived"
    if "voucher" in s and "damaged" in s and re.search(r"\bcode\b", norm):
        drop("damaged")  # "my voucher code is not working"
    if set(s) & {"voucher", "complaint"}:
        for ctx_intent in ("missing", "tracking", "damaged"):
            drop(ctx_intent)  # the delay/damage is the reason, not the request
        if "voucher" in s and "complaint" in s and not re.search(r"\bcomplain", norm):
            drop("complaint")
    if "warranty" in s:
        drop("damaged")
        drop("tracking")
    if "greeting" in s and len(s) > 1:
        drop("greeting")
    if "thanks" in s and len(s) > 1:
        drop("thanks")
    if "human" in s and "complaint" in s:
        drop("human")
    return s


def complaint_type(norm: str) -> str:
    """The create_complaint ``type`` matching the customer's words."""
    if re.search(
        r"\b(?:late|delay\w*|slow|took (?:so |too )?(?:long|forever|ages)|forever|ages|waiting"
        r"|still not|weeks)\b",
        norm,
    ):
        return "order_delay"
    if re.search(
        r"\b(?:courier|driver|carrier|delivery guy|left (?:it )?(?:at|outside|in)|thrown|delivery"
        r"|delivered|package|parcel|doorstep)\b",
        norm,
    ):
        return "delivery_issues"
    if re.search(
        r"\b(?:quality|cheap|broke|broken|fell apart|defective|faulty|damaged|poor|flimsy"
        r"|ripped|torn|stopped working|lost (?:its|their) shape)\b",
        norm,
    ):
        return "product_quality"
    return "other"


_FIELD_WORDS = (
    ("email", r"\b(?:e ?mail|email address|mail address)\b"),
    ("phone", r"\b(?:phone|mobile|cell|telephone|phone number|tel)\b"),
    ("address", r"\b(?:address|moved|move|shipping address|delivery address|street)\b"),
    ("name", r"\b(?:name|surname|last name|first name)\b"),
)


def profile_change(text: str) -> ProfileChange | None:
    """The profile field the customer wants to change, and its new value if given."""
    low = text.lower()
    email = _EMAIL_RE.search(text)
    field_name: str | None = None
    best = None
    for name, pat in _FIELD_WORDS:
        m = re.search(pat, normalize(text))
        if m and (best is None or m.start() < best):
            best, field_name = m.start(), name
    if (
        email
        and field_name in (None, "email", "address")
        and "address" not in low.replace("email address", "")
    ):
        return ProfileChange("email", email.group(0))
    if field_name is None:
        if email:
            return ProfileChange("email", email.group(0))
        return None
    if field_name == "email":
        return ProfileChange("email", email.group(0) if email else None)
    if field_name == "phone":
        m = None
        for cand in _PHONE_RE.finditer(text):
            digits = re.sub(r"\D", "", cand.group(1))
            if len(digits) >= 7 and not re.fullmatch(r"\d{4}", digits):
                m = cand
        return ProfileChange("phone", m.group(1).strip() if m else None)
    value = _value_after(text, field_name)
    if field_name == "name" and value:
        value = value.title() if value.islower() else value
    return ProfileChange(field_name, value)


def _value_after(text: str, field_name: str) -> str | None:
    """The text after "to" / "is now" / ":" following the field word."""
    key = {
        "address": r"(?:address|moved|move)",
        "name": r"(?:name|surname)",
    }[field_name]
    m = re.search(
        key + r"\b.*?(?:\bto\b|\bis now\b|\bshould be\b|\bshould read\b|:|=|->)\s*(.+)$",
        text,
        re.I | re.S,
    ) or re.search(key + r"\b.*?\bis\b\s*(.+)$", text, re.I | re.S)
    if not m:
        return None
    value = m.group(1).strip()
    value = re.split(r"(?:\s*[.!?]\s+|\s+(?:please|pls|thanks|thank you|thx)\b|\n)", value)[0]
    value = value.strip().strip(".!?,;\"' ")
    value = re.sub(
        r"^(?:my new (?:address|name) is |the new (?:address|name) is )", "", value, flags=re.I
    )
    if len(value) < 2 or len(value) > 200:
        return None
    return value


def understand(text: str, *, earlier_order_ids: Sequence[str] = ()) -> Understanding:
    """Parse one customer message (earlier order ids are used when it names none)."""
    norm = normalize(text)
    raw_hits = detect_intents(norm)
    order_ids = order_ids_in(text)
    intents = _resolve([i for _, i in raw_hits], norm, order_ids)
    product_ids = ["P" + m.group(1) for m in _PRODUCT_ID_RE.finditer(text)]
    question = bool(_QUESTION_RE.search(norm)) and not _REQUEST_RE.search(norm)
    if re.search(r"\b(?:can|could|would) you\b", norm):
        question = False
    und = Understanding(
        text=text,
        normalized=norm,
        intents=intents,
        order_ids=order_ids or [o for o in earlier_order_ids][-1:],
        product_ids=list(dict.fromkeys(product_ids)),
        amounts=amounts_in(text),
        question=question,
        wants_all=bool(
            re.search(
                r"\b(?:everything|all (?:of )?(?:it|them|the items|items)|whole order|entire order|both)\b",
                norm,
            )
        ),
    )
    if "profile" in intents:
        und.profile = profile_change(text)
    if "complaint" in intents:
        und.complaint_type = complaint_type(norm)
    for pos, clause in _clauses(text):
        del pos
        cnorm = normalize(clause)
        for _, intent in detect_intents(cnorm):
            if intent in intents and intent not in und.segments:
                und.segments[intent] = clause
    return und


# ----------------------------------------------------------------------------- conversation


def message_text(item: Mapping[str, Any]) -> str:
    """The plain text of a Responses input message item (string or content parts)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                t = part.get("text")
                if isinstance(t, str):
                    parts.append(t)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def parse_json(raw: Any) -> Any:
    """A tool output as data (outputs are JSON strings; tolerate plain text)."""
    if isinstance(raw, Mapping | list):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def known_products(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """order_id -> {product_id: name} from every get_order output in the conversation."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if item.get("type") != "function_call_output":
            continue
        data = parse_json(item.get("output"))
        order = data.get("order") if isinstance(data, Mapping) else None
        if not isinstance(order, Mapping):
            continue
        oid = order.get("order_id")
        products = order.get("items")
        if isinstance(oid, str) and isinstance(products, list):
            out[oid] = {
                str(p.get("product_id")): str(p.get("name") or "")
                for p in products
                if isinstance(p, Mapping) and p.get("product_id")
            }
    return out


def _stem(word: str) -> str:
    for suf in ("ies", "es", "s"):
        if word.endswith(suf) and len(word) > len(suf) + 2:
            return word[: -len(suf)] + ("y" if suf == "ies" else "")
    return word


def match_products(text: str, products: Mapping[str, str]) -> list[str]:
    """Product ids whose name the customer mentioned ("the socks" -> Merino ... Socks)."""
    words = {_stem(w) for w in _WORD_RE.findall(text.lower()) if len(w) > 2}
    words |= {_stem(correct_word(w)) for w in list(words)}
    generic = {"the", "and", "pack", "set", "wool", "one", "new", "bag"}
    scored: list[tuple[int, str]] = []
    for pid, name in products.items():
        name_words = {_stem(w) for w in _WORD_RE.findall(name.lower()) if len(w) > 2}
        common = {w for w in name_words & words if w not in generic}
        fuzzy = {
            n
            for n in name_words - generic
            for w in words
            if n not in common and len(n) >= 5 and len(w) >= 5 and edit_distance_le(n, w, 1)
        }
        score = len(common) + len(fuzzy)
        if score:
            scored.append((score, pid))
    if not scored:
        return []
    top = max(s for s, _ in scored)
    return [pid for s, pid in scored if s == top]
