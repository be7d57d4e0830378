"""Pydantic models of policy.toml, version 1.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Defaults are the safe choice: no private upstreams, no bearer
tokens, short token lifetimes. Cross-references (a grant's upstream) are checked by
the loader, which reports them with their line like every other problem.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vertex_tools.policy.durations import Rate, parse_duration, parse_rate
from vertex_tools.policy.paths import PathPattern

if TYPE_CHECKING:
    from vertex_tools.broker.upstream_url import UpstreamURL

__all__ = [
    "AllowRule",
    "Grant",
    "Inject",
    "Policy",
    "RateLimits",
    "Settings",
    "Spend",
    "TaintRules",
    "Upstream",
]

SUPPORTED_VERSIONS = (1,)
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")

Name = Annotated[str, Field(pattern=_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Settings(_Model):
    """Broker-wide settings."""

    allow_private_upstreams: list[str] = Field(default_factory=list)
    """Addresses or networks that upstreams may resolve to although not public."""
    clock_skew: str = "5m"
    """How far a signed request's timestamp may be from the broker's clock."""
    max_request_bytes: int = Field(default=1_048_576, ge=1, le=64 * 1_048_576)
    max_response_bytes: int = Field(default=8 * 1_048_576, ge=1, le=256 * 1_048_576)
    connect_timeout: str = "5s"
    read_timeout: str = "30s"
    approval_ttl: str = "1h"
    """How long a held request waits for a human, and an approval for its retry."""
    max_pending_approvals: int = Field(default=20, ge=1, le=10_000)
    """Pending, unexpired approvals a token may have at once; past it a new held request
    is refused (``too_many_pending_approvals``), so decoys cannot bury the one that matters."""
    idempotency_ttl: str = "24h"
    """How long an agent's idempotency key stays bound to its request (Stripe keeps 24 h)."""
    taint_memory_ttl: str = "1h"
    """How long the broker remembers the untrusted values it served to a run."""
    taint_memory_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    """Untrusted text remembered per run; past it the run is treated as strict."""
    taint_memory_runs: int = Field(default=10_000, ge=8, le=1_000_000)
    """Runs remembered at once (a token at most a quarter of them); a token whose run had
    to be forgotten is treated as strict until the memory's time-to-live has passed."""

    @field_validator("allow_private_upstreams")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network") from exc
        return value

    @field_validator(
        "clock_skew",
        "connect_timeout",
        "read_timeout",
        "approval_ttl",
        "idempotency_ttl",
        "taint_memory_ttl",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def clock_skew_seconds(self) -> int:
        """``clock_skew`` in seconds."""
        return parse_duration(self.clock_skew)


class Inject(_Model):
    """Where the broker puts the vaulted secret on the outbound request."""

    header: str = "Authorization"
    format: str = "Bearer {secret}"

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not a header name")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.count("{secret}") != 1 or re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError(
                "format must contain '{secret}' exactly once and no control characters"
            )
        if "{" in value.replace("{secret}", "") or "}" in value.replace("{secret}", ""):
            raise ValueError("format may contain no braces other than '{secret}'")
        return value


class Upstream(_Model):
    """A named upstream API the broker may forward to.

    ``provider = "http"`` is generic egress with method/path rules; ``stripe``,
    ``github`` and ``supabase`` use the provider's catalog of operations.
    """

    provider: Literal["http", "stripe", "github", "supabase"]
    base_url: str
    secret: Name
    inject: Inject | list[Inject] | None = None
    responses: Literal["untrusted", "trusted"] = "untrusted"
    """``http`` upstreams: whether their answers are third-party content (the default)
    or the user's own data. Catalog providers mark untrusted fields themselves."""
    trusted_fields: list[str] = Field(default_factory=list)
    """Catalog providers: answer fields the catalog marks untrusted that are, for this
    deployment, written by its own systems (``metadata``, ``data[].metadata``)."""
    untrusted_fields: list[str] = Field(default_factory=list)
    """Catalog providers: further answer fields to treat as third-party content."""
    """Where the secret goes; default: the provider's (http: Authorization: Bearer)."""

    @cached_property
    def url(self) -> UpstreamURL:
        """``base_url`` parsed (once: it is validated at load and used on every call)."""
        from vertex_tools.broker.upstream_url import parse_upstream_url

        return parse_upstream_url(self.base_url)

    @property
    def injections(self) -> list[tuple[str, str]]:
        """(header, format) pairs, the provider's defaults when none are configured."""
        if isinstance(self.inject, Inject):
            return [(self.inject.header, self.inject.format)]
        if self.inject:
            return [(i.header, i.format) for i in self.inject]
        if self.provider == "http":
            return [("Authorization", "Bearer {secret}")]
        from vertex_tools.providers import get_catalog

        return list(get_catalog(self.provider).inject)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        # Imported here: netguard is the broker's, and the models must stay importable alone.
        from vertex_tools.broker.netguard import parse_upstream_url
        from vertex_tools.errors import ConfigError

        try:
            parse_upstream_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value


class AllowRule(_Model):
    """One method and path pattern a grant may use."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        PathPattern.parse(value)
        return value

    @property
    def pattern(self) -> PathPattern:
        """The compiled path pattern."""
        return PathPattern.parse(self.path)


class Spend(_Model):
    """A spend ceiling in minor units of one currency (cents for usd)."""

    currency: str = Field(pattern=r"^[a-z]{3}$")
    per_call: int | None = Field(default=None, ge=1)
    per_day: int | None = Field(default=None, ge=1)
    amount_field: str = Field(default="amount", pattern=r"^[A-Za-z0-9_.\[\]-]{1,64}$")
    currency_field: str = Field(default="currency", pattern=r"^[A-Za-z0-9_.\[\]-]{1,64}$")

    @model_validator(mode="after")
    def _some_ceiling(self) -> Spend:
        if self.per_call is None and self.per_day is None:
            raise ValueError("spend needs per_call, per_day or both")
        if self.per_call is not None and self.per_day is not None and self.per_call > self.per_day:
            raise ValueError("per_call is larger than per_day")
        return self


class RateLimits(_Model):
    """Rate limits; ``rate = "5/second"`` is shorthand for ``{ per_token = "5/second" }``."""

    per_token: str | None = None
    per_grant: str | None = None

    @field_validator("per_token", "per_grant")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimits:
        if self.per_token is None and self.per_grant is None:
            raise ValueError("rate needs per_token, per_grant or both")
        return self

    @property
    def token_rate(self) -> Rate | None:
        """The per-token rate, parsed."""
        return parse_rate(self.per_token) if self.per_token else None

    @property
    def grant_rate(self) -> Rate | None:
        """The per-grant rate, parsed."""
        return parse_rate(self.per_grant) if self.per_grant else None


RiskName = Literal["read", "write", "money", "destructive"]


def _not_reads() -> list[RiskName]:
    return ["write", "money", "destructive"]


class TaintRules(_Model):
    """What happens to a sensitive request whose control arguments came from
    untrusted content (an issue body, a row, a web page) and not from the user."""

    control: Literal["deny", "approve", "allow"] = "deny"
    """The effect of a tainted control argument."""
    strict: bool = False
    """Once untrusted content has entered the run, every sensitive request needs approval
    (value matching cannot see paraphrase or an action chosen rather than copied)."""
    sensitive: list[RiskName] = Field(default_factory=_not_reads, min_length=1)
    """Risk classes these rules apply to; reads are not held by default."""
    scope: Literal["run", "token"] = "run"
    """What the broker's memory of served content covers. ``run``: each agent run
    (``X-Vertex-Run``) apart, and a value the client reports as the user's is not held
    against it. ``token``: everything served to the token, whatever run the client
    names, and no client claim clears it: for agent processes you do not trust to
    report honestly, at the cost of more refusals."""


class Grant(_Model):
    """What the holder of a token issued for this grant may do.

    For ``http`` upstreams, ``allow`` lists method/path rules; for catalog
    providers, ``operations`` lists operation names and ``repos`` (GitHub) or
    ``tables`` (Supabase) the resources. The loader checks which applies.
    """

    upstream: Name
    allow: list[AllowRule] | None = Field(default=None, min_length=1)
    operations: list[str] | None = Field(default=None, min_length=1)
    repos: list[str] | None = Field(default=None, min_length=1)
    tables: list[str] | None = Field(default=None, min_length=1)
    rate: RateLimits | None = None
    spend: Spend | None = None
    taint: TaintRules = TaintRules()
    bearer: bool = False
    """Accept plain ``Authorization: Bearer <token>`` (official SDKs); signed requests otherwise."""
    ttl: str = "1h"
    """Default lifetime of a token issued without ``--ttl``."""
    max_ttl: str = "24h"

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_shorthand(cls, value: object) -> object:
        if isinstance(value, str):
            return {"per_token": value}
        return value

    @field_validator("ttl", "max_ttl")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _ttl_within_max(self) -> Grant:
        if parse_duration(self.ttl) > parse_duration(self.max_ttl):
            raise ValueError(f"ttl {self.ttl} is longer than max_ttl {self.max_ttl}")
        return self

    @property
    def ttl_seconds(self) -> int:
        """Default token lifetime in seconds."""
        return parse_duration(self.ttl)

    @property
    def max_ttl_seconds(self) -> int:
        """Longest token lifetime in seconds."""
        return parse_duration(self.max_ttl)


class Policy(_Model):
    """A whole policy file."""

    version: Literal[1]
    settings: Settings = Settings()
    upstreams: dict[Name, Upstream] = Field(min_length=1)
    grants: dict[Name, Grant] = Field(min_length=1)
