"""Nightly CSV export of orders, compressed for the archive."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
from pathlib import Path


def export_orders(conn: sqlite3.Connection, path: Path) -> int:
    """Write all orders to ``path`` as CSV; returns the number of rows written."""
    rows = conn.execute("SELECT id, customer_id, total FROM orders ORDER BY id").fetchall()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "customer_id", "total"])
        writer.writerows(tuple(row) for row in rows)
    return len(rows)


def archive(path: Path) -> Path:
    """Compress the report with gzip and return the archive's path."""
    subprocess.run(f"gzip -f {path}", shell=True, check=True)
    return path.with_suffix(path.suffix + ".gz")
