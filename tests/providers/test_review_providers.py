"""Regression tests from an adversarial review of the provider catalogs (issue 3).

Each test is one attack: the ones named after a finding reproduce a hole the review
found (closed since: strict, re-encoded Stripe bodies; refunds always read the charge;
GitHub search scope qualifiers; RPC row cap; a faithful stand-in refund), the others
are attacks that held from the start.
Stripe attacks run end to end: localstripe (in a child process, so this module does not
fight the Stripe conftest's session stand-in for localstripe's global store), a real
broker process, and the conftests' own helpers. GitHub and Supabase attacks are decided
by the engine the broker runs (``decide``) on the conftests' own policies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.providers.github.conftest import policy_text as github_policy_text
from tests.providers.stripe.standin import STRIPE_KEY, StripeData
from tests.providers.supabase.conftest import POLICY as SUPABASE_POLICY
from vertex_tools.admin import Admin
from vertex_tools.client import BrokerClient
from vertex_tools.decision import Reason
from vertex_tools.errors import BrokerRefused
from vertex_tools.home import Home, init_home
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy, parse_policy
from vertex_tools.policy.engine import RequestFacts, decide

FORM = "application/x-www-form-urlencoded"

# --------------------------------------------------------------------------- Stripe set-up

_STANDIN = """
import sys
from tests.providers.stripe.standin import LocalStripe
with LocalStripe(sys.argv[1]) as s:
    print(s.url, flush=True)
    sys.stdin.read()
"""

STRIPE_POLICY = """\
version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]
read_timeout = "5s"

[upstreams.stripe]
provider = "stripe"
base_url = "{url}"
secret = "stripe-test"

[grants.payer]
upstream = "stripe"
operations = ["payment_intents.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 8000 }}

[grants.refunder]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 100000 }}

[grants.refunder-eur]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 100000 }}

[grants.crm]
upstream = "stripe"
operations = ["customers.create", "customers.update", "customers.retrieve"]
"""


@dataclass
class Stripe:
    url: str
    data: StripeData
    home: Home
    env: dict[str, str]
    broker: LocalBroker

    def client(self, grant: str) -> BrokerClient:
        with Admin(self.home, self.env) as admin:
            issued = admin.token_issue(load_policy(self.home.policy), grant, "1h")
        return self.broker.client(issued.token)

    def post(self, path: str, fields: dict[str, str]) -> dict[str, Any]:
        answer = httpx.post(
            self.url + path,
            data=fields,
            headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            timeout=10,
        )
        answer.raise_for_status()
        out: dict[str, Any] = answer.json()
        return out


@pytest.fixture(scope="module")
def stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stripe]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _STANDIN, STRIPE_KEY],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
        home = Home(tmp_path_factory.mktemp("review-stripe-home"))
        init_home(home, environ=env)
        home.policy.write_text(STRIPE_POLICY.format(url=url), encoding="utf-8")
        with Admin(home, env) as admin:
            admin.vault_put("stripe-test", "stripe", STRIPE_KEY)
        data = StripeData.seed(url, STRIPE_KEY)
        with LocalBroker(home.root, env=env, listen="tcp") as broker:
            yield Stripe(url, data, home, env, broker)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=20)


def _refused_or_status(call: Any) -> Reason | int:
    try:
        return int(call().status_code)
    except BrokerRefused as exc:
        return exc.decision.reason


# ----------------------------------------------------------------- Stripe: body smuggling


def test_stripe_payment_intent_amount_smuggled_in_json_under_form_content_type(
    stripe: Stripe,
) -> None:
    """The broker reads the body as a form (amount=100); localstripe reads the same bytes
    as JSON first (amount=900000) and charges that. Finding 1."""
    body = (
        '{"amount":900000,"currency":"usd","confirm":true,'
        f'"customer":"{stripe.data.customer}","payment_method":"{stripe.data.payment_method}",'
        '"metadata":{"a":"=","b":"&amount=100&currency=usd&z=x"}}'
    )
    with stripe.client("payer") as client:
        got = _refused_or_status(
            lambda: client.post(
                "stripe",
                "/v1/payment_intents",
                content=body.encode(),
                headers={"Content-Type": FORM},
            )
        )
    made = httpx.get(
        f"{stripe.url}/v1/payment_intents",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        timeout=10,
    ).json()["data"]
    charged = [pi["status"] for pi in made if pi["amount"] == 900000]
    assert not charged, f"a 900000-cent payment intent was made ({got}, {charged})"


def test_stripe_full_refund_of_another_charge_smuggled_in_json(stripe: Stripe) -> None:
    """Form view: charge=<small> (the broker looks it up: 100 cents). JSON view (what
    localstripe reads): charge=<big>, no amount: a full refund of 90000 cents. Finding 1."""
    small = stripe.data.charge(100, description="small")
    big = stripe.data.charge(90000, description="big")
    body = f'{{"charge":"{big}","metadata":{{"a":"=","b":"&charge={small}&c=x"}}}}'
    with stripe.client("refunder") as client:
        got = _refused_or_status(
            lambda: client.post(
                "stripe", "/v1/refunds", content=body.encode(), headers={"Content-Type": FORM}
            )
        )
    refunded = httpx.get(
        f"{stripe.url}/v1/charges/{big}",
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        timeout=10,
    ).json()["amount_refunded"]
    assert refunded == 0, f"90000 cents refunded under a 5000 per-call ceiling ({got})"


def test_stripe_customer_balance_set_through_json_under_form_content_type(
    stripe: Stripe,
) -> None:
    """check() rule 4 reads form keys when the content type says form; localstripe reads
    JSON. A credit balance (money, refused by rule 4) is set anyway. Finding 2."""
    with stripe.client("crm") as client:
        got = _refused_or_status(
            lambda: client.post(
                "stripe",
                "/v1/customers",
                content=b'{"name":"Eve","balance":-500000}',
                headers={"Content-Type": FORM},
            )
        )
    created = [
        c
        for c in httpx.get(
            f"{stripe.url}/v1/customers",
            params={"limit": "100"},
            headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            timeout=10,
        ).json()["data"]
        if c["name"] == "Eve"
    ]
    # localstripe reports the credit balance as account_balance
    balance = created[0]["account_balance"] if created else 0
    assert (isinstance(got, Reason), balance) == (True, 0), f"forwarded ({got}), balance {balance}"


def test_stripe_customer_balance_set_through_multipart(stripe: Stripe) -> None:
    """multipart/form-data is parsed by Stripe-style servers (aiohttp's post(), Rack) but
    _body_keys reads it as urlencoded and finds no ``balance``, so rule 4 lets a credit
    balance through. Finding 2."""
    with stripe.client("crm") as client:
        got = _refused_or_status(
            lambda: client.request(
                "POST",
                "stripe",
                "/v1/customers",
                content=(
                    b'--xx\r\nContent-Disposition: form-data; name="balance"\r\n\r\n-700000\r\n'
                    b'--xx\r\nContent-Disposition: form-data; name="name"\r\n\r\nMallory\r\n'
                    b"--xx--\r\n"
                ),
                headers={"Content-Type": "multipart/form-data; boundary=xx"},
            )
        )
    # The stand-in (its middleware has already read the body) cannot parse multipart and
    # answers 500; what matters is that the broker forwarded it instead of refusing.
    assert isinstance(got, Reason), f"multipart body with balance was forwarded ({got})"


def test_stripe_partial_refund_of_a_foreign_currency_charge_counted_as_usd(
    stripe: Stripe,
) -> None:
    """A refund with an amount but no currency is counted in the grant's currency (usd),
    while Stripe refunds in the charge's currency. The same refund without an amount is
    refused as currency_mismatch, so the ceiling's currency is only enforced sometimes.
    Finding 3."""
    eur = stripe.post(
        "/v1/charges",
        {
            "amount": "90000",
            "currency": "eur",
            "customer": stripe.data.customer,
            "source": stripe.data.payment_method,
        },
    )["id"]
    with stripe.client("refunder-eur") as client:
        full = _refused_or_status(
            lambda: client.post("stripe", "/v1/refunds", data={"charge": eur})
        )
        part = _refused_or_status(
            lambda: client.post("stripe", "/v1/refunds", data={"charge": eur, "amount": "4900"})
        )
    assert full is Reason.CURRENCY_MISMATCH  # held
    assert part == Reason.CURRENCY_MISMATCH, f"a 4900 EUR refund passed a usd ceiling ({part})"


def test_stripe_query_on_post_and_duplicate_amount_are_refused(stripe: Stripe) -> None:
    """Held: ?amount= beside the body, a doubled form field, and JSON with duplicate keys."""
    with stripe.client("payer") as client:
        q = _refused_or_status(
            lambda: client.post(
                "stripe",
                "/v1/payment_intents?amount=900000",
                content=b"amount=100&currency=usd",
                headers={"Content-Type": FORM},
            )
        )
        dup = _refused_or_status(
            lambda: client.post(
                "stripe",
                "/v1/payment_intents",
                content=b"amount=100&currency=usd&am%6Funt=900000",
                headers={"Content-Type": FORM},
            )
        )
        jdup = _refused_or_status(
            lambda: client.post(
                "stripe",
                "/v1/payment_intents",
                content=b'{"amount":100,"currency":"usd","amount":900000}',
                headers={"Content-Type": "application/json"},
            )
        )
    # The Stripe check parses every POST body strictly before the amount is read.
    assert q is Reason.BAD_REQUEST
    assert dup is Reason.BAD_REQUEST
    assert jdup is Reason.BAD_REQUEST


# ------------------------------------------------------------------- GitHub: issue search

GITHUB = parse_policy(github_policy_text("https://api.github.com").encode()).policy


@pytest.mark.parametrize(
    "q",
    [
        "repo:acme/website org:other",
        "repo:acme/website user:other",
        "repo:acme/website owner:other",
    ],
)
def test_github_search_widened_by_another_scope_qualifier(q: str) -> None:
    """GitHub ORs its scope qualifiers (repo:, org:, user:, owner:): ``repo:acme/website
    org:other`` searches other/* too. _check_search only looks at repo:. Finding 4."""
    facts = RequestFacts("github", "GET", "/search/issues", urlencode({"q": q}), "", b"")
    verdict = decide(GITHUB, "triage-bot", facts)
    assert verdict.decision.reason is Reason.RESOURCE_NOT_ALLOWED, verdict.decision


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/repos/ACME/website/issues/1", Reason.RESOURCE_NOT_ALLOWED),
        ("/repos/acme/web%73ite/issues/1", Reason.RESOURCE_NOT_ALLOWED),
        ("/repos/acme/website/issues/1%2F..%2F..%2Fother", Reason.BAD_PATH),
        ("/repos/acme/website/contents/..%2f..%2fother/secret", Reason.BAD_PATH),
        ("/repos/other/secret/issues/1", Reason.RESOURCE_NOT_ALLOWED),
    ],
)
def test_github_repository_tricks_held(path: str, reason: Reason) -> None:
    verdict = decide(GITHUB, "triage-bot", RequestFacts("github", "GET", path, "", "", b""))
    assert verdict.decision.reason is reason


# ------------------------------------------------------------------------------- Supabase

SUPABASE = parse_policy(SUPABASE_POLICY.replace("{url}", "https://x.supabase.co").encode()).policy


def _sb(
    method: str, path: str, query: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> Reason:
    facts = RequestFacts("supabase", method, path, query, "application/json", b"{}", headers)
    return decide(SUPABASE, "editor", facts).decision.reason


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "reason"),
    [
        ("GET", "/rest/v1/orders", "select=*,customers(*)", (), Reason.BAD_REQUEST),
        ("GET", "/rest/v1/orders", "customers.name=eq.x", (), Reason.BAD_REQUEST),
        ("GET", "/rest/v1/orders", "or=(id.eq.1,id.eq.2)", (), Reason.BAD_REQUEST),
        ("GET", "/rest/v1/orders", "id=eq.1;select=*", (), Reason.BAD_REQUEST),
        ("GET", "/rest/v1/orders", "limit=1&limit=9999", (), Reason.BAD_REQUEST),
        ("GET", "/rest/v1/customers", "", (), Reason.RESOURCE_NOT_ALLOWED),
        ("GET", "/rest/v1/public.customers", "", (), Reason.RESOURCE_NOT_ALLOWED),
        ("DELETE", "/rest/v1/orders", "limit=1", (), Reason.MISSING_FILTER),
        ("PATCH", "/rest/v1/orders", "order=id", (), Reason.MISSING_FILTER),
        ("POST", "/rest/v1/rpc/purge_orders", "", (), Reason.RESOURCE_NOT_ALLOWED),
        ("GET", "/rest/v1/rpc/order_total", "", (), Reason.UNKNOWN_OPERATION),
        ("PUT", "/rest/v1/orders", "id=eq.1", (), Reason.UNKNOWN_OPERATION),
        ("GET", "/rest/v1/orders", "", (("accept-profile", "private"),), Reason.NOT_ALLOWED),
        (
            "POST",
            "/rest/v1/orders",
            "",
            (("prefer", "return=minimal"), ("prefer", "Resolution = merge-duplicates")),
            Reason.NOT_ALLOWED,
        ),
    ],
)
def test_supabase_tricks_held(
    method: str, path: str, query: str, headers: tuple[tuple[str, str], ...], reason: Reason
) -> None:
    assert _sb(method, path, query, headers) is reason


def test_supabase_rpc_results_are_not_capped() -> None:
    """rows.select gets limit=1000 added; a set-returning RPC the grant allows
    (orders_by_status) is forwarded without any cap. Finding 6 (the issue: "select
    results are capped")."""
    facts = RequestFacts(
        "supabase",
        "POST",
        "/rest/v1/rpc/orders_by_status",
        "",
        "application/json",
        json.dumps({"p_status": "open"}).encode(),
    )
    verdict = decide(SUPABASE, "editor", facts)
    assert verdict.resolved is not None
    assert verdict.resolved.query is not None, "no row cap on a set-returning rpc.call"


def test_stripe_full_refund_after_partial_moves_what_the_broker_counted(stripe: Stripe) -> None:
    """The refunds-rest e2e test only checks ``object == "refund"``: localstripe refunds the
    whole charge (9000) again while the broker counted 4000 (amount - amount_refunded).
    The stand-in does not model Stripe here, and the test does not notice. Finding 5."""
    charge = stripe.data.charge(9000, description="rest")
    stripe.data.refund(charge, 5000)
    with stripe.client("refunder") as client:
        answer = client.post("stripe", "/v1/refunds", data={"charge": charge}).json()
    assert answer["amount"] == 4000, f"counted 4000, the stand-in refunded {answer['amount']}"


def test_tools_never_show_the_token() -> None:
    """Held: repr, str, serialisation and argument schemas of every tool and toolkit."""
    from vertex_tools.providers.github.toolkit import GitHubToolkit
    from vertex_tools.providers.stripe.toolkit import StripeToolkit
    from vertex_tools.providers.supabase.toolkit import SupabaseToolkit
    from vertex_tools.tokens import mint_token

    token = mint_token("unit", now=1e9, ttl=3600).token
    secret_part = token.rsplit(".", 1)[-1]
    client = BrokerClient("http://127.0.0.1:9", token=token)
    for kit in (StripeToolkit, GitHubToolkit, SupabaseToolkit):
        toolkit = kit(client=client)
        texts = [repr(toolkit), str(toolkit), toolkit.model_dump_json()]
        for tool in toolkit.get_tools():
            texts += [repr(tool), str(tool), tool.model_dump_json(), json.dumps(tool.args)]
            texts.append(json.dumps(tool.get_input_schema().model_json_schema()))  # type: ignore[union-attr]
        assert not any(secret_part in t for t in texts)
