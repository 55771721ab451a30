"""Which store a program gets when it names none: ``$REACT_AGENT_STORE``.

* unset (or empty) — ``DiskStore()``, the store folder under ``$REACT_AGENT_HOME`` (the default);
* a ``postgresql://`` or ``postgres://`` URL — ``PostgresStore(url)`` (the ``postgres`` extra).

Anything else is a ``UserError`` (one line and exit 2 at the CLI). Nothing here imports a driver.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import UserError
from ..redact import secret_name

if TYPE_CHECKING:
    from .base import Store

__all__ = ["POSTGRES_SCHEMES", "STORE_ENV", "dsn_passwords", "open_store", "redact_dsn"]

STORE_ENV = "REACT_AGENT_STORE"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
KEYWORD_PASSWORD = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def open_store(url: str | None = None) -> Store:
    """The store ``url`` names, else the one ``$REACT_AGENT_STORE`` names, else the disk store."""
    chosen = (os.environ.get(STORE_ENV, "") if url is None else url).strip()
    if not chosen:
        from .disk import DiskStore  # noqa: PLC0415 - the default backend, as before

        return DiskStore()
    if chosen.lower().startswith(POSTGRES_SCHEMES):
        from .postgres import PostgresStore  # noqa: PLC0415 - deferred: psycopg only when it is asked for

        return PostgresStore(chosen)
    raise UserError(f"{STORE_ENV}={redact_dsn(chosen)} is not a store URL: set a postgresql:// URL "
                    "(e.g. postgresql://user:password@host/database), or unset it for the disk store")


def redact_dsn(dsn: str) -> str:
    """``dsn`` (a URL, or libpq's ``key=value`` form) with every password replaced by ``***``."""
    if "://" not in dsn:
        return KEYWORD_PASSWORD.sub(r"\1***", dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if password else netloc
    query = "&".join(f"{key}=***" if secret_name(key) else f"{key}{eq}{value}"
                     for key, eq, value in (item.partition("=") for item in parts.query.split("&") if item))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def dsn_passwords(dsn: str) -> list[str]:
    """The passwords written in ``dsn``, as written and decoded (to scrub them from a driver's messages)."""
    found: list[str] = []
    if "://" in dsn:
        parts = urlsplit(dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.partition(":")[2])
        found += [item.partition("=")[2] for item in parts.query.split("&") if "password" in item.partition("=")[0]]
    else:
        found += [m.group(2).strip("'") for m in KEYWORD_PASSWORD.finditer(dsn)]
    return sorted({p for raw in found if raw for p in (raw, unquote(raw))}, key=len, reverse=True)
