"""Shop data the offline engine's unit tests feed it, as ``get_order`` returns it."""

from __future__ import annotations

from typing import Any

#: the tool names of the shipped catalog
TOOL_NAMES = ("get_order", "get_order_history", "cancel_order", "create_return",
              "create_refund", "send_replacement", "reset_password", "update_info",
              "issue_voucher", "create_complaint", "create_ticket")

#: a delivered order of two lines (the seed's ORD1003 as the shop tool reports it)
ORD1003: dict[str, Any] = {
    "order_id": "ORD1003", "status": "delivered", "delivered_on": "2026-11-20",
    "can_cancel": False, "returnable": True, "refundable_amount": 127.5,
    "items": [
        {"product_id": "P1002", "name": "Trailblazer Backpack 30L", "line_total": 79.5},
        {"product_id": "P1004", "name": "Merino Wool Crew Socks (3-pack)", "line_total": 48.0},
    ],
}
