"""The Stripe catalog: which Stripe API calls the broker knows, and how it treats them.

Stripe's v1 API takes form-encoded bodies (``metadata[order]=42``) and answers
JSON; the secret key goes in ``Authorization: Bearer``. Operations are named
after Stripe's own resources and verbs (``refunds.create``).

Money is counted where it moves:

* ``payment_intents.create`` states ``amount`` and ``currency`` in its body;
* ``refunds.create`` may omit ``amount``: Stripe then refunds whatever is left
  of the charge, so the broker reads the charge (``amount - amount_refunded``)
  or the payment intent (``amount``: a PaymentIntent has no
  ``amount_refunded``, so a partly refunded intent is counted whole, an upper
  bound) and counts that, never zero;
* ``payment_intents.confirm`` moves the intent's amount but carries none: the
  broker reads the intent named in the path and counts its amount. An intent
  created with an amount and confirmed later is counted twice (once per call),
  which over-counts but never under-counts.

Stripe's own checks (:func:`check`) close what the generic engine cannot see:
ids in the path must look like Stripe ids (``/v1/customers/search`` is not a
retrieve), a POST carries no query string (Stripe reads parameters from it too,
the broker would not), a refund names one object, and a customer's credit
``balance`` is not set through customer writes.

Stripe has no resource scoping in grants (``resource_key`` is None): one key
reaches the whole account, and grants narrow it by operation and spend.

This module is imported by the broker: no LangChain here.
"""

from __future__ import annotations

import json
import re

from vertex_tools.decision import Decision, Reason
from vertex_tools.policy.facts import RiskClass
from vertex_tools.policy.forms import encode_form, parse_form
from vertex_tools.providers.catalog import (
    AmountSpec,
    Catalog,
    CheckContext,
    LookupSpec,
    Operation,
    Rewrite,
)

__all__ = ["CATALOG", "REFUND_LOOKUP", "check"]

# A Stripe object id (cus_..., pi_..., ch_..., re_..., py_..., pyr_...). Anything else in an
# id position is refused: ``/v1/customers/search`` would otherwise pass as a retrieve.
_OBJECT_ID = re.compile(r"^[a-z]{1,8}_[A-Za-z0-9]{1,250}\Z")

_LIST_CONTROL = ("limit", "starting_after", "ending_before", "created")

# Fields that the customer, the cardholder or whoever wrote the object can set:
# an agent must treat them as data, never as instructions.
_CUSTOMER_UNTRUSTED = (
    "name",
    "email",
    "phone",
    "description",
    "address",
    "shipping",
    "metadata",
    "invoice_prefix",
)
_PAYMENT_INTENT_UNTRUSTED = (
    "description",
    "metadata",
    "receipt_email",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
_CHARGE_UNTRUSTED = (
    "description",
    "metadata",
    "billing_details",
    "receipt_email",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "calculated_statement_descriptor",
)
_REFUND_UNTRUSTED = ("description", "metadata", "instructions_email")


def _listed(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The same fields inside a Stripe list object (``{"data": [...]}``)."""
    return tuple(f"data[].{name}" for name in fields)


REFUND_LOOKUP = LookupSpec(
    sources=(
        ("charge", "/v1/charges/{id}"),
        ("payment_intent", "/v1/payment_intents/{id}"),
    ),
    amount_field="amount",
    # Charges say how much is already refunded; payment intents carry no such field
    # (absent counts as 0), so a payment intent is counted at its full amount.
    minus_field="amount_refunded",
    currency_field="currency",
    # Always read: a refund is in the charge's currency (it has no currency field of
    # its own), and a stated amount may not exceed what is left of the charge.
    always=True,
)
"""How a refund that names no amount is counted: what is left of its charge."""

_OPERATIONS = (
    # customers
    Operation(
        name="customers.list",
        method="GET",
        path="/v1/customers",
        risk=RiskClass.READ,
        summary="List customers, newest first; filter by exact email.",
        control=("email", *_LIST_CONTROL),
        untrusted=_listed(_CUSTOMER_UNTRUSTED),
    ),
    Operation(
        name="customers.retrieve",
        method="GET",
        path="/v1/customers/{customer}",
        risk=RiskClass.READ,
        summary="Retrieve one customer by id.",
        control=("customer",),
        untrusted=_CUSTOMER_UNTRUSTED,
    ),
    Operation(
        name="customers.create",
        method="POST",
        path="/v1/customers",
        risk=RiskClass.WRITE,
        summary="Create a customer.",
        # email receives receipts and invoices: a recipient, so control.
        control=("email", "payment_method", "invoice_settings", "balance", "source"),
        content=("name", "description", "phone", "address", "shipping", "metadata"),
        untrusted=_CUSTOMER_UNTRUSTED,
    ),
    Operation(
        name="customers.update",
        method="POST",
        path="/v1/customers/{customer}",
        risk=RiskClass.WRITE,
        summary="Update a customer's details.",
        control=("customer", "email", "invoice_settings", "default_source", "balance", "source"),
        content=("name", "description", "phone", "address", "shipping", "metadata"),
        untrusted=_CUSTOMER_UNTRUSTED,
    ),
    # payment intents
    Operation(
        name="payment_intents.list",
        method="GET",
        path="/v1/payment_intents",
        risk=RiskClass.READ,
        summary="List payment intents, newest first; filter by customer.",
        control=("customer", *_LIST_CONTROL),
        untrusted=_listed(_PAYMENT_INTENT_UNTRUSTED),
    ),
    Operation(
        name="payment_intents.retrieve",
        method="GET",
        path="/v1/payment_intents/{intent}",
        risk=RiskClass.READ,
        summary="Retrieve one payment intent by id.",
        control=("intent",),
        untrusted=_PAYMENT_INTENT_UNTRUSTED,
    ),
    Operation(
        name="payment_intents.create",
        method="POST",
        path="/v1/payment_intents",
        risk=RiskClass.MONEY,
        summary="Create a payment intent; with confirm=true it charges at once.",
        control=(
            "amount",
            "currency",
            "customer",
            "payment_method",
            "confirm",
            "capture_method",
            "off_session",
            "on_behalf_of",
            "transfer_data",
            "application_fee_amount",
            "receipt_email",
        ),
        content=("description", "metadata", "statement_descriptor", "shipping"),
        amount=AmountSpec(amount_field="amount", currency_field="currency"),
        untrusted=_PAYMENT_INTENT_UNTRUSTED,
    ),
    Operation(
        name="payment_intents.confirm",
        method="POST",
        path="/v1/payment_intents/{intent}/confirm",
        risk=RiskClass.MONEY,
        summary="Confirm a payment intent: attempts to charge its whole amount.",
        control=("intent", "payment_method", "return_url", "off_session", "receipt_email"),
        # The confirm body never carries an amount: the broker reads the intent named
        # in the path and counts its amount.
        amount=AmountSpec(
            lookup=LookupSpec(sources=(("intent", "/v1/payment_intents/{id}"),), from_path=True)
        ),
        untrusted=_PAYMENT_INTENT_UNTRUSTED,
    ),
    # charges
    Operation(
        name="charges.list",
        method="GET",
        path="/v1/charges",
        risk=RiskClass.READ,
        summary="List charges, newest first; filter by customer or payment intent.",
        control=("customer", "payment_intent", *_LIST_CONTROL),
        untrusted=_listed(_CHARGE_UNTRUSTED),
    ),
    Operation(
        name="charges.retrieve",
        method="GET",
        path="/v1/charges/{charge}",
        risk=RiskClass.READ,
        summary="Retrieve one charge by id.",
        control=("charge",),
        untrusted=_CHARGE_UNTRUSTED,
    ),
    # refunds
    Operation(
        name="refunds.create",
        method="POST",
        path="/v1/refunds",
        risk=RiskClass.MONEY,
        summary="Refund a charge or payment intent, in part (amount) or in full (no amount).",
        # "reason" is one of three fixed words: not a control (retrieved text names it often).
        control=("charge", "payment_intent", "amount", "currency", "customer"),
        content=("metadata",),
        amount=AmountSpec(amount_field="amount", currency_field="currency", lookup=REFUND_LOOKUP),
        untrusted=_REFUND_UNTRUSTED,
    ),
    Operation(
        name="refunds.list",
        method="GET",
        path="/v1/refunds",
        risk=RiskClass.READ,
        summary="List refunds, newest first; filter by charge or payment intent.",
        control=("charge", "payment_intent", *_LIST_CONTROL),
        untrusted=_listed(_REFUND_UNTRUSTED),
    ),
    Operation(
        name="refunds.retrieve",
        method="GET",
        path="/v1/refunds/{refund}",
        risk=RiskClass.READ,
        summary="Retrieve one refund by id.",
        control=("refund",),
        untrusted=_REFUND_UNTRUSTED,
    ),
    # balance
    Operation(
        name="balance.retrieve",
        method="GET",
        path="/v1/balance",
        risk=RiskClass.READ,
        summary="Retrieve the account's available and pending balance.",
    ),
)


def _deny(reason: Reason, ctx: CheckContext, message: str) -> Decision:
    return Decision.deny(reason, f"providers.stripe.{ctx.operation.name}", message)


_FORM = "application/x-www-form-urlencoded"
# What a JSON value can start with, as json.loads reads it (NaN, Infinity included).
_JSON_STARTS = frozenset('{["-0123456789tfnNI')


def _form_pairs(ctx: CheckContext) -> list[tuple[str, str]] | str:
    """The fields of a Stripe POST body, parsed strictly; a string says what is wrong.

    Stripe's API reads form bodies. Anything another parser could read differently
    is refused: another media type, non-ASCII, a malformed pair, a repeated field
    (other than ``name[]`` arrays), and a body that is also valid JSON (a lenient
    server reads JSON first, whatever the content type says).
    """
    body = ctx.facts.body
    media = ctx.facts.content_type.split(";", 1)[0].strip().lower()
    if not body:
        return []
    if media != _FORM:
        return f"a Stripe POST body must be {_FORM}, not {media or 'untyped'}"
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return "a Stripe form body must be ASCII (percent-encode the rest)"
    # json.loads refuses any text whose first character after JSON whitespace
    # cannot start a value: no need to watch it fail (a form starts with a name).
    if text.lstrip(" \t\n\r")[:1] in _JSON_STARTS:
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return "the form body is also valid JSON, which other parsers would read differently"
    try:
        pairs = parse_form(text, strict=True)
    except ValueError:
        return "the form body does not parse"
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen and not key.endswith("[]"):
            return f"the form body has the field {key!r} twice"
        seen.add(key)
    return pairs


def check(ctx: CheckContext) -> Decision | Rewrite | None:
    """Stripe's own rules, after the operation passed the grant.

    1. every path parameter is a Stripe object id                  bad_path
    2. a POST has no query string                                  bad_request
       and a strictly parsed form body, forwarded re-encoded       bad_request
    3. a refund names a charge or a payment intent, not both       amount_invalid
    4. customers.create/update do not set the credit ``balance``   not_allowed
    """
    # 1
    for name, value in ctx.params.items():
        if not _OBJECT_ID.match(value):
            return _deny(
                Reason.BAD_PATH,
                ctx,
                f"{name} {value[:40]!r} is not a Stripe object id (like cus_123 or ch_123)",
            )
    op = ctx.operation.name
    # 2: Stripe also reads parameters from a POST's query string; the broker reads the
    #    body only, so ``?amount=`` beside the body would be a second, unchecked amount.
    if ctx.facts.method == "POST" and ctx.facts.query:
        return _deny(
            Reason.BAD_REQUEST,
            ctx,
            "send a Stripe POST's parameters in the form body; its query string must be empty",
        )
    rewrite: Rewrite | None = None
    keys: set[str] = set()
    if ctx.facts.method == "POST":
        pairs = _form_pairs(ctx)
        if isinstance(pairs, str):
            return _deny(Reason.BAD_REQUEST, ctx, pairs)
        keys = {key.split("[", 1)[0] for key, _ in pairs}
        # Forward exactly the fields read here, re-encoded by the broker.
        rewrite = Rewrite(body=encode_form(pairs).encode("ascii")) if pairs else None
    # 3: the look-up reads one of them; Stripe must not be left to pick the other.
    if op == "refunds.create" and {"charge", "payment_intent"} <= keys:
        return _deny(
            Reason.AMOUNT_INVALID,
            ctx,
            "a refund names either a charge or a payment intent, not both",
        )
    # 4: a customer balance is credit spent on future invoices: money, uncounted here.
    if op in ("customers.create", "customers.update") and "balance" in keys:
        return _deny(
            Reason.NOT_ALLOWED,
            ctx,
            "setting a customer's credit balance moves money and is not allowed through "
            f"{op}; ask an operator",
        )
    return rewrite


CATALOG = Catalog(
    provider="stripe",
    operations=_OPERATIONS,
    inject=(("Authorization", "Bearer {secret}"),),
    resource_key=None,
    resource_pattern=None,
    check=check,
    idempotency_header="Idempotency-Key",
)
"""The Stripe catalog the broker enforces."""
