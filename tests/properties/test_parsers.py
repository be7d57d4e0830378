"""Property-based tests: every parser ends in a valid result or our own error, never a crash.

Issue 7: "Property-based tests (hypothesis) for the policy loader, the path matcher,
the token parser, the catalog matcher and the audit decoder: any input ends in our
own error type or a valid result, never a crash."

Each parser gets arbitrary input (``st.text`` / ``st.binary``) and structured near
misses built from valid input with parts swapped, and each test checks the
documented contract:

* ``parse_policy``                  LoadedPolicy, or PolicyError
* ``check_path``                    segments, or RequestRejected
* ``PathPattern.parse``             a pattern, or ValueError (documented)
* ``parse_token``                   ParsedToken, or TokenError
* ``parse_signature_header``        SignatureHeader, or None (never raises)
* ``PathTemplate.parse``            a template, or ValueError (documented)
* ``Catalog.match`` / ``check``     an operation / Decision, Rewrite or None (never raise)
* ``parse_query``                   ParsedQuery, or QueryError (a ValueError, documented)
* ``read_amount``                   Amount, or AmountError (a ValueError, documented)
* ``decode_entry``                  a decoded entry, or AuditIntegrityError
* ``forwardable_request_headers``   headers, or RequestRejected / ConfigError
* ``decide``                        a Verdict for ANY RequestFacts, never an exception,
                                    and an allow is sound (operation and resource granted)

"Valid result" is checked too: a result that breaks the parser's own invariants
(a control character in an accepted path, a token id of the wrong shape) fails.
Failing properties are kept failing: they are findings, not flakes.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vertex_tools.audit._entry import (
    EntryKind,
    decode_entry,
    encode_data,
    entry_bytes,
    record_from_row,
)
from vertex_tools.broker.headers import REQUEST_HEADER_ALLOWLIST, forwardable_request_headers
from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.errors import (
    AuditIntegrityError,
    ConfigError,
    PolicyError,
    RequestRejected,
    TokenError,
)
from vertex_tools.home import policy_template
from vertex_tools.policy import parse_policy
from vertex_tools.policy.amounts import Amount, AmountError, read_amount
from vertex_tools.policy.engine import decide
from vertex_tools.policy.facts import RequestFacts, Verdict
from vertex_tools.policy.loader import LoadedPolicy
from vertex_tools.policy.models import Policy
from vertex_tools.policy.paths import PathPattern, check_path
from vertex_tools.providers import get_catalog
from vertex_tools.providers.catalog import Catalog, CheckContext, PathTemplate, Rewrite
from vertex_tools.providers.github.catalog import CATALOG as GITHUB
from vertex_tools.providers.github.catalog import OWNER, REPO_NAME
from vertex_tools.providers.stripe.catalog import CATALOG as STRIPE
from vertex_tools.providers.supabase.catalog import CATALOG as SUPABASE
from vertex_tools.providers.supabase.catalog import ROW_CAP
from vertex_tools.providers.supabase.query import (
    IDENTIFIER,
    IS_VALUES,
    OPERATORS,
    RESERVED,
    ParsedQuery,
    QueryError,
    parse_query,
)
from vertex_tools.signing import SignatureHeader, parse_signature_header
from vertex_tools.tokens import ParsedToken, mint_token, parse_token

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

# --- settings ------------------------------------------------------------------------

# The whole module should run in well under a minute; deadline off because the
# hostile inputs (deep nesting, 5000-digit numbers) are slow by design.
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=_SUPPRESS)
MEDIUM = settings(max_examples=200, deadline=None, suppress_health_check=_SUPPRESS)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=_SUPPRESS)
ENGINE = settings(max_examples=500, deadline=None, suppress_health_check=_SUPPRESS)

CATALOGS: dict[str, Catalog] = {"stripe": STRIPE, "github": GITHUB, "supabase": SUPABASE}
CTL = re.compile(r"[\x00-\x1f\x7f]")

# Hostile shapes that the stdlib parsers turn into RecursionError or a bare
# ValueError (CPython's 4300-digit int limit) instead of their own error type.
DEEP = st.sampled_from([2, 40, 400, 5000])
HUGE_DIGITS = st.sampled_from([1, 19, 20, 4300, 4301, 5000]).map(lambda n: "9" * n)


def _outcome(call: Callable[[], T], error: type[E]) -> T | E:
    """The result of ``call``, or the ``error`` it raised; any other exception propagates."""
    try:
        return call()
    except error as exc:
        return exc


# --- shared strategies ---------------------------------------------------------------

# Path segments: plain, and every ambiguity the path checker must refuse.
NASTY_SEGMENTS = [
    "..",
    ".",
    "",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%3b",
    "%00",
    "%0a",
    "%0D",
    "%",
    "%z1",
    "%4",
    "%25",
    "%252e",
    "..;",
    ";",
    "a;b",
    "\\",
    "a\\b",
    "é",
    "%C3%A9",
    "\u2028",
    "\uff0e\uff0e",
    "a\n",
    "a\r",
    "a\x00",
    "\t",
    " ",
    "*",
    "**",
    "~",
    "a@b:c",
    "%c0%ae",
]
PLAIN_SEGMENTS = [
    "v1",
    "items",
    "1",
    "x",
    "acme",
    "website",
    "acme-labs",
    "repos",
    "issues",
    "pulls",
    "comments",
    "contents",
    "rest",
    "rpc",
    "orders",
    "customers",
    "order_total",
    "cus_123",
    "ch_1",
    "pi_9",
    "re_1",
    "search",
    "refunds",
    "charges",
    "payment_intents",
    "confirm",
    "merge",
    "collaborators",
    "octocat",
    "README.md",
    "a.b",
    ".github",
]
SEGMENTS: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(PLAIN_SEGMENTS),
    st.sampled_from(NASTY_SEGMENTS),
    st.from_regex(r"[A-Za-z0-9._~-]{1,12}", fullmatch=True),
    st.text(max_size=8),
)


@st.composite
def paths_from_segments(draw: st.DrawFn) -> str:
    segments = draw(st.lists(SEGMENTS, max_size=7))
    path = "/" + "/".join(segments)
    prefix = draw(st.sampled_from(["", "", "", "/", "\\", " ", "http://x"]))
    suffix = draw(st.sampled_from(["", "", "", "/", "//", "\n", "\r\n", "?", "#", " "]))
    return prefix + path + suffix


PATHS: st.SearchStrategy[str] = st.one_of(paths_from_segments(), st.text(max_size=40))


def _template_path(template: PathTemplate, draw: st.DrawFn) -> str:
    """A path shaped like ``template``, parameters filled with random segments."""
    out: list[str] = []
    for segment in template.segments:
        if segment.startswith("{") and segment.endswith("+}"):
            out.extend(draw(st.lists(SEGMENTS, min_size=1, max_size=3)))
        elif segment.startswith("{"):
            out.append(draw(SEGMENTS))
        else:
            out.append(draw(st.sampled_from([segment, segment, segment, segment.upper()])))
    return "/" + "/".join(out)


@st.composite
def catalog_paths(draw: st.DrawFn) -> str:
    """Paths near the catalogued ones: real templates with random parameters."""
    catalog = draw(st.sampled_from(list(CATALOGS.values())))
    op = draw(st.sampled_from(catalog.operations))
    path = _template_path(op.template, draw)
    if draw(st.integers(0, 5)) == 0:
        path += draw(st.sampled_from(["/", "/x", "/..", "/%2e%2e", ";", "\n"]))
    return path


METHODS = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    st.sampled_from(["get", "OPTIONS", "TRACE", "CONNECT", "", "GET ", "POST\n"]),
    st.text(max_size=8),
)

# PostgREST-ish query strings.
QUERY_KEYS = st.one_of(
    st.sampled_from(sorted(RESERVED)),
    st.sampled_from(["id", "name", "status", "or", "and", "not", "customers.name", "a b"]),
    st.sampled_from(["q", "per_page", "page", "sort", "order", "amount", "limit%3d"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.text(max_size=6),
)
QUERY_VALUES = st.one_of(
    st.builds(
        lambda op, v: f"{op}.{v}",
        st.sampled_from([*sorted(OPERATORS), "not.eq", "fts", "like(any)", "cs", "EQ", ""]),
        st.one_of(
            st.sampled_from([*sorted(IS_VALUES), "(1,2)", '("a","b")', "()", "(a,", "1", ""]),
            st.text(max_size=6),
        ),
    ),
    st.sampled_from(["*", "id,name", "id,id", "customers(*)", "c:customers(*)", "a::text"]),
    st.sampled_from(["id.asc", "id.desc.nullslast", "id.up", "1", "0", "1000", "1001"]),
    st.sampled_from(["1e3", "-1", "99999999999", "%31", "%", "%zz", "%C3", "a+b", "%0a"]),
    st.sampled_from(["repo:acme/website is:open", "repo:acme/website OR repo:x/y"]),
    st.sampled_from(["repo:evil/x", "org:acme", '"repo:x/y"', "-repo:acme/website", "NOT"]),
    HUGE_DIGITS,
    st.text(max_size=10),
)


VALID_QUERY_PAIRS = [
    "id=eq.1",
    "select=*",
    "select=id,name",
    "limit=5",
    "offset=0",
    "order=id.desc",
    "name=in.(a,b)",
    "status=is.null",
    "name=like.a*",
]


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=5))
    parts = draw(st.lists(st.sampled_from(VALID_QUERY_PAIRS), max_size=2, unique=True))
    for key, value in pairs:
        form = draw(st.integers(0, 9))
        if form == 0:
            parts.append(key)  # no '='
        elif form == 1:
            parts.append("")  # an empty pair
        else:
            parts.append(f"{key}={value}")
    separator = draw(st.sampled_from(["&", "&", "&", ";", "&&"]))
    suffix = draw(st.sampled_from(["", "", "", "\n", "\r", "#", "&", " ", "%0a"]))
    return separator.join(parts) + suffix


QUERIES: st.SearchStrategy[str] = st.one_of(query_strings(), st.text(max_size=30))

# Bodies: JSON and form shapes near what the catalogs and spend checks read.
AMOUNT_FIELDS = ["amount", "currency", "charge", "payment_intent", "balance", "name", "amount[]"]
LEAF_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["usd", "eur", "USD", "us", "ch_1", "pi_2", "ch_1\n", "", "100", "1.5"]),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
JSON_VALUES = st.recursive(
    LEAF_VALUES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(AMOUNT_FIELDS) | st.text(max_size=5), children, max_size=3
        )
    ),
    max_leaves=10,
)


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    obj = draw(st.dictionaries(st.sampled_from(AMOUNT_FIELDS), JSON_VALUES, max_size=4))
    text = json.dumps(obj)
    shape = draw(st.integers(0, 7))
    if shape == 0:  # a number too long for int(): a JSON parser's ValueError
        text = '{"amount": ' + draw(HUGE_DIGITS) + ', "currency": "usd"}'
    elif shape == 1:  # deep nesting
        depth = draw(DEEP)
        text = '{"amount": 1, "x": ' + "[" * depth + "]" * depth + "}"
    elif shape == 2:  # a duplicate key
        text = '{"amount": 1, "amount": 2}'
    elif shape == 3:  # truncated
        text = text[: draw(st.integers(0, len(text)))]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


FORM_KEYS = st.one_of(st.sampled_from(AMOUNT_FIELDS), st.text(max_size=5))
FORM_VALUES = st.one_of(
    st.sampled_from(["100", "0", "-1", "1.0", "usd", "USD", "eur", "ch_123", "pi_123"]),
    st.sampled_from(["ch_1%0A", "ch_1%0D", "pi_1%00", "ch_%2e%2e", "ch_1%2F..", "ch_1+x"]),
    HUGE_DIGITS,
    st.text(max_size=6),
)


@st.composite
def form_bodies(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(FORM_KEYS, FORM_VALUES), max_size=5))
    text = "&".join(f"{k}={v}" for k, v in pairs)
    shape = draw(st.integers(0, 6))
    if shape == 0:  # deeply nested brackets that are also a valid form pair
        text = "[" * draw(DEEP) + "=1"
    elif shape == 1:  # JSON that is also form-ish
        text = '{"amount":1}'
    elif shape == 2:
        text += draw(st.sampled_from(["&", "&&", "=", "&=x", ";a=1"]))
    return text.encode("utf-8")


BODIES: st.SearchStrategy[bytes] = st.one_of(
    json_bodies(), form_bodies(), st.just(b""), st.binary(max_size=40)
)

CONTENT_TYPES = st.one_of(
    st.builds(
        lambda media, param: media + param,
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "APPLICATION/JSON",
                "text/plain",
                "multipart/form-data",
                "application/json-seq",
                "",
            ]
        ),
        st.sampled_from(
            ["", "", "; charset=utf-8", "; profile=json", ";", " ; charset=latin-1", ", text/x"]
        ),
    ),
    st.text(max_size=20),
)

HEADER_NAMES = st.one_of(
    st.sampled_from(sorted(REQUEST_HEADER_ALLOWLIST)),
    st.sampled_from(["authorization", "x-vertex-run", "Prefer", "host"]),
    st.text(max_size=10),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "return=representation",
            "resolution=merge-duplicates",
            "Resolution = Ignore-Duplicates",
            "private",
            "application/json",
            "2022-11-28",
        ]
    ),
    st.text(max_size=15),
)
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3).map(tuple)


# --- policies for decide() -----------------------------------------------------------


def _names(catalog: Catalog) -> str:
    return json.dumps(catalog.names)


POLICY_TEXT = f"""
version = 1

[upstreams.echo]
provider = "http"
base_url = "https://echo.example.com/base"
secret = "echo-key"

[upstreams.stripe]
provider = "stripe"
base_url = "https://api.stripe.com"
secret = "stripe-key"

[upstreams.github]
provider = "github"
base_url = "https://api.github.com"
secret = "github-key"

[upstreams.supabase]
provider = "supabase"
base_url = "https://project.supabase.co"
secret = "supabase-key"

[grants.http-spend]
upstream = "echo"
allow = [
  {{ method = "GET", path = "/items/*" }},
  {{ method = "POST", path = "/items" }},
  {{ method = "PUT", path = "/repos/acme/**" }},
  {{ method = "PATCH", path = "/*/x" }},
  {{ method = "DELETE", path = "/items/*" }},
]
spend = {{ currency = "usd", per_call = 5000, per_day = 20000 }}

[grants.http-open]
upstream = "echo"
allow = [ {{ method = "GET", path = "/**" }}, {{ method = "POST", path = "/" }} ]

[grants.stripe-all]
upstream = "stripe"
operations = {_names(STRIPE)}
spend = {{ currency = "usd", per_call = 5000, per_day = 20000 }}

[grants.stripe-read]
upstream = "stripe"
operations = ["customers.list", "customers.retrieve", "charges.list", "balance.retrieve"]

[grants.github-all]
upstream = "github"
operations = {_names(GITHUB)}
repos = ["acme/website", "acme-labs/*"]

[grants.github-read]
upstream = "github"
operations = ["issues.get", "contents.get", "search.issues"]
repos = ["acme/api"]

[grants.supabase-all]
upstream = "supabase"
operations = {_names(SUPABASE)}
tables = ["orders", "customers", "rpc:order_total"]

[grants.supabase-read]
upstream = "supabase"
operations = ["rows.select"]
tables = ["orders"]
"""

POLICY: Policy = parse_policy(POLICY_TEXT.encode()).policy
GRANT_NAMES = sorted(POLICY.grants)


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given weights (``one_of`` picks uniformly)."""
    total = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(total) - 1).flatmap(lambda i: total[i])


# Plausible values of catalog path parameters: mostly what a grant lists or a
# provider expects, and near misses of those.
PARAM_VALUES: dict[str, list[str]] = {
    "customer": ["cus_123", "cus_ABC", "cus_", "search", "cus_1\n", "CUS_1"],
    "intent": ["pi_123", "pi_9", "pi_x%2e"],
    "charge": ["ch_123", "ch_1", "ch_1;x"],
    "refund": ["re_1", "re_2"],
    "owner": ["acme", "acme-labs", "evil", "Acme", "-acme", "acme%2dlabs", "acme\n"],
    "repo": ["website", "api", "x", "a.b", "..", "web%73ite", ".github", "website\n"],
    "issue_number": ["1", "42", "0", "01", "comments", "1e3", "99999999999"],
    "pull_number": ["1", "7", "0", "merge"],
    "username": ["octocat", "-bad", "a" * 40, "octo_cat"],
    "path": ["README.md", "src", "a.b", "%2e%2e"],
    "table": ["orders", "customers", "secrets", "rpc", "Orders", "orders\n", "order%73"],
    "function": ["order_total", "drop_all", "Order_total"],
}


@st.composite
def aimed_path(draw: st.DrawFn, template: PathTemplate) -> str:
    out: list[str] = []
    for segment in template.segments:
        if segment.startswith("{"):
            name = segment.strip("{}+")
            value = _weighted((4, st.sampled_from(PARAM_VALUES.get(name, ["x"]))), (1, SEGMENTS))
            out.append(draw(value))
            if segment.endswith("+}"):
                out.extend(draw(st.lists(SEGMENTS, max_size=2)))
        else:
            out.append(segment)
    return "/" + "/".join(out)


SEARCH_TERMS = [
    "repo:acme/website",
    "repo:acme-labs/x",
    "repo:evil/x",
    "-repo:acme/website",
    "REPO:evil/x",
    "repo:acme/website\t",
    "is:open",
    "label:bug",
    "org:acme",
    "user:evil",
    "OR",
    "or",
    "NOT",
    '"repo:evil/x"',
    "(",
    "foo",
]


@st.composite
def search_queries(draw: st.DrawFn) -> str:
    terms = draw(st.lists(st.sampled_from(SEARCH_TERMS), min_size=1, max_size=4))
    q = draw(st.sampled_from([" ", "+", "%20"])).join(terms)
    extra = draw(st.sampled_from(["", "", "&per_page=5", "&q=repo:evil/x", "&org=x", "&q"]))
    return "q=" + q.replace(":", draw(st.sampled_from([":", "%3A"]))) + extra


@st.composite
def stripe_forms(draw: st.DrawFn) -> bytes:
    fields = {
        "amount": ["100", "5000", "5001", "0", "-1", "1.5", "", "9" * 20],
        "currency": ["usd", "eur", "USD", "usd%0A"],
        "charge": ["ch_1", "ch_1%0A", "ch_1%0D", "ch_%2e%2e", "ch_1%2Fx", "ch_1+x", "pi_1"],
        "payment_intent": ["pi_1", "pi_1%0A"],
        "customer": ["cus_1"],
        "balance": ["100"],
        "metadata[order]": ["42"],
        "email": ["a@b.c", "a%40b.c"],
    }
    named = draw(st.sampled_from([["charge"], ["payment_intent"], []]))  # what a refund reads
    keys = named + draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True))
    if draw(st.integers(0, 4)) == 0:
        keys += keys[:1]  # a repeated field
    pairs = [f"{key}={draw(st.sampled_from(fields[key]))}" for key in keys]
    return "&".join(pairs).encode()


@st.composite
def amount_json(draw: st.DrawFn) -> bytes:
    amount = draw(
        st.one_of(
            st.integers(-5, 6000).map(str),
            st.sampled_from(['"100"', '"1e3"', "1.0", "true", "null", '"-1"']),
            HUGE_DIGITS,
        )
    )
    currency = draw(st.sampled_from(["", ', "currency": "usd"', ', "currency": "eur"']))
    return ('{"amount": ' + amount + currency + "}").encode()


@st.composite
def request_facts(draw: st.DrawFn, grant_name: str) -> RequestFacts:
    """Requests aimed at a grant: mostly its own upstream, its operations' methods and
    paths, plausible parameters, queries and bodies; the rest arbitrary."""
    grant = POLICY.grants.get(grant_name)
    home = grant.upstream if grant is not None else "echo"
    upstream = draw(
        _weighted(
            (8, st.just(home)),
            (1, st.sampled_from(sorted(POLICY.upstreams))),
            (1, st.text(max_size=5)),
        )
    )
    provider = POLICY.upstreams[home].provider
    if provider == "http":
        aimed = st.sampled_from(
            ["/items/1", "/items", "/repos/acme/x/y", "/a/x", "/", "/x", "/items/1\n", "/a/x\r"]
        )
        path = draw(_weighted((6, aimed), (1, PATHS)))
        verbs = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
        method = draw(_weighted((6, verbs), (1, METHODS)))
    else:
        op = draw(st.sampled_from(CATALOGS[provider].operations))
        path = draw(_weighted((8, aimed_path(op.template)), (1, catalog_paths()), (1, PATHS)))
        method = draw(_weighted((8, st.just(op.method)), (1, METHODS)))
    aimed_query = {
        "http": st.just(""),
        "stripe": st.sampled_from(["", "", "limit=3", "amount=1"]),
        "github": search_queries(),
        "supabase": query_strings(),
    }[provider]
    query = draw(_weighted((3, st.just("")), (6, aimed_query), (1, QUERIES)))
    form = st.sampled_from(["application/x-www-form-urlencoded", "application/json"])
    content_type = draw(_weighted((6, form), (1, CONTENT_TYPES)))
    aimed_body = stripe_forms() if provider == "stripe" else amount_json()
    body = draw(_weighted((2, st.just(b"")), (6, aimed_body), (2, BODIES)))
    headers = draw(HEADERS)
    return RequestFacts(upstream, method, path, query, content_type, body, headers)


@st.composite
def grant_and_facts(draw: st.DrawFn) -> tuple[str, RequestFacts]:
    grant_name = draw(_weighted((9, st.sampled_from(GRANT_NAMES)), (1, st.text(max_size=6))))
    return grant_name, draw(request_facts(grant_name))


# --- the policy loader ---------------------------------------------------------------


def _check_policy_outcome(source: bytes) -> LoadedPolicy | PolicyError:
    """parse_policy's contract: a LoadedPolicy, or a PolicyError; anything else propagates."""
    outcome = _outcome(lambda: parse_policy(source, "policy.toml"), PolicyError)
    if isinstance(outcome, PolicyError):
        assert outcome.problems, "a PolicyError lists at least one problem"
        for key, line, message in outcome.problems:
            assert isinstance(key, str)
            assert line is None or (isinstance(line, int) and line >= 1)
            assert isinstance(message, str) and message
        assert str(outcome).startswith("invalid policy")
        return outcome
    loaded = outcome
    assert isinstance(loaded, LoadedPolicy)
    assert loaded.digest == blake3.blake3(source).hexdigest()
    policy = loaded.policy
    for grant in policy.grants.values():
        assert grant.upstream in policy.upstreams
        provider = policy.upstreams[grant.upstream].provider
        if provider == "http":
            assert grant.allow is not None and grant.operations is None
        else:
            catalog = get_catalog(provider)
            assert grant.operations is not None
            assert all(catalog.get(name) is not None for name in grant.operations)
    return loaded


@FAST
@given(st.binary(max_size=300))
def test_policy_loader_arbitrary_bytes(source: bytes) -> None:
    _check_policy_outcome(source)


@FAST
@given(st.text(max_size=300))
def test_policy_loader_arbitrary_text(text: str) -> None:
    _check_policy_outcome(text.encode("utf-8", errors="surrogatepass"))


class Source(bytes):
    """Policy bytes whose repr folds long runs (``b"[" * 5000``), so that a failing
    example hypothesis prints stays readable and is still a Python expression."""

    def __repr__(self) -> str:
        parts: list[str] = []
        literal = b""
        for run in re.finditer(rb"(.)\1*", bytes(self), re.DOTALL):
            text = run.group(0)
            if len(text) > 16:
                if literal:
                    parts.append(repr(literal))
                    literal = b""
                parts.append(f"{run.group(1)!r} * {len(text)}")
            else:
                literal += text
        if literal or not parts:
            parts.append(repr(literal))
        return "Source(" + " + ".join(parts) + ")"


@dataclass(frozen=True)
class Raw:
    """A TOML value written out verbatim (what no Python value would emit)."""

    text: str


RAW_LITERALS = st.one_of(
    st.sampled_from(
        [
            "inf",
            "nan",
            "-0.0",
            "1.5",
            "0x1f",
            "0o17",
            "1_000",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "1979-05-27",
            "'literal'",
            '"""multi\nline"""',
            "[]",
            "{}",
            "true",
            "99999999999999999999",
            "-9223372036854775809",
        ]
    ),
    HUGE_DIGITS,
    DEEP.map(lambda n: "[" * n + "]" * n),
    DEEP.map(lambda n: "{a = " * n + "1" + "}" * n),
)

INTERESTING_STRINGS = [
    "5/second",
    "0/second",
    "5/fortnight",
    "1h",
    "0h",
    "25h",
    " 1h",
    "usd",
    "USD",
    "/items/*",
    "/items/**/x",
    "/../x",
    "/items\n",
    "GET",
    "get",
    "http",
    "stripe",
    "github",
    "supabase",
    "ftp",
    "https://api.stripe.com",
    "http://127.0.0.1:9000",
    "http://10.0.0.1",
    "http://169.254.169.254",
    "http://[::ffff:10.0.0.1]",
    "http://0x7f.1",
    "https://user:pw@x.example",
    "https://x.example/?q",
    "127.0.0.1",
    "10.0.0.0/8",
    "::1",
    "not-an-ip",
    "acme/website",
    "acme/*",
    "*/*",
    "-acme/x",
    "orders",
    "rpc:order_total",
    "Orders",
    "refunds.create",
    "rows.select",
    "nope.op",
    "Bearer {secret}",
    "{secret}{secret}",
    "{}",
    "Authorization",
    "bad header",
    "echo",
    "echo-key",
    "Echo",
    "",
]

TOML_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.sampled_from(INTERESTING_STRINGS),
        st.text(max_size=8),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
        RAW_LITERALS.map(Raw),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["method", "path", "header", "format", "per_token", "x"])
            | st.text(max_size=4),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    items = ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items())
    return "{ " + items + " }" if items else "{}"


def _to_toml(doc: dict[str, Any]) -> str:
    """Write a document: scalars and lists inline, dicts as [tables]."""
    lines: list[str] = []

    def table(prefix: tuple[str, ...], node: dict[str, Any]) -> None:
        if prefix:
            lines.append("[" + ".".join(_toml_string(p) for p in prefix) + "]")
        subtables = []
        for key, value in node.items():
            if isinstance(value, dict) and value and not isinstance(value, Raw):
                subtables.append((key, value))
            else:
                lines.append(f"{_toml_string(key)} = {_toml_value(value)}")
        for key, value in subtables:
            table((*prefix, key), value)

    table((), doc)
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    """tomllib output as plain JSON-able values (the base documents have no dates)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


BASE_DOCS: list[dict[str, Any]] = [
    _plain(tomllib.loads(policy_template())),
    _plain(tomllib.loads(POLICY_TEXT)),
]


def _key_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_key_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((*prefix, index))
            out.extend(_key_paths(value, (*prefix, index)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def near_miss_policies(draw: st.DrawFn) -> bytes:
    """A valid policy document with one to three keys or values swapped, added or removed."""
    doc = json.loads(json.dumps(draw(st.sampled_from(BASE_DOCS))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _key_paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        last = path[-1]
        action = draw(st.sampled_from(["set", "set", "delete", "rename", "add"]))
        if action == "set":
            parent[last] = draw(TOML_VALUES)
        elif action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.one_of(st.sampled_from(INTERESTING_STRINGS), st.text(max_size=6)))
            parent[new] = parent.pop(last)
        elif isinstance(parent, dict):
            key = draw(st.one_of(st.sampled_from(INTERESTING_STRINGS), st.text(max_size=6)))
            parent[key] = draw(TOML_VALUES)
        else:
            parent.append(draw(TOML_VALUES))
    return Source(_to_toml(doc).encode("utf-8", errors="surrogatepass"))


@SLOW
@given(near_miss_policies())
def test_policy_loader_near_miss_documents(source: bytes) -> None:
    _check_policy_outcome(source)


@st.composite
def line_edited_policies(draw: st.DrawFn) -> bytes:
    """The commented template (or the multi-provider policy) edited line by line."""
    text = draw(st.sampled_from([policy_template(), POLICY_TEXT]))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "value", "delete", "duplicate", "insert"]))
        if action == "value" and "=" in lines[index]:
            key = lines[index].split("=", 1)[0]
            lines[index] = key + "= " + _toml_value(draw(TOML_VALUES))
        elif action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        else:
            lines.insert(
                index, draw(st.one_of(st.sampled_from(INTERESTING_STRINGS), st.text(max_size=20)))
            )
        if not lines:
            lines = [""]
    return Source("\n".join(lines).encode("utf-8", errors="surrogatepass"))


@SLOW
@given(line_edited_policies())
def test_policy_loader_line_edited_template(source: bytes) -> None:
    _check_policy_outcome(source)


def test_policy_loader_accepts_the_base_documents() -> None:
    """The near-miss generators start from valid documents (else they test nothing)."""
    for doc in BASE_DOCS:
        assert isinstance(_check_policy_outcome(_to_toml(doc).encode()), LoadedPolicy)


# --- the path checker and matcher ----------------------------------------------------


def _check_path_outcome(path: str) -> list[str] | None:
    try:
        segments = check_path(path)
    except RequestRejected:
        return None
    # Valid result: the path is exactly "/" + the segments, and none is ambiguous.
    assert ("/" + "/".join(segments)) == path
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert not CTL.search(segment), f"control character accepted in {segment!r}"
        assert re.fullmatch(r"[A-Za-z0-9\-._~!$&'()*+,=:@%]+", segment), segment
        decoded = unquote(segment)
        assert decoded not in (".", "..")
        assert not set(decoded) & set("/\\;\x00\r\n")
    return segments


@FAST
@given(st.text(max_size=60))
def test_check_path_arbitrary_text(path: str) -> None:
    _check_path_outcome(path)


@FAST
@given(PATHS)
def test_check_path_near_misses(path: str) -> None:
    _check_path_outcome(path)


PATTERN_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(SEGMENTS, st.sampled_from(["*", "**"])), max_size=5).map(
        lambda parts: "/" + "/".join(parts)
    ),
)


@FAST
@given(PATTERN_TEXT, PATHS)
def test_path_pattern_parse_and_match(text: str, path: str) -> None:
    try:
        pattern = PathPattern.parse(text)
    except ValueError:  # documented: "raise ValueError naming the problem"
        return
    assert pattern.text == text
    for part in pattern.segments:
        assert part in ("*", "**") or not CTL.search(part), f"control character in {text!r}"
    segments = _outcome(lambda: check_path(path), RequestRejected)
    if isinstance(segments, list):
        assert isinstance(pattern.matches(segments), bool)
    # A pattern without wildcards matches exactly its own path.
    if "*" not in pattern.segments and "**" not in pattern.segments:
        own = _outcome(lambda: check_path(text), RequestRejected)
        if isinstance(own, list):
            assert pattern.matches(own)


# --- the token and signature-header parsers ------------------------------------------

TOKEN = mint_token("g", now=0.0, ttl=60, rand=bytes(range(42))).token


def _check_token_outcome(text: str) -> ParsedToken | None:
    outcome = _outcome(lambda: parse_token(text), TokenError)
    if isinstance(outcome, TokenError):
        secret_part = text.strip().rpartition(".")[2]
        assert len(secret_part) < 20 or secret_part not in str(outcome), "the message echoes it"
        return None
    parsed = outcome
    assert isinstance(parsed, ParsedToken)
    assert re.fullmatch(r"tk_[a-z2-7]{16}", parsed.token_id), repr(parsed.token_id)
    assert isinstance(parsed.secret, bytes) and len(parsed.secret) == 32
    return parsed


@FAST
@given(st.text(max_size=120))
def test_parse_token_arbitrary_text(text: str) -> None:
    _check_token_outcome(text)


@st.composite
def near_miss_tokens(draw: st.DrawFn) -> str:
    parts = TOKEN.split(".")
    index = draw(st.integers(0, 2))
    action = draw(
        st.sampled_from(["replace_char", "append", "truncate", "swap_part", "sep", "last_char"])
    )
    part = parts[index]
    if action == "last_char":  # the last secret character carries two unused bits
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        parts[2] = parts[2][:-1] + draw(st.sampled_from(list(alphabet)))
    elif action == "replace_char" and part:
        at = draw(st.integers(0, len(part) - 1))
        char = draw(st.one_of(st.sampled_from(list("=+/.\n\r\t \x00Aa9_-é")), st.characters()))
        parts[index] = part[:at] + char + part[at + 1 :]
    elif action == "append":
        parts[index] = part + draw(st.sampled_from(["\n", "=", "==", "A", " ", "\x00", "\u2028"]))
    elif action == "truncate":
        parts[index] = part[: draw(st.integers(0, len(part)))]
    elif action == "swap_part":
        parts[index] = draw(st.text(max_size=50))
    else:
        return draw(st.sampled_from([".", "..", ". ", ".\n"])).join(parts)
    return ".".join(parts)


@FAST
@given(near_miss_tokens(), st.sampled_from(["", " ", "\n", "\t", "Bearer "]))
def test_parse_token_near_misses(token: str, pad: str) -> None:
    _check_token_outcome(pad + token + pad.strip(" B"))


@FAST
@given(near_miss_tokens())
def test_parse_token_result_is_canonical(token: str) -> None:
    """An accepted token is the one string that encodes its id and secret: no second
    spelling (a changed padding bit, a stray character) names the same token."""
    outcome = _outcome(lambda: parse_token(token), TokenError)
    if isinstance(outcome, ParsedToken):
        secret = base64.urlsafe_b64encode(outcome.secret).decode().rstrip("=")
        assert token.strip() == f"vt1.{outcome.token_id}.{secret}"


VALID_HEADER = (
    "Vertex-v1 id=tk_aaaaaaaaaaaaaaaa, ts=1700000000, nonce=abcdefghijklmnop, sig=" + "A" * 86
)


def _check_signature_outcome(value: str) -> SignatureHeader | None:
    result = parse_signature_header(value)  # documented: None when malformed, never raises
    if result is None:
        return None
    assert isinstance(result, SignatureHeader)
    assert re.fullmatch(r"tk_[a-z2-7]{16}", result.token_id)
    assert 0 <= result.timestamp < 10**12
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", result.nonce)
    assert len(result.signature) == 64
    return result


@FAST
@given(st.text(max_size=200))
def test_signature_header_arbitrary_text(value: str) -> None:
    _check_signature_outcome(value)


@FAST
@given(st.integers(0, len(VALID_HEADER)), st.integers(0, 3), st.text(max_size=4))
def test_signature_header_near_misses(at: int, cut: int, insert: str) -> None:
    assert _check_signature_outcome(VALID_HEADER) is not None
    _check_signature_outcome(VALID_HEADER[:at] + insert + VALID_HEADER[at + cut :])


# --- the catalog matcher and the provider checks -------------------------------------


@FAST
@given(st.one_of(st.text(max_size=40), PATTERN_TEXT))
def test_path_template_parse(text: str) -> None:
    try:
        template = PathTemplate.parse(text)
    except ValueError:  # documented
        return
    assert template.text == text
    assert template.literal_count <= len(template.segments)


def _fill(template: PathTemplate, params: dict[str, str]) -> list[str]:
    out: list[str] = []
    for segment in template.segments:
        if segment.startswith("{") and segment.endswith("+}"):
            out.extend(params[segment[1:-2]].split("/"))
        elif segment.startswith("{"):
            out.append(params[segment[1:-1]])
        else:
            out.append(segment)
    return out


@FAST
@given(st.sampled_from(sorted(CATALOGS)), METHODS, st.one_of(catalog_paths(), PATHS))
def test_catalog_match(provider: str, method: str, path: str) -> None:
    catalog = CATALOGS[provider]
    segments = _outcome(lambda: check_path(path), RequestRejected)
    if not isinstance(segments, list):
        return
    found = catalog.match(method, segments)
    candidates = [op for op in catalog.operations if op.method == method]
    matching = [op for op in candidates if op.template.match(segments) is not None]
    if found is None:
        assert matching == []
        return
    op, params = found
    assert op.method == method
    assert op.template.match(segments) == params
    assert _fill(op.template, params) == segments, "the parameters rebuild the path"
    assert all(value for value in params.values()), "a parameter never matches empty"
    # Unambiguous: exactly one matching operation is the most specific.
    best = max(m.template.literal_count for m in matching)
    assert [m.name for m in matching if m.template.literal_count == best] == [op.name]


@st.composite
def check_contexts(draw: st.DrawFn) -> CheckContext:
    catalog = draw(st.sampled_from(list(CATALOGS.values())))
    op = draw(st.sampled_from(catalog.operations))
    segments = _template_path(op.template, draw)[1:].split("/")
    params = op.template.match(segments) or {}
    facts = RequestFacts(
        upstream=catalog.provider,
        method=draw(st.one_of(st.just(op.method), METHODS)),
        path="/" + "/".join(segments),
        query=draw(st.one_of(st.just(""), QUERIES)),
        content_type=draw(CONTENT_TYPES),
        body=draw(BODIES),
        headers=draw(HEADERS),
    )
    resources = tuple(
        draw(
            st.lists(
                st.sampled_from(["acme/website", "acme/*", "orders", "rpc:order_total", "x"]),
                max_size=3,
            )
        )
    )
    return CheckContext(operation=op, params=params, facts=facts, resources=resources, grant="g")


@MEDIUM
@given(check_contexts())
def test_provider_checks_never_raise(ctx: CheckContext) -> None:
    catalog = CATALOGS[next(name for name, c in CATALOGS.items() if ctx.operation in c.operations)]
    assert catalog.check is not None
    outcome = catalog.check(ctx)
    assert outcome is None or isinstance(outcome, Decision | Rewrite)
    if isinstance(outcome, Decision):
        assert outcome.effect is Effect.DENY
        assert outcome.rule and outcome.message
    if isinstance(outcome, Rewrite) and outcome.query is not None:
        assert not CTL.search(outcome.query)


@FAST
@given(
    st.sampled_from(["github", "supabase"]),
    st.text(max_size=20),
    st.lists(st.text(max_size=20), max_size=3),
)
def test_resource_allowed_never_raises(provider: str, resource: str, allowed: list[str]) -> None:
    assert isinstance(CATALOGS[provider].resource_allowed(resource, tuple(allowed)), bool)


# --- the PostgREST query parser ------------------------------------------------------

ALLOWED_KEYS = st.sets(st.sampled_from(sorted(RESERVED))).map(frozenset)
RAW_QUERY_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/?%]*")


def _check_query_outcome(raw: str, allowed: frozenset[str]) -> ParsedQuery | None:
    try:
        parsed = parse_query(raw, allowed)
    except QueryError:  # documented: QueryError, a ValueError
        return None
    assert RAW_QUERY_CHARS.fullmatch(raw), f"raw characters accepted: {raw!r}"
    assert set(parsed.reserved) <= allowed
    assert "&".join(part for _, part in parsed.raw_pairs) == raw
    for flt in parsed.filters:
        assert IDENTIFIER.fullmatch(flt.column) and flt.column not in ("or", "and", "not")
        assert flt.operator in OPERATORS
    if "limit" in parsed.reserved:
        assert isinstance(parsed.limit, int) and parsed.limit >= 0
    if "limit" in allowed:
        # The row-cap rewrite reads back as the same query with the cap.
        again = parse_query(parsed.with_limit(ROW_CAP), allowed)
        assert again.limit == ROW_CAP
        assert again.filters == parsed.filters
    return parsed


@FAST
@given(st.text(max_size=60), ALLOWED_KEYS)
def test_parse_query_arbitrary_text(raw: str, allowed: frozenset[str]) -> None:
    _check_query_outcome(raw, allowed)


@FAST
@given(query_strings(), ALLOWED_KEYS)
def test_parse_query_near_misses(raw: str, allowed: frozenset[str]) -> None:
    _check_query_outcome(raw, allowed)


# --- the amount reader ---------------------------------------------------------------


def _check_amount_outcome(content_type: str, body: bytes, field: str) -> Amount | None:
    try:
        amount = read_amount(
            content_type,
            body,
            amount_field=field,
            currency_field="currency",
            default_currency="usd",
        )
    except AmountError:  # documented: AmountError, a ValueError
        return None
    assert isinstance(amount.value, int) and 0 <= amount.value < 10**18
    assert re.fullmatch(r"[a-z]{3}", amount.currency)
    return amount


@FAST
@given(st.text(max_size=30), st.binary(max_size=60))
def test_read_amount_arbitrary_input(content_type: str, body: bytes) -> None:
    _check_amount_outcome(content_type, body, "amount")


@FAST
@given(CONTENT_TYPES, BODIES, st.sampled_from(["amount", "amount[]", "balance"]))
def test_read_amount_near_misses(content_type: str, body: bytes, field: str) -> None:
    _check_amount_outcome(content_type, body, field)


# --- the audit entry decoder ---------------------------------------------------------

VALID_ENTRY = entry_bytes(
    7, 1_700_000_000_000_000, EntryKind.INTENT, encode_data({"a": [1, "é", None, True]})
)


@FAST
@given(
    st.integers(0, len(VALID_ENTRY)),
    st.integers(0, 3),
    st.one_of(st.binary(max_size=4), HUGE_DIGITS.map(str.encode), DEEP.map(lambda n: b"[" * n)),
    st.sampled_from([7, 7, 0, -1, 8, 2**63]),
)
def test_decode_entry_byte_edits(at: int, cut: int, insert: bytes, seq: int) -> None:
    raw = VALID_ENTRY[:at] + insert + VALID_ENTRY[at + cut :]
    outcome = _outcome(lambda: decode_entry(seq, raw), AuditIntegrityError)
    if isinstance(outcome, AuditIntegrityError):
        assert (outcome.seq, outcome.what) == (seq, "encoding")
        return
    time_us, kind, data = outcome
    # Valid result: exactly the canonical bytes of what was decoded.
    assert entry_bytes(seq, time_us, kind, encode_data(data)) == raw


ENTRY_OBJECTS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(),
    st.none(),
    st.just(bytearray(VALID_ENTRY)),
    st.just(memoryview(VALID_ENTRY)),
    st.just(VALID_ENTRY.decode()),
    st.lists(st.integers(0, 255), max_size=5),
)


@FAST
@given(ENTRY_OBJECTS, st.one_of(st.integers(), st.none(), st.text(max_size=3)))
def test_record_from_row_any_row(entry: object, prev: object) -> None:
    try:
        record = record_from_row((7, prev, bytes(32), entry))
    except AuditIntegrityError:
        return
    assert record.seq == 7


# --- request headers -----------------------------------------------------------------


@FAST
@given(
    st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=20)), max_size=5),
    st.frozensets(
        st.one_of(st.text(max_size=12), st.sampled_from(["x-custom", "Host", "x-vertex-a"])),
        max_size=3,
    ),
)
def test_forwardable_headers_with_arbitrary_extra_allowed(
    headers: list[tuple[bytes, bytes]], extra: frozenset[str]
) -> None:
    try:
        forwarded = forwardable_request_headers(headers, extra_allowed=extra)
    except (RequestRejected, ConfigError):
        return
    for name, value in forwarded:
        assert name == name.lower()
        assert name not in ("authorization", "host", "cookie", "content-length")
        assert not name.startswith(("x-vertex-", "x-forwarded-", "proxy-"))
        assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value)


# --- the policy engine ---------------------------------------------------------------


def _check_verdict(grant_name: str, facts: RequestFacts, verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    decision = verdict.decision
    assert isinstance(decision, Decision)
    assert isinstance(decision.effect, Effect) and isinstance(decision.reason, Reason)
    assert decision.rule and decision.message
    assert (decision.effect is Effect.ALLOW) == (decision.reason is Reason.ALLOWED)
    if decision.effect is not Effect.ALLOW:
        assert verdict.resolved is None
        return
    _check_allow_is_sound(grant_name, facts, verdict)


def _check_allow_is_sound(grant_name: str, facts: RequestFacts, verdict: Verdict) -> None:
    resolved = verdict.resolved
    assert resolved is not None
    grant = POLICY.grants[grant_name]
    assert resolved.grant == grant_name
    assert facts.upstream == grant.upstream == resolved.upstream
    segments = check_path(facts.path)
    assert not CTL.search(facts.path)
    provider = POLICY.upstreams[grant.upstream].provider
    spend = grant.spend
    if resolved.amount is not None:
        assert spend is not None and resolved.amount.currency == spend.currency
        assert spend.per_call is None or resolved.amount.value <= spend.per_call
    if provider == "http":
        rules = [
            rule
            for rule in grant.allow or ()
            if rule.method == facts.method and rule.pattern.matches(segments)
        ]
        assert resolved.operation in {f"{rule.method} {rule.path}" for rule in rules}
        if spend is not None and facts.method in ("POST", "PUT", "PATCH"):
            assert resolved.amount is not None, "a body-carrying call under a ceiling is counted"
        return
    catalog = get_catalog(provider)
    op = catalog.get(resolved.operation)
    assert op is not None
    assert op.name in (grant.operations or ()), "allowed operation is granted"
    assert op.method == facts.method
    match = catalog.match(facts.method, segments)
    assert match is not None and match[0] is op
    resource = op.resource_of(match[1])
    assert resolved.resource == resource
    allowed = tuple(getattr(grant, catalog.resource_key) or ()) if catalog.resource_key else ()
    if resource is not None:
        assert catalog.resource_allowed(resource, allowed), "allowed resource is granted"
        if provider == "github":
            assert re.fullmatch(rf"{OWNER}/{REPO_NAME}", resource)
    if op.amount is not None:
        assert resolved.amount is not None or resolved.lookup is not None, "money is counted"
    if resolved.lookup is not None:
        assert re.fullmatch(r"(/[A-Za-z0-9_]+)+", resolved.lookup.path), resolved.lookup.path
    if provider == "supabase" and op.name in ("rows.select", "rpc.call"):
        forwarded = resolved.query if resolved.query is not None else facts.query
        limit = parse_query(forwarded, frozenset({"select", "order", "limit", "offset"})).limit
        assert limit is not None and limit <= ROW_CAP
    if provider == "supabase" and op.name in ("rows.update", "rows.delete"):
        forwarded = resolved.query if resolved.query is not None else facts.query
        assert parse_query(forwarded, frozenset(RESERVED)).filters, "a write is filtered"


@ENGINE
@given(grant_and_facts())
def test_decide_never_raises_and_allows_soundly(case: tuple[str, RequestFacts]) -> None:
    grant_name, facts = case
    _check_verdict(grant_name, facts, decide(POLICY, grant_name, facts))


@ENGINE
@given(st.sampled_from(GRANT_NAMES).flatmap(lambda g: st.tuples(st.just(g), request_facts(g))))
def test_decide_on_well_aimed_requests(case: tuple[str, RequestFacts]) -> None:
    """Same property, every request aimed at its grant's own upstream."""
    grant_name, facts = case
    grant = POLICY.grants[grant_name]
    facts = RequestFacts(
        grant.upstream,
        facts.method,
        facts.path,
        facts.query,
        facts.content_type,
        facts.body,
        facts.headers,
    )
    _check_verdict(grant_name, facts, decide(POLICY, grant_name, facts))


MONEY_TARGETS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("http-spend", "echo", [("POST", "/items"), ("PUT", "/repos/acme/x"), ("PATCH", "/a/x")]),
    (
        "stripe-all",
        "stripe",
        [
            ("POST", "/v1/refunds"),
            ("POST", "/v1/refunds"),
            ("POST", "/v1/payment_intents"),
            ("POST", "/v1/payment_intents/pi_1/confirm"),
        ],
    ),
]


# Bodies a spend check must refuse (or read) without crashing: nesting deeper than
# any parser's recursion limit, numbers longer than int() converts, encoded
# control characters in the object a refund is looked up by.
HOSTILE_BODIES = st.sampled_from(
    [
        b"[" * 5000 + b"=1",
        b'{"amount": ' + b"9" * 5000 + b', "currency": "usd"}',
        b"amount=" + b"9" * 5000,
        b"charge=ch_1%0A",
        b"payment_intent=pi_1%0D",
        b'{"amount": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]
)


@st.composite
def money_requests(draw: st.DrawFn, target: int) -> tuple[str, RequestFacts]:
    """Requests that move money: every body shape a spend ceiling must read."""
    grant_name, upstream, targets = MONEY_TARGETS[target]
    method, path = draw(st.sampled_from(targets))
    media = draw(
        _weighted(
            (3, st.just("application/x-www-form-urlencoded")),
            (3, st.just("application/json")),
            (1, CONTENT_TYPES),
        )
    )
    content_type = media + draw(st.sampled_from(["", "; charset=utf-8", "; profile=json"]))
    body = draw(
        _weighted(
            (3, stripe_forms() if grant_name == "stripe-all" else amount_json()),
            (1, form_bodies()),
            (1, json_bodies()),
            (2, HOSTILE_BODIES),
        )
    )
    return grant_name, RequestFacts(upstream, method, path, "", content_type, body, ())


@pytest.mark.parametrize("target", range(len(MONEY_TARGETS)), ids=[t[0] for t in MONEY_TARGETS])
@MEDIUM
@given(data=st.data())
def test_decide_on_money_requests(target: int, data: st.DataObject) -> None:
    grant_name, facts = data.draw(money_requests(target))
    _check_verdict(grant_name, facts, decide(POLICY, grant_name, facts))
