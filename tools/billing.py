"""Billing tool for the demo shop: what an order was charged and where its refund stands.

Reads the shop database (``_shop.py``) read-only. The refund rules are the help-center's
(demo/kb/refunds.md, cancellations.md, returns.md): a cancelled order is refunded in full at once, a
returned order once the item is back at the warehouse; card refunds take 5 to 10 business days.
"""

from __future__ import annotations

from react_agent import tool
from react_agent.plugins import load_sibling

shop = load_sibling(__file__, "_shop")
CARD_DAYS = "5 to 10 business days"


def _refund_line(status: str, total: float) -> str:
    if status == "cancelled":
        return f"refund: ${total:.2f} refunded in full when the order was cancelled (cards: {CARD_DAYS})"
    if status == "returned":
        return f"refund: ${total:.2f} refunded once the returned item reached the warehouse (cards: {CARD_DAYS})"
    if status in ("pending", "processing"):
        return "refund: none; the order can still be cancelled for a full refund"
    return "refund: none; items can be returned within 30 days of delivery"


@tool
def billing_status(order_id: int | str) -> str:
    """Look up what an order was charged and whether it was refunded.

    Args:
        order_id: the order number, e.g. 1003.
    """
    number = shop.parse_order_id(order_id)
    with shop.connect(readonly=True) as conn:
        row = shop.order_row(conn, number)
    return (f"Order {number}: {row['status']}; charged ${row['total']:.2f} on {row['order_date']}; "
            f"{_refund_line(row['status'], row['total'])}.")
