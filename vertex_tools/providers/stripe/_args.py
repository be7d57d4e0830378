"""Argument schemas of the Stripe tools, and Stripe's form encoding.

The field descriptions are what the model reads: they say what a value is,
its format (Stripe ids, minor units), and when to leave it out. Ids are
checked against Stripe's id shape here, so a value can never change the path
a tool calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "BalanceArgs",
    "ChargeArgs",
    "ChargesListArgs",
    "ConfirmPaymentIntentArgs",
    "CreateCustomerArgs",
    "CreatePaymentIntentArgs",
    "CreateRefundArgs",
    "CustomerArgs",
    "CustomersListArgs",
    "PaymentIntentArgs",
    "PaymentIntentsListArgs",
    "RefundArgs",
    "RefundsListArgs",
    "UpdateCustomerArgs",
    "form",
]

CustomerId = Annotated[
    str, Field(pattern=r"^cus_[A-Za-z0-9]{1,250}$", description="A customer id, like cus_123.")
]
PaymentIntentId = Annotated[
    str,
    Field(pattern=r"^pi_[A-Za-z0-9]{1,250}$", description="A payment intent id, like pi_123."),
]
ChargeId = Annotated[
    str,
    Field(
        pattern=r"^(ch|py)_[A-Za-z0-9]{1,250}$",
        description="A charge id, like ch_123 (py_123 for some payment methods).",
    ),
]
RefundId = Annotated[
    str,
    Field(pattern=r"^(re|pyr)_[A-Za-z0-9]{1,250}$", description="A refund id, like re_123."),
]
PaymentMethodId = Annotated[
    str,
    Field(
        pattern=r"^(pm|card|src)_[A-Za-z0-9]{1,250}$",
        description="A payment method id, like pm_123.",
    ),
]
Cursor = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[a-z]{1,8}_[A-Za-z0-9]{1,250}$",
        description="For the next page: the id of the last object of the previous page. "
        "Leave empty for the first page.",
    ),
]
Limit = Annotated[
    int, Field(default=10, ge=1, le=100, description="How many objects to return, 1 to 100.")
]
Amount = Annotated[
    int,
    Field(
        gt=0,
        le=99_999_999,
        description="Amount in the currency's smallest unit (cents for usd): 1500 is $15.00, "
        "not fifteen dollars written as 15.",
    ),
]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{3}$",
        description="Three-letter ISO currency code in lower case, like usd or eur.",
    ),
]
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")],
        Annotated[str, StringConstraints(max_length=500)],
    ]
    | None,
    Field(
        default=None,
        max_length=50,
        description="Key-value labels to store on the object (keys: letters, digits, _ . -, "
        "at most 40 characters; values at most 500 characters). Not shown to the customer.",
    ),
]
Text = Annotated[str | None, Field(default=None, max_length=5000)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BalanceArgs(_Args):
    """No arguments: the balance belongs to the whole account."""


class CustomersListArgs(_Args):
    """Arguments of ``customers.list``."""

    email: str | None = Field(
        default=None,
        max_length=512,
        description="Only customers with exactly this email address (case-sensitive).",
    )
    limit: Limit
    starting_after: Cursor


class CustomerArgs(_Args):
    """Arguments of ``customers.retrieve``."""

    customer: CustomerId


class CreateCustomerArgs(_Args):
    """Arguments of ``customers.create``."""

    name: Text = Field(default=None, description="The customer's full name or business name.")
    email: str | None = Field(
        default=None,
        max_length=512,
        description="The customer's email address; Stripe sends receipts and invoices to it.",
    )
    phone: str | None = Field(default=None, max_length=20, description="The phone number.")
    description: Text = Field(
        default=None, description="An internal note about the customer, not shown to them."
    )
    metadata: Metadata


class UpdateCustomerArgs(CreateCustomerArgs):
    """Arguments of ``customers.update``: the customer and the fields to change."""

    customer: CustomerId


class PaymentIntentsListArgs(_Args):
    """Arguments of ``payment_intents.list``."""

    customer: CustomerId | None = Field(
        default=None, description="Only this customer's payment intents (a cus_ id)."
    )
    limit: Limit
    starting_after: Cursor


class PaymentIntentArgs(_Args):
    """Arguments of ``payment_intents.retrieve``."""

    payment_intent: PaymentIntentId


class CreatePaymentIntentArgs(_Args):
    """Arguments of ``payment_intents.create``."""

    amount: Amount
    currency: Currency
    customer: CustomerId | None = Field(
        default=None, description="The customer who pays (a cus_ id)."
    )
    payment_method: PaymentMethodId | None = Field(
        default=None, description="The payment method to charge (a pm_ id)."
    )
    confirm: bool = Field(
        default=False,
        description="True charges the payment method at once; false only prepares the payment.",
    )
    description: Text = Field(
        default=None, description="What the payment is for; shown on receipts."
    )
    metadata: Metadata


class ConfirmPaymentIntentArgs(_Args):
    """Arguments of ``payment_intents.confirm``."""

    payment_intent: PaymentIntentId
    payment_method: PaymentMethodId | None = Field(
        default=None,
        description="The payment method to charge; leave empty to use the one already set.",
    )


class ChargesListArgs(_Args):
    """Arguments of ``charges.list``."""

    customer: CustomerId | None = Field(
        default=None, description="Only this customer's charges (a cus_ id)."
    )
    payment_intent: PaymentIntentId | None = Field(
        default=None, description="Only the charges of this payment intent (a pi_ id)."
    )
    limit: Limit
    starting_after: Cursor


class ChargeArgs(_Args):
    """Arguments of ``charges.retrieve``."""

    charge: ChargeId


class CreateRefundArgs(_Args):
    """Arguments of ``refunds.create``: exactly one of charge and payment_intent."""

    charge: ChargeId | None = Field(
        default=None, description="The charge to refund (a ch_ id). Give this or payment_intent."
    )
    payment_intent: PaymentIntentId | None = Field(
        default=None,
        description="The payment intent to refund (a pi_ id). Give this or charge, not both.",
    )
    amount: Amount | None = Field(
        default=None,
        description="How much to refund, in the smallest currency unit (cents for usd). "
        "Leave empty to refund everything not yet refunded.",
    )
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = Field(
        default=None,
        description="Why: duplicate, fraudulent (also blocks the card) or requested_by_customer.",
    )
    metadata: Metadata


class RefundsListArgs(_Args):
    """Arguments of ``refunds.list``."""

    charge: ChargeId | None = Field(
        default=None, description="Only the refunds of this charge (a ch_ id)."
    )
    payment_intent: PaymentIntentId | None = Field(
        default=None, description="Only the refunds of this payment intent (a pi_ id)."
    )
    limit: Limit
    starting_after: Cursor


class RefundArgs(_Args):
    """Arguments of ``refunds.retrieve``."""

    refund: RefundId


FormValue = str | int | bool | Mapping[str, str] | None


def form(fields: Mapping[str, FormValue]) -> dict[str, str]:
    """Encode fields the way Stripe's v1 API reads them.

    None is left out (Stripe's default applies), booleans are ``true``/``false``,
    and a mapping becomes bracketed keys: ``metadata[order]=42``.
    """
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                out[f"{key}[{sub_key}]"] = sub_value
        else:
            out[key] = str(value)
    return out
