"""Keep credentials out of files and child processes: one rule for what a secret's name looks like.

* ``secret_name(name)``: split into words at anything but letters and digits (``X-Api-Key`` → x, api,
  key), a name is secret-looking when a word contains ``key``, ``token``, ``secret``, ``passw``, ``pwd``,
  ``auth`` or ``credential``, or is ``sig``, ``signature`` or ``code``. The rule errs towards dropping:
  ``monkey`` counts too.
* ``redact_url(url)``: the URL without its userinfo (``user:KEY@``), its fragment and every query
  parameter with a secret-looking name; the path stays the path and the other parameters stay the query.
  Recording writes request URIs through it (matching never looks at the query).
* ``redact_dsn(dsn)``: a database URL (or libpq ``key=value`` string) with every password replaced by ``***``
  and the rest kept, so a message still says which database; ``dsn_passwords`` lists them, to scrub a
  driver's messages.
* ``safe_env()``: the environment a tool's subprocess gets — only what it needs to run (``PATH``,
  ``HOME``, ``USER``/``LOGNAME``, ``LANG``/``LANGUAGE``/``LC_*``, ``TZ``, ``TMPDIR``/``TEMP``/``TMP``,
  ``PYTHON*``, and on Windows ``SYSTEMROOT``/``WINDIR``/``COMSPEC``/``PATHEXT``), and of those none with
  a secret-looking name. ``OPENAI_API_KEY``, ``AWS_*``, ``*_TOKEN`` and the rest never reach the child.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["dsn_passwords", "redact_dsn", "redact_url", "safe_env", "secret_name"]

SECRET_PARTS = ("key", "token", "secret", "passw", "pwd", "auth", "credential")
SECRET_WORDS = {"sig", "signature", "code"}
ENV_NAMES = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
             "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT"}
ENV_PREFIXES = ("LC_", "PYTHON")
_WORD = re.compile(r"[a-z0-9]+")
KEYWORD_PASSWORD = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def secret_name(name: str) -> bool:
    """Whether a query parameter or environment variable called ``name`` may hold a credential."""
    return any(word in SECRET_WORDS or any(part in word for part in SECRET_PARTS)
               for word in _WORD.findall(name.lower()))


def redact_url(url: str) -> str:
    """``url`` without userinfo, fragment and secret-looking query parameters, still well formed."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not secret_name(k)]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(kept), ""))


def safe_env(extra: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tool's subprocess: the variables of ``environ`` (default ``os.environ``)
    a program needs to run, none secret-looking, plus ``extra`` as given."""
    source = os.environ if environ is None else environ
    env = {name: value for name, value in source.items()
           if (name.upper() in ENV_NAMES or name.upper().startswith(ENV_PREFIXES)) and not secret_name(name)}
    return {**env, **(extra or {})}


def _split_dsn_url(dsn: str) -> tuple[str, str, str, str]:
    """``scheme://``, the userinfo, the hosts and path, and the query of a database URL — by plain string
    rules, so a password holding ``# ? / @`` (libpq takes them unencoded) stays inside the userinfo and
    nothing here can fail. The userinfo runs to the last ``@``: a password cut there by mistake is still
    redacted whole."""
    scheme, _, rest = dsn.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not at:
        userinfo, after = "", rest
    where, _, query = after.partition("?")
    return f"{scheme}://", userinfo, where, query


def redact_dsn(dsn: str) -> str:
    """``dsn`` (a URL, or libpq's ``key=value`` form) with every password replaced by ``***``; never raises."""
    if "://" not in dsn:
        return KEYWORD_PASSWORD.sub(r"\1***", dsn)
    scheme, userinfo, where, query = _split_dsn_url(dsn)
    user, colon, _ = userinfo.partition(":")
    login = f"{user}:***@" if colon else f"{userinfo}@" if userinfo else ""
    query = "&".join(f"{key}=***" if secret_name(key) else f"{key}{eq}{value}"
                     for key, eq, value in (item.partition("=") for item in query.split("&") if item))
    return f"{scheme}{login}{where}" + (f"?{query}" if query else "")


def dsn_passwords(dsn: str) -> list[str]:
    """The passwords written in ``dsn``, as written and decoded — and, for one holding ``@ / ? #``, its
    pieces, which a driver may echo as part of a host name — to scrub them from a driver's messages."""
    found: list[str] = []
    if "://" in dsn:
        _, userinfo, _, query = _split_dsn_url(dsn)
        if ":" in userinfo:
            found.append(userinfo.partition(":")[2])
        found += [item.partition("=")[2] for item in query.split("&") if secret_name(item.partition("=")[0])]
    else:
        found += [m.group(2).strip("'") for m in KEYWORD_PASSWORD.finditer(dsn)]
    whole = {p for raw in found if raw for p in (raw, unquote(raw))}
    pieces = {piece for p in whole for piece in re.split(r"[@/?#]", p) if len(piece) >= 3}
    return sorted(whole | pieces, key=len, reverse=True)
