from decimal import Decimal

import pytest

from tinyshop.cart import Cart, page_count, paginate


def test_subtotal_and_total():
    cart = Cart()
    cart.add("KB-1", "89.00")
    cart.add("MS-2", "24.99", quantity=2)
    assert cart.subtotal() == Decimal("138.98")
    assert cart.total(discount_percent=10) == Decimal("125.08")


def test_quantity_must_be_positive():
    with pytest.raises(ValueError):
        Cart().add("KB-1", "89.00", quantity=0)


def test_first_page_starts_with_first_item():
    items = [f"order-{n}" for n in range(1, 26)]
    assert paginate(items, page=1, per_page=10) == items[:10]


def test_page_count():
    assert page_count(25, per_page=10) == 3
    assert page_count(0) == 0
