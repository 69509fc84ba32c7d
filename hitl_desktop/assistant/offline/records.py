"""One small record per intent: what it searches, which slots it needs, which tools
it calls in which order, and how its reply is composed.

The planner walks ``tools`` in order (skipping the ones already run for the
request); the composer picks its paragraph by ``reply``. Limits are never
copied here: they come from the catalog's policy at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class IntentRecord:
    name: str
    topic: str  # search words, in the articles' vocabulary
    needs: tuple[str, ...] = ()  # slots: customer, order, products, product, amount, value
    tools: tuple[str, ...] = ()  # in the order they are called
    reply: str = "info"  # action | status | list | info | escalate | social
    question_topic: str = ""  # search words when it is asked as a policy question
    offer: str = ""  # texts.OFFERS key: what the draft offers when no action was asked


def _r(
    name: str,
    topic: str,
    needs: tuple[str, ...] = (),
    tools: tuple[str, ...] = (),
    reply: str = "info",
    question_topic: str = "",
    offer: str = "",
) -> IntentRecord:
    return IntentRecord(name, topic, needs, tools, reply, question_topic or topic, offer)


RECORDS: Final = MappingProxyType(
    {
        r.name: r
        for r in (
            _r(
                "cancel",
                "cancel order cancellation",
                ("customer", "order"),
                ("get_order", "cancel_order"),
                "action",
                "cancel order when can an order be cancelled",
                offer="cancel",
            ),
            _r(
                "return",
                "how to return a product step by step label",
                ("customer", "order", "products"),
                ("get_order", "create_return"),
                "action",
                "return policy 30-day return window",
                offer="return",
            ),
            _r(
                "refund",
                "refunds refund money back",
                ("customer", "order", "amount"),
                ("get_order", "create_refund"),
                "action",
                "refunds how long refund takes",
                offer="refund",
            ),
            _r(
                "refund_status",
                "refunds my refund has not arrived how long a refund takes",
                ("customer", "order"),
                ("get_order",),
                "status",
                "refunds my refund has not arrived how long a refund takes",
            ),
            _r(
                "replacement",
                "replacement when we send a replacement how to ask for a replacement",
                ("customer", "order", "product"),
                ("get_order", "create_ticket", "send_replacement"),
                "action",
                "replacement when we send a replacement",
                offer="replacement",
            ),
            _r(
                "damaged",
                "damaged defective product arrived damaged",
                ("customer", "order"),
                ("get_order", "create_ticket"),
                "action",
                "damaged defective products what to do",
                offer="damaged",
            ),
            _r(
                "damaged_refund",
                "damaged defective product refund",
                ("customer", "order", "product"),
                ("get_order", "create_ticket", "create_refund"),
                "action",
            ),
            _r(
                "wrong_item",
                "received the wrong item",
                ("customer", "order", "product"),
                ("get_order", "create_ticket", "send_replacement"),
                "action",
                offer="replacement",
            ),
            _r("invoice", "order history invoices", (), (), "info"),
            _r("went_through", "website problems did my order go through", (), (), "info"),
            _r("problem", "damaged defective product what to do first", (), (), "ask"),
            _r("password_email", "I did not receive the reset email", (), (), "info"),
            _r(
                "exchange",
                "exchanges for another size or colour",
                (),
                (),
                "info",
                "exchanges for another size or colour",
            ),
            _r(
                "missing",
                "late lost missing delivery parcel",
                ("customer", "order"),
                ("get_order",),
                "status",
            ),
            _r(
                "tracking",
                "tracking where is my order status",
                ("customer", "order"),
                ("get_order",),
                "status",
                "order statuses mean tracking",
            ),
            _r(
                "order_history",
                "order history see your past orders",
                ("customer",),
                ("get_order_history",),
                "list",
                "order history invoices",
            ),
            _r(
                "password",
                "reset password forgot",
                ("customer",),
                ("reset_password",),
                "action",
                "change password",
                offer="password",
            ),
            _r("account_recovery", "account recovery cannot sign in access", (), (), "info"),
            _r(
                "account_takeover",
                "someone else used my account",
                ("customer",),
                ("reset_password",),
                "action",
            ),
            _r(
                "profile",
                "update profile details what you can change",
                ("customer", "value"),
                ("update_info",),
                "action",
                "update profile details how to update",
                offer="",
            ),
            _r(
                "voucher",
                "vouchers using a voucher goodwill",
                ("customer", "amount"),
                ("get_order", "issue_voucher"),
                "action",
                "vouchers discount codes using a voucher",
            ),
            _r(
                "complaint",
                "making a complaint",
                ("customer",),
                ("get_order", "create_complaint"),
                "action",
                "how to make a complaint what happens next",
            ),
            _r(
                "bug",
                "website app problems something does not work",
                ("customer",),
                ("create_ticket",),
                "action",
            ),
            _r("international", "international shipping countries", (), (), "info"),
            _r("shipping", "delivery options shipping costs", (), (), "info"),
            _r("payment", "payment methods accepted", (), (), "info"),
            _r("hours", "support hours contact us", (), (), "info"),
            _r("privacy", "privacy personal data", (), (), "info"),
            _r("warranty", "warranty covers claim", (), (), "info"),
            _r("human", "escalation when to escalate how to escalate", (), (), "escalate"),
            _r("thanks", "", (), (), "social"),
            _r("greeting", "", (), (), "social"),
        )
    }
)

#: Intents that change something on the account (as opposed to asking or looking up).
ACTION_INTENTS: Final = frozenset(name for name, r in RECORDS.items() if r.reply == "action")

#: Intents whose tools only look something up (they still need the order).
LOOKUP_INTENTS: Final = frozenset({"missing", "tracking", "refund_status", "order_history"})

#: What a "yes" turns a finished request into ("the zip is broken" -> ticket; "yes" ->
#: the replacement the articles offer first).
FOLLOW_ON: Final = MappingProxyType({"damaged": "replacement", "wrong_item": "replacement"})

#: Goodwill voucher guide values of the representatives' voucher procedure, used
#: when the customer asks for a voucher without naming an amount.
VOUCHER_GUIDE: Final = MappingProxyType({"delay": 10.0, "damaged": 15.0})
