"""Customer-support tools for the demo shop: knowledge-base search, order lookup, tickets, escalation.

The knowledge base is ``demo/kb/*.md`` (one policy article per file, ``##`` sections become passages),
searched with SQLite FTS5 and bm25 ranking. Orders, tickets and escalations live in the shop database
in ``state_dir()`` (see ``_shop.py``), so tickets persist across runs and a fresh state folder always
starts from the same seed data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from react_agent import ModelRetry, tool
from react_agent.plugins import load_sibling

shop = load_sibling(__file__, "_shop")
text_search = load_sibling(__file__, "_text_search")

Priority = Literal["low", "medium", "high", "urgent"]
_TICKET_REF = re.compile(r"^\s*(?:ticket\s*)?#?\s*(?:T-?)?(\d{1,9})\s*$", re.IGNORECASE)
_KB_INDEX = text_search.Index()
PASSAGE_CHARS = 260


def kb_dir() -> Path:
    return shop.demo_dir() / "kb"


def _kb_rows() -> list[tuple[str, int, str, str, str]]:
    rows = []
    for path in sorted(kb_dir().glob("*.md")):
        title, sections = text_search.markdown_sections(path)
        rows.extend((path.stem, n, title, heading, text) for n, (heading, text) in enumerate(sections, start=1))
    return rows


def parse_ticket_id(ticket_id: str) -> int:
    match = _TICKET_REF.match(ticket_id)
    if match is None:
        raise ModelRetry(f"{ticket_id!r} is not a ticket id. Use the id create_ticket returned, e.g. T-0001.")
    return int(match.group(1))


def ticket_label(number: int) -> str:
    return f"T-{number:04d}"


@tool(untrusted_output=True)
def search_knowledge_base(query: str, limit: Annotated[int, Field(ge=1, le=5)] = 3) -> str:
    """Search the help-center articles (shipping, returns, refunds, warranty, payments, account...).

    Args:
        query: a few keywords, e.g. "return window".
        limit: how many passages to return.
    """
    text_search.require_words(query, "'refund time'")
    files = list(kb_dir().glob("*.md"))
    hits = _KB_INDEX.search(_KB_INDEX.fingerprint(files), _kb_rows, query, limit)
    if not hits:
        return f"No article matches {query!r}. Try other keywords."
    return "\n".join(f"[{h.doc_id}] {h.heading}: {text_search.shorten(h.text, PASSAGE_CHARS)}" for h in hits)


@tool
def check_order_status(order_id: int | str) -> str:
    """Look up an order's status, carrier, tracking number, dates and items.

    Args:
        order_id: the order number, e.g. 1042.
    """
    number = shop.parse_order_id(order_id)
    with shop.connect(readonly=True) as conn:
        row = shop.order_row(conn, number)
        items = conn.execute(
            "SELECT i.quantity, p.name FROM order_items i JOIN products p USING (product_id) "
            "WHERE i.order_id = ? ORDER BY p.name", (number,)).fetchall()
        tickets = conn.execute("SELECT ticket_id, status FROM tickets WHERE order_id = ? ORDER BY ticket_id",
                               (number,)).fetchall()
    parts = [f"Order {number}: {row['status']}", f"placed {row['order_date']}",
             f"customer {row['first_name']} {row['last_name'][0]}."]
    if row["carrier"]:
        parts.append(f"{row['carrier']} tracking {row['tracking_number']}, shipped {row['shipped_date']}")
    if row["delivered_date"]:
        parts.append(f"delivered {row['delivered_date']}")
    elif row["estimated_delivery"] and row["status"] not in ("cancelled",):
        parts.append(f"estimated delivery {row['estimated_delivery']}")
    parts.append("items: " + ", ".join(f"{i['quantity']}x {i['name']}" for i in items))
    parts.append(f"total ${row['total']:.2f}")
    if tickets:
        parts.append("tickets: " + ", ".join(f"{ticket_label(t['ticket_id'])} ({t['status']})" for t in tickets))
    return "; ".join(parts) + "."


@tool(sequential=True, side_effects=True)
def create_ticket(subject: str, description: str, priority: Priority = "medium",
                  order_id: int | str | None = None) -> str:
    """Open a support ticket for a problem the knowledge base cannot solve.

    Args:
        subject: a short title, e.g. "Parcel arrived damaged".
        description: what happened and what the customer wants.
        priority: low, medium, high or urgent (urgent only for safety risks).
        order_id: the order number the ticket is about, if any.
    """
    subject, description = " ".join(subject.split()), description.strip()
    if not subject:
        raise ModelRetry("subject is empty; give the ticket a short title.")
    if len(subject) > 120:
        raise ModelRetry("subject is too long; keep it under 120 characters and put details in description.")
    if not description:
        raise ModelRetry("description is empty; say what happened and what the customer wants.")
    number = shop.parse_order_id(order_id) if order_id is not None and order_id != "" else None
    with shop.connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        if number is not None:
            shop.order_row(conn, number)
        duplicate = conn.execute(
            "SELECT ticket_id FROM tickets WHERE order_id IS ? AND subject = ? AND status != 'closed'",
            (number, subject)).fetchone()
        if duplicate is not None:
            return f"Ticket {ticket_label(duplicate[0])} with this subject is already open; not created again."
        cursor = conn.execute(
            "INSERT INTO tickets (order_id, subject, description, priority) VALUES (?, ?, ?, ?)",
            (number, subject, description, priority))
        ticket = int(cursor.lastrowid or 0)
    about = f" for order {number}" if number is not None else ""
    return f"Created ticket {ticket_label(ticket)} ({priority} priority){about}."


@tool(sequential=True, side_effects=True)
def escalate_to_human(ticket_id: str, reason: str) -> str:
    """Hand an existing ticket to a human support agent.

    Args:
        ticket_id: the ticket id from create_ticket, e.g. T-0001.
        reason: why a person must handle it, e.g. "customer asked for a manager".
    """
    number = parse_ticket_id(ticket_id)
    reason = " ".join(reason.split())
    if not reason:
        raise ModelRetry("reason is empty; say why a person must handle this ticket.")
    with shop.connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT status, priority FROM tickets WHERE ticket_id = ?", (number,)).fetchone()
        if row is None:
            raise ModelRetry(f"Ticket {ticket_label(number)} does not exist. Create a ticket first, "
                             "then escalate the id create_ticket returned.")
        if row["status"] == "escalated":
            return f"Ticket {ticket_label(number)} is already with a human agent."
        if row["status"] == "closed":
            raise ModelRetry(f"Ticket {ticket_label(number)} is closed; open a new ticket instead.")
        conn.execute("INSERT INTO escalations (ticket_id, reason) VALUES (?, ?)", (number, reason))
        conn.execute("UPDATE tickets SET status = 'escalated' WHERE ticket_id = ?", (number,))
        waiting = conn.execute("SELECT count(*) FROM tickets WHERE status = 'escalated'").fetchone()[0]
    target = {"urgent": "2 hours", "high": "1 business day", "medium": "2 business days",
              "low": "5 business days"}[row["priority"]]
    return (f"Ticket {ticket_label(number)} escalated to a human agent ({waiting} in the queue). "
            f"The customer will get an email reply within {target}.")
