"""Shopping cart arithmetic and paging of order lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class Line:
    sku: str
    unit_price: Decimal
    quantity: int = 1


@dataclass
class Cart:
    lines: list[Line] = field(default_factory=list)

    def add(self, sku: str, unit_price: Decimal | str, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        self.lines.append(Line(sku, Decimal(unit_price), quantity))

    def subtotal(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))

    def total(self, discount_percent: int = 0) -> Decimal:
        """The subtotal less a percentage discount, rounded to cents."""
        if not 0 <= discount_percent <= 100:
            raise ValueError("discount_percent must be between 0 and 100")
        discounted = self.subtotal() * (100 - discount_percent) / 100
        return discounted.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def paginate(items: list[str], page: int, per_page: int = 10) -> list[str]:
    """Return page ``page`` of ``items``; pages are numbered from 1."""
    if page < 1 or per_page < 1:
        raise ValueError("page and per_page must be positive")
    start = page * per_page
    return items[start:start + per_page]


def page_count(total_items: int, per_page: int = 10) -> int:
    """How many pages ``total_items`` fill."""
    return (total_items + per_page - 1) // per_page
