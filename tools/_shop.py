"""The demo shop database, shared by the support and data-analysis tools (not a plugin: the leading
underscore keeps tool discovery from loading it; the tool files load it by path).

The database lives at ``state_dir()/shop.db`` and is built on first use from the seed files in
``demo/shop/`` (schema.sql plus one CSV per table), so every fresh state folder starts from the same
data and tickets written by the support agent persist across runs.
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from react_agent import ModelRetry
from react_agent.paths import state_dir

DEMO_DIR_ENV = "REACT_AGENT_DEMO_DIR"
DB_NAME = "shop.db"
SEED_TABLES = ("customers", "products", "orders", "order_items")  # in foreign-key order


_ORDER_REF = re.compile(r"^\s*(?:order\s*)?(?:(?:no\.?|number|id)\s*)?#?\s*(\d{1,9})\s*$", re.IGNORECASE)


def parse_order_id(order_id: int | str) -> int:
    """1042, "1042", "#1042", "order 1042" or "Order #1042" → 1042; anything else is a ModelRetry."""
    if isinstance(order_id, int):
        return order_id
    match = _ORDER_REF.match(order_id)
    if match is None:
        raise ModelRetry(f"{order_id!r} is not an order number. Pass just the number, e.g. 1042.")
    return int(match.group(1))


def order_row(conn: sqlite3.Connection, number: int) -> sqlite3.Row:
    """The order (with its customer's name); a ModelRetry naming the valid range when there is none."""
    row = conn.execute(
        "SELECT o.*, c.first_name, c.last_name FROM orders o JOIN customers c USING (customer_id) "
        "WHERE o.order_id = ?", (number,)).fetchone()
    if row is None:
        low, high = conn.execute("SELECT min(order_id), max(order_id) FROM orders").fetchone()
        raise ModelRetry(f"Order {number} was not found (order numbers run from {low} to {high}). "
                         "Ask the customer to confirm the order number.")
    return row


def demo_dir() -> Path:
    """The demo data folder: ``$REACT_AGENT_DEMO_DIR``, else ``demo/`` beside the tools folder."""
    override = os.environ.get(DEMO_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "demo"


def build(target: Path, seed: Path) -> None:
    """Write a fresh shop database at ``target`` from ``seed`` (schema.sql and the CSVs)."""
    conn = sqlite3.connect(target)
    try:
        conn.executescript((seed / "schema.sql").read_text(encoding="utf-8"))
        for table in SEED_TABLES:
            with (seed / f"{table}.csv").open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader)
                rows = [[value if value != "" else None for value in row] for row in reader]
            # table and column names come from our own seed files, not from a model
            sql = f"INSERT INTO {table} ({', '.join(header)}) VALUES ({', '.join('?' * len(header))})"  # noqa: S608
            conn.executemany(sql, rows)
        conn.commit()
    finally:
        conn.close()


def db_path() -> Path:
    """The shop database in the state folder, built from the seed data the first time."""
    path = state_dir() / DB_NAME
    if not path.exists():
        seed = demo_dir() / "shop"
        if not (seed / "schema.sql").is_file():
            raise FileNotFoundError(f"demo shop seed data not found in {seed} (set ${DEMO_DIR_ENV})")
        partial = path.with_name(f".{DB_NAME}.{os.getpid()}.tmp")
        partial.unlink(missing_ok=True)
        try:
            build(partial, seed)
            with suppress(FileExistsError):  # another process built it first: keep theirs
                os.link(partial, path)  # atomic, and never clobbers an existing database
        finally:
            partial.unlink(missing_ok=True)
    return path


@contextmanager
def connect(*, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to the shop database, committed on success, rolled back on error, always closed.
    ``readonly`` opens it with ``mode=ro`` and ``query_only``."""
    path = db_path()
    if readonly:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, timeout=10)
        conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    try:
        yield conn
        if conn.in_transaction:
            conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    finally:
        conn.close()
