"""Regenerate the demo shop's seed CSVs (synthetic data) from a fixed random seed.

    python demo/shop/generate.py            # rewrites the CSVs next to this file
    python demo/shop/generate.py OUT_DIR    # writes them elsewhere (the tests compare the two)

The output depends only on SEED and the tables below, so the committed CSVs can always be rebuilt
byte for byte. Data "as of" 2024-06-30: recent orders are still pending or in transit, older ones
were delivered, a few are delayed by the carrier, and some were cancelled or returned.
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import date, timedelta
from pathlib import Path

SEED = 20240630
AS_OF = date(2024, 6, 30)
FIRST_ORDER = 1001
N_ORDERS = 200
N_CUSTOMERS = 40

FIRST_NAMES = ["Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira",
               "Liam", "Maya", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
               "Will", "Xenia", "Yusuf", "Zoe"]
LAST_NAMES = ["Anders", "Brooks", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Hughes", "Ivanova",
              "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt",
              "Tanaka", "Usman", "Varga", "Walsh", "Young", "Zhou"]
CITIES = [("Seattle", "US"), ("Austin", "US"), ("Chicago", "US"), ("Boston", "US"), ("Denver", "US"),
          ("Toronto", "CA"), ("Vancouver", "CA"), ("London", "GB"), ("Manchester", "GB"), ("Dublin", "IE")]
# (name, category, price)
PRODUCTS = [
    ("USB-C Hub 7-in-1", "accessories", 39.99), ("Wireless Mouse", "accessories", 24.99),
    ("Mechanical Keyboard", "accessories", 89.00), ("Laptop Stand", "accessories", 34.50),
    ("27in 4K Monitor", "displays", 329.00), ("24in IPS Monitor", "displays", 159.00),
    ("Noise-Cancelling Headphones", "audio", 199.00), ("Bluetooth Speaker", "audio", 59.95),
    ("USB Microphone", "audio", 74.00), ("1TB External SSD", "storage", 109.00),
    ("256GB microSD Card", "storage", 27.49), ("4TB NAS Drive", "storage", 119.00),
    ("Webcam 1080p", "video", 49.99), ("Ring Light", "video", 29.99), ("Wi-Fi 6 Router", "networking", 139.00),
    ("Mesh Wi-Fi Kit (3-pack)", "networking", 249.00), ("Cat6 Cable 10m", "networking", 12.99),
    ("Smart Plug (2-pack)", "smart home", 22.00), ("Smart Thermostat", "smart home", 179.00),
    ("Video Doorbell", "smart home", 129.00),
]
CARRIERS = ["UPS", "FedEx", "USPS", "DHL"]
TRANSIT_DAYS = {"UPS": (2, 5), "FedEx": (1, 4), "USPS": (3, 7), "DHL": (4, 9)}


def tracking_number(rng: random.Random, carrier: str) -> str:
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))
    if carrier == "USPS":
        return "9400" + "".join(rng.choice("0123456789") for _ in range(18))
    digits = 12 if carrier == "FedEx" else 10
    return "".join(rng.choice("0123456789") for _ in range(digits))


def generate() -> dict[str, list[dict[str, object]]]:
    rng = random.Random(SEED)  # noqa: S311 - reproducible demo data, not secrets
    customers = []
    for i in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        joined = date(2022, 1, 1) + timedelta(days=rng.randrange(0, 800))
        customers.append({"customer_id": f"C{i:03d}", "first_name": first, "last_name": last,
                          "email": f"{first.lower()}.{last.lower()}{i}@example.com", "city": city,
                          "country": country, "joined": joined.isoformat()})
    products = [{"product_id": f"P{i:02d}", "name": name, "category": category, "price": f"{price:.2f}"}
                for i, (name, category, price) in enumerate(PRODUCTS, start=1)]

    orders, items = [], []
    start = date(2024, 1, 2)
    span = (AS_OF - start).days
    recent = N_ORDERS // 5  # the last two weeks are busy: a fifth of the orders are still in flight
    dates = sorted([start + timedelta(days=rng.randrange(0, span - 13)) for _ in range(N_ORDERS - recent)]
                   + [AS_OF - timedelta(days=rng.randrange(0, 14)) for _ in range(recent)])
    for n, ordered in enumerate(dates):
        order_id = FIRST_ORDER + n
        customer = rng.choice(customers)
        lines = rng.sample(range(len(PRODUCTS)), k=rng.choice([1, 1, 1, 2, 2, 3]))
        total = 0.0
        for index in sorted(lines):
            quantity = rng.choice([1, 1, 1, 1, 2, 2, 3])
            price = PRODUCTS[index][2]
            total += quantity * price
            items.append({"order_id": order_id, "product_id": f"P{index + 1:02d}", "quantity": quantity,
                          "unit_price": f"{price:.2f}"})
        age = (AS_OF - ordered).days
        carrier = rng.choice(CARRIERS)
        low, high = TRANSIT_DAYS[carrier]
        ship_delay = rng.choice([0, 1, 1, 2, 3])
        transit = rng.randint(low, high)
        roll = rng.random()
        if roll < 0.06:
            status = "cancelled"
        elif age < ship_delay:
            status = "pending" if age == 0 else "processing"
        elif age < ship_delay + transit:
            status = "shipped"
        elif roll < 0.09 and age < 30:
            status = "delayed"  # a carrier exception: shipped, not delivered, past the estimate
        elif roll < 0.13 and age > 20:
            status = "returned"
        else:
            status = "delivered"
        shipped = ordered + timedelta(days=ship_delay)
        row: dict[str, object] = {"order_id": order_id, "customer_id": customer["customer_id"],
                                  "order_date": ordered.isoformat(), "status": status, "carrier": "",
                                  "tracking_number": "", "shipped_date": "", "estimated_delivery": "",
                                  "delivered_date": "", "total": f"{total:.2f}"}
        if status in ("shipped", "delayed", "delivered", "returned"):
            row.update(carrier=carrier, tracking_number=tracking_number(rng, carrier),
                       shipped_date=shipped.isoformat(),
                       estimated_delivery=(shipped + timedelta(days=high)).isoformat())
        if status in ("delivered", "returned"):
            row["delivered_date"] = (shipped + timedelta(days=transit)).isoformat()
        if status in ("pending", "processing"):
            row["estimated_delivery"] = (ordered + timedelta(days=ship_delay + high)).isoformat()
        orders.append(row)
    return {"customers": customers, "products": products, "orders": orders, "order_items": items}


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for table, rows in generate().items():
        with (out / f"{table}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
