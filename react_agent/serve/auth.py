"""Bearer API keys, each bound to a user id: ``REACT_AGENT_API_KEYS="key:user,key2:user2"`` or a keys
file (one ``key:user`` a line, ``#`` comments). Keys are kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import UserError

__all__ = ["ENV_KEYS", "Keys", "load_keys", "parse_keys"]

ENV_KEYS = "REACT_AGENT_API_KEYS"


class Keys:
    """Who a bearer token belongs to."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise UserError(f"no API keys: set {ENV_KEYS}=key:user[,key2:user2] or pass --keys FILE")
        self._users = {_digest(key): user for key, user in keys.items()}

    def user(self, token: str) -> str | None:
        return self._users.get(_digest(token))

    def __len__(self) -> int:
        return len(self._users)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(text: str, where: str) -> dict[str, str]:
    """``key:user`` pairs separated by commas or lines; the user id is after the last colon."""
    keys: dict[str, str] = {}
    for n, line in enumerate(text.replace(",", "\n").splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        key, sep, user = item.rpartition(":")
        key, user = key.strip(), user.strip()
        if not sep or not key or not user or any(c.isspace() for c in key + user):
            raise UserError(f"{where}: entry {n} is not key:user")
        if key in keys:
            raise UserError(f"{where}: entry {n} repeats a key")
        keys[key] = user
    return keys


def load_keys(path: str | Path | None = None) -> Keys:
    """The keys of ``path`` (a keys file) and of ``$REACT_AGENT_API_KEYS``, together."""
    keys = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--keys {path}: {exc.strerror or exc}") from None
        keys.update(parse_keys(text, f"--keys {path}"))
    keys.update(parse_keys(os.environ.get(ENV_KEYS, ""), f"${ENV_KEYS}"))
    return Keys(keys)
