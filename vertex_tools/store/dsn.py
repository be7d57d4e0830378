"""Where the shared state lives: a PostgreSQL URL, held so its password never shows.

``vertex --store postgresql://user@host/db`` (or ``VERTEX_STORE``) names the
database every broker replica and operator command shares. The password is
best kept out of the URL (``PGPASSWORD``, ``~/.pgpass`` or a ``passfile=``
parameter, all honoured by libpq); when it is in the URL, it is used to
connect and nowhere else: :meth:`PostgresDsn.redacted` is what every message,
repr and log line shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vertex_tools.errors import ConfigError

__all__ = ["ENV_STORE", "SCHEMES", "PostgresDsn", "is_postgres_url", "redact_dsn"]

ENV_STORE = "VERTEX_STORE"
SCHEMES = ("postgresql", "postgres")
_MASK = "***"
# A password in a key=value conninfo string (quoted or not): never printed either.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_postgres_url(value: str) -> bool:
    """True for ``postgresql://...`` and ``postgres://...``."""
    return urlsplit(value.strip()).scheme.lower() in SCHEMES


def redact_dsn(value: str) -> str:
    """``value`` with any password replaced by ``***``: in a URL's user part or query
    (whatever its scheme: a mistyped one must not leak either), or a conninfo string."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, value)
    if not parts.scheme or not parts.netloc:  # not a URL: maybe key=value conninfo
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, value)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + _MASK
        netloc = f"{userinfo}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, _MASK if k.lower() == "password" else v) for k, v in pairs], safe="*/"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True, slots=True)
class PostgresDsn:
    """A ``postgresql://`` URL. ``str()`` and ``repr()`` show it with the password masked."""

    _url: str = field(repr=False)

    def __post_init__(self) -> None:
        """Refuse anything but a postgresql:// URL naming a database."""
        if not is_postgres_url(self._url):
            raise ConfigError(
                f"--store {redact_dsn(self._url)!r}: expected a postgresql://user@host/db URL"
            )
        try:
            path = urlsplit(self._url).path
        except ValueError as exc:
            raise ConfigError(f"--store {redact_dsn(self._url)!r}: {exc}") from exc
        if not path.strip("/"):
            raise ConfigError(
                f"--store {redact_dsn(self._url)!r} names no database: "
                "add it as the path, postgresql://user@host/DBNAME"
            )

    @property
    def url(self) -> str:
        """The URL as given, password included: only for connecting."""
        return self._url

    @property
    def redacted(self) -> str:
        """The URL with the password masked: for messages and logs."""
        return redact_dsn(self._url)

    def scrub(self, text: str) -> str:
        """``text`` with this URL's password (and any password=...) removed.

        libpq does not quote passwords in its errors, but this is a security
        product: a message about the connection is scrubbed before anyone sees it.
        """
        parts = urlsplit(self._url)
        secret = parts.password
        if secret:
            text = text.replace(secret, _MASK)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() == "password" and value:
                text = text.replace(value, _MASK)
        return _KV_PASSWORD.sub(
            lambda m: m.group(1) + _MASK, text.replace(self._url, self.redacted)
        )

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"PostgresDsn({self.redacted!r})"
