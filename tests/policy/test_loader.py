"""policy.toml: the documented example passes; every kind of mistake is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vertex_tools.errors import PolicyError
from vertex_tools.home import policy_template
from vertex_tools.policy import load_policy, parse_policy

EXAMPLE = policy_template()


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode(), "policy.toml")
    return info.value.problems


def test_the_template_from_init_is_valid_and_has_the_issue_example() -> None:
    loaded = parse_policy(EXAMPLE.encode())
    grant = loaded.policy.grants["echo-writer"]
    assert loaded.policy.settings.allow_private_upstreams == ["127.0.0.1"]
    assert [(r.method, r.path) for r in grant.allow or []] == [
        ("GET", "/items/*"),
        ("POST", "/items"),
    ]
    assert grant.rate is not None and str(grant.rate.token_rate) == "5/second"
    assert grant.spend is not None and grant.spend.per_day == 20000
    assert grant.bearer is True
    assert grant.max_ttl_seconds == 86400
    assert len(loaded.digest) == 64


def test_digest_changes_with_content() -> None:
    a = parse_policy(EXAMPLE.encode()).digest
    b = parse_policy((EXAMPLE + "\n# comment\n").encode()).digest
    assert a != b


@pytest.mark.parametrize(
    ("edit", "key", "needle"),
    [
        (('rate = "5/second"', 'rat = "5/second"'), "grants.echo-writer.rat", "unknown key"),
        (("per_call = 5000", 'per_call = "5000"'), "grants.echo-writer.spend.per_call", "integer"),
        (("bearer = true", 'bearer = "yes"'), "grants.echo-writer.bearer", "boolean"),
        (('rate = "5/second"', 'rate = "5 per second"'), "grants.echo-writer.rate", "rate"),
        (('max_ttl = "24h"', 'max_ttl = "1 day"'), "grants.echo-writer.max_ttl", "duration"),
        (('method = "GET"', 'method = "FETCH"'), "grants.echo-writer.allow[0].method", "GET"),
        (('path = "/items/*"', 'path = "items"'), "grants.echo-writer.allow[0].path", "/"),
        (('path = "/items/*"', 'path = "/a/**/b"'), "grants.echo-writer.allow[0].path", "**"),
        (('provider = "http"', 'provider = "ftp"'), "upstreams.echo.provider", "http"),
        (('upstream = "echo"', 'upstream = "nope"'), "grants.echo-writer.upstream", "nope"),
        (('secret = "echo-key"', 'secret = "Echo Key"'), "upstreams.echo.secret", "pattern"),
        (
            ("http://127.0.0.1:9000", "http://user:pw@127.0.0.1:9000"),
            "upstreams.echo.base_url",
            "",
        ),
        (('currency = "usd"', 'currency = "USDX"'), "grants.echo-writer.spend.currency", ""),
    ],
)
def test_mistakes_name_the_key_and_line(edit: tuple[str, str], key: str, needle: str) -> None:
    old, new = edit
    assert old in EXAMPLE
    text = EXAMPLE.replace(old, new, 1)
    found = problems(text)
    keys = [k for k, _, _ in found]
    assert key in keys, found
    _, line, message = next(p for p in found if p[0] == key)
    assert line is not None
    assert (
        new.split("=")[0].strip().strip('"') in text.splitlines()[line - 1]
        or "[" in (text.splitlines()[line - 1])
    )
    assert needle.lower() in message.lower()


def test_empty_allowlist_is_an_error() -> None:
    text = EXAMPLE.replace(
        'allow = [ { method = "GET", path = "/items/*" }, { method = "POST", path = "/items" } ]',
        "allow = []",
    )
    (key, line, message), *_ = problems(text)
    assert key == "grants.echo-writer.allow"
    assert line is not None and text.splitlines()[line - 1].startswith("allow = []")
    assert "at least 1" in message


@pytest.mark.parametrize("version", ["version = 2", 'version = "1"', "version = 0"])
def test_unknown_version_is_refused(version: str) -> None:
    (key, line, message), *_ = problems(EXAMPLE.replace("version = 1", version))
    assert key == "version"
    assert line == next(i for i, t in enumerate(EXAMPLE.splitlines(), 1) if t == "version = 1")
    assert "understands 1" in message


def test_missing_version_is_refused() -> None:
    (key, _, message), *_ = problems(EXAMPLE.replace("version = 1", ""))
    assert key == "version" and "missing" in message


def test_toml_syntax_error_names_the_line() -> None:
    text = EXAMPLE.replace('rate = "5/second"', "rate = = 5")
    (key, line, message), *_ = problems(text)
    assert key == ""
    assert line is not None and "rate = = 5" in text.splitlines()[line - 1]
    assert "syntax" in message


def test_no_grants_or_upstreams_is_an_error() -> None:
    found = problems("version = 1\n")
    assert {k for k, _, _ in found} == {"upstreams", "grants"}


def test_spend_without_a_ceiling_is_an_error() -> None:
    text = EXAMPLE.replace("per_call = 5000, per_day = 20000, ", "")
    assert any("per_call, per_day or both" in m for _, _, m in problems(text))


def test_ttl_above_max_ttl_is_an_error() -> None:
    text = EXAMPLE.replace('max_ttl = "24h"', 'max_ttl = "1h"\nttl = "2h"')
    assert any("longer than max_ttl" in m for _, _, m in problems(text))


@pytest.mark.parametrize(
    "base_url",
    ["http://10.0.0.5", "http://169.254.169.254", "http://[::1]:9000", "http://127.0.0.2:80"],
)
def test_private_literal_upstream_not_in_allow_list_is_refused(base_url: str) -> None:
    text = EXAMPLE.replace("http://127.0.0.1:9000", base_url)
    found = problems(text)
    key, line, _ = found[0]
    assert key == "upstreams.echo.base_url"
    assert line is not None and base_url in text.splitlines()[line - 1]


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")


def test_non_utf8_is_a_policy_error() -> None:
    assert "UTF-8" in problems_bytes(b"version = 1\n\xff\n")


def problems_bytes(raw: bytes) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(raw)
    return str(info.value)


def test_max_pending_approvals_defaults_to_20_and_must_be_a_positive_integer() -> None:
    assert parse_policy(EXAMPLE.encode()).policy.settings.max_pending_approvals == 20
    line = "# max_pending_approvals = 20"
    assert line in EXAMPLE, "the template documents the setting"
    capped = parse_policy(EXAMPLE.replace(line, "max_pending_approvals = 1").encode())
    assert capped.policy.settings.max_pending_approvals == 1
    for value, needle in (("0", "greater than or equal to 1"), ('"5"', "integer")):
        [(key, _, text)] = problems(EXAMPLE.replace(line, f"max_pending_approvals = {value}"))
        assert key == "settings.max_pending_approvals" and needle in text
