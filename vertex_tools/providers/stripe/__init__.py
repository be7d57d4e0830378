"""Stripe: the catalog the broker enforces (``catalog``) and the agent's tools (``toolkit``).

The broker imports ``vertex_tools.providers.stripe.catalog`` and must not pull
in LangChain, so the toolkit is loaded only when asked for:

    >>> from vertex_tools.providers.stripe import StripeToolkit   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vertex_tools.providers.stripe.toolkit import StripeToolkit

__all__ = ["StripeToolkit"]


def __getattr__(name: str) -> Any:
    """Load the toolkit (and LangChain) on first use only."""
    if name == "StripeToolkit":
        from vertex_tools.providers.stripe.toolkit import StripeToolkit

        return StripeToolkit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
