"""Answers as the official SDKs read them (``/proxy/`` used with a plain token).

An SDK that talks to the broker instead of its provider must see the broker's
refusals as its own ordinary errors, with the broker's reason in the text it
shows, and must be able to follow the URLs the provider hands out. Signed
requests (:class:`vertex_tools.client.BrokerClient`) get the broker's answers
unchanged; every other request is adapted here, after the pipeline:

* refusals keep ``{"error": {effect, reason, rule, message}, "request_id"}``
  (``Decision.from_json`` reads them) and add what each SDK reads:

  =========  ============================================  ==========================
  provider   fields added                                   the SDK raises
  =========  ============================================  ==========================
  stripe     ``error.message`` (with the reason), ``error.  ``stripe.PermissionError``,
             type``, ``error.code``; ``Request-Id`` header  ``AuthenticationError``, ...
  github     top-level ``message``, ``status``              ``GithubException``,
                                                            githubkit ``RequestFailed``
  supabase   top-level ``message``, ``code``, ``details``,  postgrest ``APIError``
             ``hint`` (PostgREST's error shape)
  =========  ============================================  ==========================

* URLs the provider names itself by (``https://api.github.com/...`` in JSON
  bodies and in ``Link`` and ``Location`` headers, and the upstream's
  configured base URL) are rewritten to the broker's ``/proxy/<upstream>``, so an SDK that
  follows them (PyGithub does for every object it completes) comes back
  through the broker instead of going around it with a token the provider
  would refuse. The broker's own address is taken from the request's ``Host``
  header, which only the caller reading the answer controls; a Host that is not
  a plain host name and port leaves the answer unrewritten.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vertex_tools.broker.answers import Outgoing
from vertex_tools.decision import Decision
from vertex_tools.errors import ConfigError
from vertex_tools.policy.models import Policy
from vertex_tools.providers import CATALOG_PROVIDERS, get_catalog

__all__ = ["for_sdk", "sdk_message"]

_UPSTREAM = re.compile(r"^/proxy/([a-z0-9][a-z0-9._-]{0,63})/")
_HOST = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?\Z")
_URL_HEADERS = frozenset({"link", "location", "content-location"})


def sdk_message(decision: Decision) -> str:
    """The one line an SDK shows for a refusal: reason and rule first, then the fix."""
    return f"vertex_tools: {decision.reason.value} (rule {decision.rule}): {decision.message}"


def for_sdk(
    answer: Outgoing,
    *,
    policy: Policy,
    raw_path: str,
    headers: list[tuple[bytes, bytes]],
    scheme: str,
) -> Outgoing:
    """``answer`` adapted for the official SDK that sent ``headers`` (unchanged for
    signed requests and for upstreams that are not a provider catalog)."""
    if _signed(headers):
        return answer
    match = _UPSTREAM.match(raw_path)
    upstream = policy.upstreams.get(match.group(1)) if match is not None else None
    if match is None or upstream is None or upstream.provider not in CATALOG_PROVIDERS:
        return answer
    provider = upstream.provider
    if answer.decision is not None:
        return _refusal(answer, answer.decision, provider)
    try:
        origin = get_catalog(provider).api_origin
    except ConfigError:
        return answer
    host = _host(headers)
    if origin is None or host is None or scheme not in ("http", "https"):
        return answer
    proxy_base = f"{scheme}://{host}/proxy/{match.group(1)}"
    return _rebased(answer, (origin, upstream.base_url.rstrip("/")), proxy_base)


def _signed(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"authorization":
            return value.strip().lower().startswith(b"vertex-v1")
    return False


def _host(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"host":
            text = value.decode("latin-1").strip()
            return text if _HOST.match(text) else None
    return None


def _refusal(answer: Outgoing, decision: Decision, provider: str) -> Outgoing:
    # Rebuilt from the decision the answer carries (already scrubbed where it had to be),
    # with the broker's own fields first so Decision.from_json reads it as before.
    request_id = next((v for k, v in answer.headers if k == "vertex-request-id"), "")
    text = sdk_message(decision)
    error: dict[str, Any] = decision.to_json()
    body: dict[str, Any] = {"error": error, "request_id": request_id}
    headers = list(answer.headers)
    if provider == "stripe":
        # Stripe's SDK shows error.message and picks the error class by status.
        error.update(message=text, type=_stripe_type(answer.status), code=decision.reason.value)
        headers.append(("request-id", request_id))
    elif provider == "github":
        body.update(message=text, status=str(answer.status))
    elif provider == "supabase":
        body.update(
            message=text,
            code=decision.reason.value,
            details=f"rule {decision.rule}",
            hint=f"vertex_tools request {request_id}: `vertex audit tail` shows it",
        )
    return Outgoing(answer.status, headers, json.dumps(body).encode(), decision)


def _stripe_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def _rebased(answer: Outgoing, origins: tuple[str, ...], proxy_base: str) -> Outgoing:
    # One pass, longest origin first: a rewritten URL is never rewritten again.
    ordered = sorted({o.rstrip("/") + "/" for o in origins if o}, key=len, reverse=True)
    text_pattern = re.compile("|".join(re.escape(o) for o in ordered))
    byte_pattern = re.compile(b"|".join(re.escape(o.encode()) for o in ordered))
    replacement = proxy_base + "/"
    encoded = replacement.encode()
    # JSON only: a file served raw (contents.get) is the user's data, byte for byte.
    body = byte_pattern.sub(lambda _: encoded, answer.body) if _is_json(answer) else answer.body
    headers = [
        (name, text_pattern.sub(lambda _: replacement, value))
        if name.lower() in _URL_HEADERS
        else (name, value)
        for name, value in answer.headers
    ]
    return Outgoing(answer.status, headers, body, answer.decision)


def _is_json(answer: Outgoing) -> bool:
    for name, value in answer.headers:
        if name.lower() == "content-type":
            media = value.split(";", 1)[0].strip().lower()
            return media == "application/json" or media.endswith("+json")
    return False
