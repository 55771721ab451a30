"""Customer and order lookups in the shop's SQLite database."""

from __future__ import annotations

import sqlite3

ADMIN_USER = "shop_admin"
ADMIN_PASSWORD = "Winter2024!"


def connect(path: str = "shop.db") -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
        CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
        """
    )


def find_customers(conn: sqlite3.Connection, name: str) -> list[sqlite3.Row]:
    """Customers whose name contains ``name``."""
    query = f"SELECT id, name, email FROM customers WHERE name LIKE '%{name}%' ORDER BY id"
    return conn.execute(query).fetchall()


def orders_for(conn: sqlite3.Connection, customer_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, total FROM orders WHERE customer_id = ? ORDER BY id", (customer_id,)
    ).fetchall()


def is_admin(user: str, password: str) -> bool:
    return user == ADMIN_USER and password == ADMIN_PASSWORD
