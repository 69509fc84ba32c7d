# ruff: noqa: E501  (regular-expression tables read best unwrapped)
"""Intent triggers: which requests a normalized message contains, in the customer's order.

Plain keyword patterns over typo-corrected text: predictable for the
representative, and measured on ``tests/data/offline_set_*.jsonl``. Several
intents can match one message; :func:`resolve` merges the overlapping ones
into what the customer actually asks for.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

#: a product that may be dangerous: overheating, burning, smoke, sparks, melting, a
#: swelling battery, fire (kb/escalation "Safety issues": stop using it, record a complaint)
SAFETY_HAZARD: Final = (
    r"\b(?:overheat\w*|(?:got|gets|getting|became|becomes|runs?|running|is|was) (?:super |very |really |extremely |dangerously |way too |too )?hot"
    r"|too hot to (?:touch|hold)|burn(?:ing|t|ed)? (?:smell|plastic|rubber|odou?r)|smell\w* (?:of |like )?(?:burn\w*|smoke|melt\w*)"
    r"|smok(?:e|ed|es|ing)|sparks?|sparked|sparking|melt(?:ed|ing|s)|swell\w*|swollen|bulg\w*|puff(?:ed|y|ing) up"
    r"|caught fire|on fire|burst into flames|flames?|scorch\w*|electric shock|shocked me)\b"
)

_PATTERNS: Final = MappingProxyType({
    "cancel": (
        r"\bcancel\w*\b(?! (?:policy|window))",
        r"\bcall off\b",
        r"\b(?:do not|no longer) (?:want|need) (?:the |this |that |my )?(?:order|it|ord\d{4})\b",
        r"\bstop (?:the |my |this )?order\b|\bstop\b.{0,25}\bfrom (?:shipping|being shipped)\b",
        r"\bchanged my mind\b",
        r"\btake (?:it|them|the \w+(?: \w+)?) off (?:the |my )?order\b"
        r"|\bremove (?:it|them|the \w+(?: \w+)?) from (?:the |my )?order\b",
    ),
    "return": (
        r"\breturn(?:s|ing|ed)?\b",
        r"\bsend (?:it|them|this|that|stuff|something|an item|the \w+(?: \w+)?) back\b",
        r"\bsend back\b|\bbring (?:it|them) back\b",
    ),
    "refund": (
        r"\brefund\w*\b",
        r"\bmoney back\b|\bback what i paid\b|\bwhat i paid\b.{0,30}\bback\b|\b(?:bucks|dollars?|usd) back\b|\bback on (?:order|ord|my)\b|\breimburse\w*\b",
        r"\bcharged (?:twice|double)\b",
    ),
    "replacement": (
        r"\breplac\w*\b",
        r"\bsend (?:me )?(?:a |another |a new )(?:one|unit|pair|set)\b",
        r"\bsend (?:me )?(?:a |another )?new\b(?! (?:password|reset|link|code|email|e mail|invoice|receipt|label|voucher)\b)"
        r"|\bnew one\b|\bnew pair\b|\bsend (?:me |us )?another\b(?! (?:password|reset|link|code|email|e mail|invoice|receipt|label|voucher)\b)",
        r"\bsend me the \w+(?: \w+)? i ordered\b",
    ),
    "exchange": (
        r"\bexchange\w*\b|\bswap\w*\b",
        r"\b(?:bigger|smaller|larger|different) (?:size|colou?r|one)\b",
    ),
    "damaged": (
        r"\b(?:damaged?|broken|broke|defective|faulty|cracked|shattered|smashed|ripped|torn"
        r"|scratched|dented|chipped|leaking|leaks|frayed|holes?|stain\w*|junk|tears?|rips?|cracks?|dents?|scratch(?:ed|es)?(?! (?:that|it)\b))\b",
        r"\b(?:stopped|not|does not|is not) work(?:ing|s)?\b",
        r"\b(?:crackl\w*|buzz(?:es|ing)?|rattl\w*|flicker\w*)\b|\b(?:will not|does not|not|stopped) charg\w*\b",
        r"\bdead on arrival\b|\bin pieces\b|\bsound(?:s)? bad\b",
    ),
    "problem": (
        r"\b(?:problem|issue|something wrong) with (?:my|the|a) (?!order\b|account\b|payment\b|delivery\b|website\b|app\b)\w+",
    ),
    "wrong_item": (
        r"\bwrong (?:item|product|thing|one)\b|\bwrong (?:colou?r|size|model|variant)\b",
        r"\b(?:someone|somebody) else'?s\b|\binstead of (?:my|what i)\b",
    ),
    "missing": (
        r"\b(?:never|not|still not|has not|have not|did not) (?:arrived?|received?|came|come|shown up|show up|got(?:ten)? it)\b",
        r"\b(?:never|not|did not|still have not) (?:got|gotten|received) (?:my|the|our) (?:parcel|package|order|delivery|stuff|items?)\b",
        r"\b(?:lost|missing|stolen)\b",
        r"\b(?:says|shows|marked(?: as)?) delivered\b|\bnothing (?:at|on|in front of|came)\b",
        r"\btaking (?:ages|forever|so long|too long)\b|\b(?:is|are|its|it is) late\b|\blate delivery\b|\bdelayed\b|\b(?:a )?weeks? late\b|\bway too late\b",
    ),
    "tracking": (
        r"\bwhere(?: is|s| are|'s)? (?:my|the|it)\b|\bwhere(?: is|s|'s)? ord\d*\b|\bwhere is it\b|\bwhere ord\d+ is\b",
        r"\bwhen is\b.{0,30}\b(?:arriv\w*|coming|get here|deliver\w*)\b",
        r"\btrack(?:ing|ed)?\b",
        r"\bstatus (?:of|on|for)\b|\border status\b|\bwhat is the status\b",
        r"\bwhen (?:will|does|do|is|can) (?:it|they|my \w+|the (?:order|package|parcel|delivery))\b.*\b(?:arrive|come|get|deliver\w*|ship\w*)\b",
        r"\bhas (?:it|my order|the order|ord\d*) shipped\b|\bshipped yet\b|\bupdate on (?:my )?order\b",
        r"\b(?:says?|shows?) (?:pending|processing|shipped|completed)\b",
        r"\bmean\w*\b.*\b(?:pending|processing|shipped|delivered|completed|status(?:es)?)\b|\b(?:pending|processing|shipped|delivered|completed|status(?:es)?)\b.*\bmean\w*\b",
        r"\bnot moved\b|\bhas not (?:moved|updated)\b",
        r"\bdifference between\b.*\b(?:pending|processing|shipped|delivered|completed)\b",
    ),
    "order_history": (
        r"\b(?:past|previous|old|all|recent|earlier|last few) (?:my )?(?:orders|purchases)\b",
        r"\border history\b|\bpurchase history\b",
        r"\b(?:list|show|see|view)(?: of)? (?:me )?(?:all )?(?:my |the )?(?:past )?(?:orders|purchases)\b",
        r"\bwhat (?:have i|did i) (?:order(?:ed)?|bought|buy|purchased?|get|got)\b",
        r"\bmy orders\b",
        r"\b(?:everything|all|what) i(?:'ve| have|ve)? (?:ever )?(?:ordered|bought|purchased)\b",
    ),
    "invoice": (r"\binvoice\w*\b|\breceipts?\b",),
    "went_through": (
        r"\b(?:charged|paid)\b.{0,40}\b(?:not showing|no order|no confirmation|did not get a confirmation)\b"
        r"|\bdid my order go through\b|\bno (?:order )?confirmation\b",
    ),
    "password": (
        r"\bpassword\b|\bpwd\b|\bpasswd\b|\bpw\b|\breset (?:link|email|e mail|mail)\b",
        r"\b(?:cannot|can not|unable to|not able to) (?:log|sign) ?in\b",
        r"\b(?:log|sign) ?in (?:problem|issue)s?\b",
    ),
    "account_recovery": (
        r"\b(?:lost|no longer have|do not have|lost my) access to (?:my )?(?:old )?(?:email|e mail|inbox)\b",
        r"\b(?:hacked|compromised|someone else used)\b",
        r"\b(?:someone|somebody)(?: else)? (?:logged|log|got|has got|broke) ?in(?:to)?\b",
        r"\b(?:someone|somebody)(?: else)? (?:is |has been |was )?us(?:ing|ed) my account\b"
        r"|\borders? (?:that )?i (?:did not|never) (?:make|made|place|placed)\b",
        r"\brecover (?:my )?account\b|\blocked out\b|\baccount (?:is )?locked\b",
        r"\b(?:cannot|can not|unable to) get (?:in|into) (?:my )?account\b|\bemail (?:is )?(?:gone|deleted|closed|no longer)\b",
    ),
    "profile": (
        r"\b(?:change|update|correct|fix|edit|new|modify|wrong)\b.{0,40}\b(?:email|e mail|phone|number|address|name|surname|details|profile)\b",
        r"\b(?:email|phone|address|name)\b.{0,30}\b(?:changed|is wrong|is outdated|update)\b",
        r"\b(?:i (?:have )?moved|we moved|we have moved)\b",
        r"\bmy (?:new )?(?:email|phone|phone number|address|name) is\b",
    ),
    "voucher": (
        r"\b(?:voucher|coupon|discount|promo|gift card|giftcard|compensation|credit)\w*\b",
        r"\bgoodwill\b|\bmake up for\b",
    ),
    "complaint": (
        r"\bcomplain\w*\b",
        # a safety hazard is recorded as a product quality complaint (kb/escalation)
        SAFETY_HAZARD,
        r"\b(?:unacceptable|disgusted|furious|outraged|terrible service|awful service|horrible service|very disappointed|fed up)\b",
    ),
    "bug": (
        r"\b(?:website|site|app|checkout|page|cart|basket)\b.{0,60}\b(?:crash\w*|error\w*|bug|broken|not working|does not work|freez\w*|stuck|blank|500)\b",
        r"\b(?:crash\w*|error\w*|bug)\b.{0,40}\b(?:website|site|app|checkout|page|cart)\b",
        r"\berror (?:message|code)\b",
        r"\b(?:website|site|app|checkout|page)\b.{0,40}\b(?:logging me out|logs me out|will not load|not loading|keeps (?:crashing|freezing))\b",
        r"\b(?:website|site|app|checkout|page|cart|basket|button|link|form)\b.{0,40}\b(?:does nothing|nothing happens|(?:does|is) not (?:respond\w*|do anything)|unresponsive|not clickable)\b",
        r"\b(?:website|site|app|checkout|page)\b.{0,20}\b(?:will not|does not|would not) (?:let|allow) me\b",
    ),
    "international": (
        r"\binternational\w*\b|\babroad\b|\boverseas\b|\bcustoms\b|\bduties\b|\bimport\b|\bworldwide\b",
        r"\b(?:ship|deliver|send)\w* (?:to|outside|in)\b.{0,20}\b(?:canada|mexico|uk|united kingdom|england|germany|france|spain|italy|netherlands|europe|eu|japan|australia|new zealand|korea|singapore|switzerland|norway|ireland|sweden|denmark|austria|belgium|poland|portugal|brazil|india|china|other countries|country)\b",
        r"\b(?:from|to|in) (?:canada|mexico|uk|germany|france|spain|italy|japan|australia|norway|switzerland)\b",
        r"\bwhich countries\b|\bwhat countries\b",
    ),
    "shipping": (
        r"\bshipping\b|\bdelivery\b|\bpostage\b|\bexpress\b|\bnext day\b|\bfree ship\w*\b|\bpo box\b",
        r"\bhow (?:long|fast|quickly)\b.{0,40}\b(?:take|ship|deliver|arrive|get)\w*\b",
    ),
    "payment": (
        r"\bpay(?:ment|ing)? (?:with|by|using|via|in)\b|\bpayments?\b|\bhow (?:can|do|could) i pay\b|\bpaypal\b|\bvisa\b|\bmastercard\b|\bamex\b"
        r"|\bapple pay\b|\bgoogle pay\b|\bcredit card\b|\bdebit card\b|\bcash on delivery\b|\bbank transfer\b|\bdeclined\b"
        r"|\bcurrenc\w*\b|\bwhen (?:am i|will i be|is my card|do you) charge",
    ),
    "hours": (
        r"\b(?:opening|open|business|support|office|working|service) hours\b|\bwhen are you open\b|\bhours\b",
        r"\bare you open\b|\bopen on\b|\b(?:saturday|sunday|weekend)s?\b",
        r"\bwhen (?:are|is) (?:you|support|someone|anyone|somebody)(?: guys)? (?:available|around|online|reachable)\b",
        r"\bwhat time\b|\bcontact (?:you|support|customer service)\b|\breach (?:you|us|support|customer service)\b|\bcall you\b",
        r"\b(?:your|the|a|support) (?:phone|telephone) number\b|\byour (?:address|email address|email)\b|\bhow (?:can|do) i (?:contact|call|email) you\b",
    ),
    "privacy": (
        r"\bprivacy\b|\bgdpr\b|\bpersonal data\b|\bmy data\b|\bdata (?:you|do you) (?:store|keep|have)\b",
        r"\bdelete (?:my )?account\b|\bclose (?:my )?account\b|\bunsubscribe\b|\bmarketing emails?\b|\bnewsletter\b",
        r"\b(?:email|phone|address)\b.{0,40}\bof (?:customer|another|someone)\b",
        r"\bon file for (?!(?:me|my|us|our|myself)\b)\w+",
        r"\b(?:information|info|data) (?:do )?you (?:keep|store|have|hold)\b|\bwhat do you (?:keep|store|know) about me\b",
    ),
    "warranty": (r"\bwarrant\w*\b|\bguarantee\w*\b|\bcovered\b",),
    "human": (
        r"\b(?:speak|talk|chat) (?:to|with) (?:a |an )?(?:real )?(?:human|person|agent|representative|supervisor|manager|someone)\b",
        r"\bsupervisor\b|\bescalate\b|\breal (?:human|person)\b",
        r"\b(?:want|need|get me|demand) (?:a |the |your )?(?:manager|human|real person)\b",
        # threats the escalation procedure names: legal action, the press, consumer bodies
        r"\b(?:sue|suing|lawyer|attorney|legal action|take (?:you|this) to court|bbb|better business bureau"
        r"|report you|the press|journalist|consumer protection|trading standards)\b",
    ),
    "thanks": (r"^(?:ok(?:ay)? |no |cool |great |alright |perfect )?(?:thanks|thank you|thx|ty|great|perfect|awesome|cheers|bye|goodbye)\b"
               r"|\bthat'?s (?:all|everything)\b|\bthat is (?:all|everything)\b"
               r"|\b(?:bye|goodbye|see you|see ya|have a (?:good|nice|great|lovely|wonderful) (?:day|one|evening|weekend))$"
               r"|\b(?:keep it up|keep up the good work|great service|great job|well done)\b",),
    "greeting": (r"^(?:hi|hello|hey|good (?:morning|afternoon|evening))\b",),
})

COMPILED: Final = MappingProxyType(
    {k: tuple(re.compile(p) for p in v) for k, v in _PATTERNS.items()}
)


#: each intent's triggers as one alternation: its leftmost match starts where the
#: earliest-starting trigger's does (the regex engine tries every alternative at each
#: position before the next), so one search per intent instead of one per trigger
#: (the triggers have no groups or inline flags of their own)
ANY_TRIGGER: Final = MappingProxyType(
    {k: re.compile("|".join(f"(?:{p})" for p in v)) for k, v in _PATTERNS.items()}
)


def detect(norm: str) -> list[tuple[int, str]]:
    """(position, intent) for every intent whose trigger matches, by position."""
    hits: list[tuple[int, str]] = []
    for intent, rx in ANY_TRIGGER.items():
        m = rx.search(norm)
        if m is not None:
            hits.append((m.start(), intent))
    hits.sort()
    return hits


def hazard(norm: str) -> bool:
    """Whether the message reports a product that may be dangerous."""
    return _has(norm, SAFETY_HAZARD)


def _has(norm: str, pattern: str) -> bool:
    return re.search(pattern, norm) is not None


#: (intent, intent it gives way to, pattern that must hold for it to give way or None)
_YIELDS: Final = (
    ("missing", "tracking", r"\b(?:not|never) (?:yet )?(?:been )?shipped\b"),  # not late: not sent yet
    # "the app crashes when I try to track", "the 'track order' button gives a blank page"
    ("tracking", "bug", r"\b(?:try|trying|tried) to\b|\b(?:button|link)\b"),
    ("damaged", "replacement", None),
    ("damaged", "password", None),  # "my password isn't working": not a product
    # "thank you, have a lovely weekend": a goodbye, not a question about opening hours
    ("hours", "thanks", r"\bhave a (?:\w+ )?(?:weekend|day|evening|sunday|saturday)\b"),
    # "the reset link expired, send another one": a new link, not a replacement product
    ("replacement", "password", r"\b(?:link|reset|email)\b"),
    ("damaged", "warranty", None),
    ("damaged", "bug", None),
    ("exchange", "replacement", r"\b(?:damaged?|broken|defective|wrong|faulty|torn|cracked)\b"),
    ("replacement", "exchange", r"\b(?:size|colou?r|bigger|smaller|larger)\b"),
    ("shipping", "international", None),
    ("shipping", "missing", None),
    ("shipping", "tracking", None),
    ("shipping", "refund", None),
    # "refund the international shipping on ORD1012": what is refunded, not a question
    ("international", "refund", r"\brefund\w*\b.{0,30}\binternational (?:shipping|delivery)\b"),
    ("shipping", "cancel", r"\bfrom (?:shipping|being shipped)\b"),
    ("shipping", "refund_status", None),
    ("missing", "account_recovery", None),
    ("missing", "password", r"\b(?:reset|link|email)\b"),
    ("profile", "shipping", r"^(?:can|could|how|is|do)\b.*\b(?:delivery|shipping) address\b.*\bord(?:er\b|\s?\d{4})"),
    ("order_history", "bug", None),
    ("order_history", "invoice", None),
    ("shipping", "damaged", None),
    ("tracking", "missing", None),
    ("tracking", "refund", None),
    ("missing", "refund", None),
    ("missing", "wrong_item", None),
    ("wrong_item", "refund", None),
    ("wrong_item", "return", None),
    ("wrong_item", "exchange", None),
    ("wrong_item", "cancel", None),  # "cancel it, I ordered the wrong size": the reason
    ("tracking", "warranty", None),
    ("payment", "bug", None),
    # "how long till my refund shows up on paypal": where the refund goes, not how to pay
    ("payment", "refund", r"^(?!.*\b(?:pay (?:with|by|using|via|in)|accept\w*|how (?:can|do|could) i pay|payment methods?|declined)\b)"),
    ("greeting", "*", None),
    ("problem", "*", None),
    ("thanks", "*", None),
    ("human", "complaint", None),
    ("refund", "human", r"\b(?:speak|talk|chat)\b"),
    ("order_history", "went_through", None),
    ("account_recovery", "went_through", None),
    ("profile", "password", r"^(?!.*\b(?:email|phone|address|name)\b)"),
    ("hours", "*", r"^(?!.*\b(?:hours|open)\b)"),
)


#: the alternative a customer turns down: "a refund rather than a new one", "I'd prefer
#: a refund over a replacement", "a refund instead of a replacement" (not "a lamp instead
#: of my headphones": that is what they got)
_NOT_WANTED_RE: Final = re.compile(
    r"\b(?:(?:rather|prefer\w*)\b.{0,60}?\b(?:than|over)|instead of)\s+(?!my\b|what\b)"
    r"((?:\w+\s+){0,3}?(?:one|unit|pair|replacement|refund|return|exchange|voucher|credit|money back)\b)"
)
#: requests a turned-down alternative names (they are dropped when only it names them)
_ALTERNATIVES: Final = ("replacement", "refund", "return", "exchange", "voucher")


def without_turned_down(text: str) -> str:
    """The (lower-case) text without the alternative the customer turns down."""
    if "than" not in text and "over" not in text and "instead" not in text:
        return text  # most messages: the pattern cannot match (its search cost more)
    m = _NOT_WANTED_RE.search(text)
    return text if m is None else text[: m.start(1)] + " " + text[m.end(1) :]


def _turned_down(s: list[str], norm: str) -> list[str]:
    rest = without_turned_down(norm)
    if rest is norm:
        return s
    return [i for i in s if i not in _ALTERNATIVES or ANY_TRIGGER[i].search(rest) is not None]


def resolve(intents: list[str], norm: str) -> list[str]:
    """Merge overlapping intents into the requests the customer actually makes."""
    s = _turned_down(list(dict.fromkeys(intents)), norm)

    def drop(name: str) -> None:
        if name in s:
            s.remove(name)

    for weak, strong, cond in _YIELDS:
        present = strong in s or (strong == "*" and len(s) > 1)
        if weak in s and present and (cond is None or _has(norm, cond)):
            drop(weak)
    if "return" in s and "refund" in s:
        if _has(norm, r"\b(?:i|we) (?:already |have )?(?:returned|sent (?:it|them|\w+ \w+) back)\b"):
            drop("return")  # "I returned it weeks ago, where is my refund?"
        elif not _has(norm, r"\brefund\w* (?:of |me )?(?:\$|\d)|\brefund \$?\d|\bfor the \w+$|\d+(?:\.\d+)? (?:for|on) the\b"):
            drop("refund")  # "return it and get my money back": the return is the action
    if "cancel" in s and "refund" in s and _has(
            norm, r"\b(?:i|we) (?:have |already |just )?cancell?ed\b|\b(?:was|been|got|is) cancell?ed\b"):
        drop("cancel")  # "a refund for the lantern order, I cancelled it": done, the refund is asked
    if "cancel" in s and "refund" in s and not _has(norm, r"\brefund\w* (?:take|work|go)") and len(
            set(re.findall(r"\bord ?(\d{4})\b", norm))) < 2:
        drop("refund")  # cancelling refunds by itself (not "cancel ORD1016 and refund ORD1015")
    if "return" in s and "damaged" in s:
        drop("return" if _has(norm, r"^(?:do|does|should|must|will) (?:i|we)\b") else "damaged")
    if "refund" in s and "damaged" in s and not _has(
            norm, r"\b(?:prefer|rather|instead)\b|\bdo not want (?:another|a new|a replacement)\b"):
        drop("damaged")
    if "return" in s and "exchange" in s:
        drop("exchange")
    if "password" in s and "account_recovery" in s:
        drop("password" if _has(norm, r"\b(?:access to|hacked|someone|somebody)\b") else "account_recovery")
    if "international" in s and "payment" in s and _has(norm, r"\b(?:import|customs|duties)\b"):
        drop("payment")
    if "voucher" in s and "payment" in s:
        drop("voucher" if s.index("payment") < s.index("voucher") else "payment")
    if set(s) & {"voucher", "complaint"}:
        # the delay or damage is the reason, not the request; but a hazard report is not a
        # complaint about the delivery: "where is ORD1003? also the socks caught fire" asks both
        kept = ("missing", "tracking") if "voucher" not in s and _has(norm, SAFETY_HAZARD) \
            and not _has(norm, r"\bcomplain") else ()
        for context in ("missing", "tracking", "damaged", "shipping"):
            if context not in kept:
                drop(context)
        if "complaint" in s:
            drop("order_history")  # "a complaint: my orders always take forever": the subject
        if "voucher" in s and "complaint" in s and not _has(norm, r"\bcomplain"):
            drop("complaint")
    if "order_history" in s and "tracking" in s:
        drop("tracking")
    if "warranty" in s:
        drop("missing")
    if "privacy" in s and "profile" in s and _has(norm, r"\bof (?:customer|another|someone)\b"):
        drop("profile")
    return s


def complaint_type(norm: str) -> str:
    """The create_complaint ``type`` matching the customer's words."""
    if _has(norm, SAFETY_HAZARD):
        return "product_quality"  # a dangerous product, whatever else went wrong
    if _has(norm, r"\b(?:late|delay\w*|slow|took (?:so |too )?(?:long|forever|ages)|forever|ages|waiting|still not|weeks)\b"):
        return "order_delay"
    if _has(norm, r"\b(?:courier|driver|carrier|delivery guy|left (?:it )?(?:at|outside|in)|threw|thrown|delivery|delivered|package|parcel|doorstep|fence|packag\w*|soaked|wet|box)\b"):
        return "delivery_issues"
    if _has(norm, r"\b(?:quality|cheap|broke|broken|fell apart|defective|faulty|damaged|poor|flimsy|ripped|torn|stopped working|flat)\b"):
        return "product_quality"
    return "other"
