"""supabase-py (and postgrest-py under it) through the broker: URL and key change.

``create_client("<broker>/proxy/supabase", token)`` sends the token twice, as
``apikey`` and ``Authorization: Bearer``; the broker replaces both with the
vaulted project key. The grant's tables and operations apply as they do to the
toolkit; a refusal is postgrest's ``APIError`` with the broker's reason as its
``code`` and in its ``message``, the deciding rule in ``details``. (postgrest keeps
only PostgREST's four fields; the broker's ``error`` object is in the raw body.)
"""

from __future__ import annotations

from typing import Any, cast

import psycopg
import pytest
from postgrest import APIError, SyncPostgrestClient
from supabase import Client, create_client

from tests.providers.supabase.conftest import SUPABASE_KEY
from tests.sdk.conftest import SupabaseSdk

# supabase-py passes postgrest-py options that postgrest-py itself deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning"
)


def _client(sdk: SupabaseSdk, grant: str = "sdk-reporting") -> Client:
    return create_client(sdk.deployment.base_url, sdk.deployment.token(grant))


def test_select_with_postgrest_filters(
    supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]
) -> None:
    rows = (
        _client(supabase_sdk)
        .table("orders")
        .select("id,customer,amount")
        .eq("status", "open")
        .order("id")
        .limit(5)
        .execute()
    )
    found = cast(list[dict[str, Any]], rows.data)
    assert [(r["customer"], r["amount"]) for r in found] == [("acme", 1200), ("globex", 5000)]


def test_insert_returns_the_row(supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]) -> None:
    made = _client(supabase_sdk).table("orders").insert({"customer": "initech", "amount": 75})
    row = cast(list[dict[str, Any]], made.execute().data)[0]
    assert (row["customer"], row["amount"], row["status"]) == ("initech", 75, "open")
    found = orders.execute("SELECT amount FROM orders WHERE id = %s", (row["id"],)).fetchone()
    assert found == (75,)


def test_upstream_sees_the_project_key_twice_never_the_token(
    supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]
) -> None:
    token = supabase_sdk.deployment.token("sdk-reporting")
    before = len(supabase_sdk.standin.received)
    create_client(supabase_sdk.deployment.base_url, token).table("orders").select("id").execute()
    (seen,) = supabase_sdk.standin.received[before:]
    assert seen.headers["apikey"] == SUPABASE_KEY
    assert seen.headers["authorization"] == f"Bearer {SUPABASE_KEY}"
    assert seen.headers["accept-profile"] == "public"  # postgrest-py's default schema
    assert not [name for name, value in seen.headers.items() if token in value]


def test_plain_postgrest_client_works_too(
    supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]
) -> None:
    token = supabase_sdk.deployment.token("sdk-reporting")
    with SyncPostgrestClient(
        f"{supabase_sdk.deployment.base_url}/rest/v1",
        headers={"apikey": token, "Authorization": f"Bearer {token}"},
    ) as client:
        rows = client.from_("orders").select("id").eq("customer", "acme").execute()
    assert len(rows.data) == 2


def test_operation_outside_the_grant_is_refused(
    supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]
) -> None:
    with pytest.raises(APIError) as refused:
        _client(supabase_sdk).table("orders").delete().eq("id", 1).execute()
    assert refused.value.code == "not_allowed"
    assert refused.value.message is not None
    assert refused.value.message.startswith("vertex_tools: not_allowed")
    # postgrest keeps PostgREST's four fields: the rule and the audit hint are among them
    assert refused.value.details == "rule grants.sdk-reporting.operations"
    assert refused.value.hint is not None
    assert "vertex audit tail" in refused.value.hint
    assert orders.execute("SELECT count(*) FROM orders").fetchone() == (4,)


def test_table_outside_the_grant_is_refused(
    supabase_sdk: SupabaseSdk, orders: psycopg.Connection[Any]
) -> None:
    before = len(supabase_sdk.standin.received)
    with pytest.raises(APIError) as refused:
        _client(supabase_sdk).table("customers").select("*").execute()
    assert refused.value.code == "resource_not_allowed"
    assert "resource_not_allowed" in str(refused.value)
    assert len(supabase_sdk.standin.received) == before


def test_another_schema_is_refused(supabase_sdk: SupabaseSdk) -> None:
    with pytest.raises(APIError) as refused:
        _client(supabase_sdk).schema("private").table("orders").select("id").execute()
    assert refused.value.code == "not_allowed"


def test_a_grant_without_bearer_refuses_the_sdk(supabase_sdk: SupabaseSdk) -> None:
    with pytest.raises(APIError) as refused:
        _client(supabase_sdk, "signed-only").table("orders").select("id").execute()
    assert refused.value.code == "bearer_not_allowed"
