"""What only the PostgreSQL store has: schema migrations, URLs whose password never
shows, the vault in the shared database, and psycopg errors translated to ours."""

from __future__ import annotations

import psycopg
import pytest

from tests.pg import PostgresCluster
from vertex_tools.errors import ConfigError, SecretNotFound, StoreError
from vertex_tools.home import Home
from vertex_tools.store.dsn import PostgresDsn, redact_dsn
from vertex_tools.store.location import PostgresLocation, SqliteLocation, resolve_store
from vertex_tools.store.migrations import LATEST_VERSION, MIGRATIONS
from vertex_tools.store.pg_vault import PostgresVaultRows
from vertex_tools.store.postgres import PostgresStore, initialise_postgres
from vertex_tools.vault import Keyring, MasterKey, Vault

SECRET = "sk_test_pgVaultSecret0123456789abcd"


@pytest.fixture
def empty_url(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_database()


def test_migrations_are_numbered_in_order_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == LATEST_VERSION


def test_an_uninitialised_database_is_refused_with_the_command_that_fixes_it(
    empty_url: str, pg_cluster: PostgresCluster
) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore(PostgresDsn(empty_url))
    message = str(caught.value)
    assert "is not initialised" in message and "init" in message
    assert pg_cluster.password not in message and "***" in message


def test_init_applies_every_migration_once_and_records_them(empty_url: str) -> None:
    dsn = PostgresDsn(empty_url)
    applied = initialise_postgres(dsn, actor="tests")
    assert [m.version for m in applied] == [m.version for m in MIGRATIONS]
    assert initialise_postgres(dsn, actor="tests") == []  # idempotent
    with psycopg.connect(empty_url) as conn:
        rows = conn.execute("SELECT version, applied_by FROM schema_version ORDER BY version")
        assert [tuple(r) for r in rows] == [(m.version, "tests") for m in MIGRATIONS]
    PostgresStore(dsn).close()


def test_a_database_behind_or_ahead_of_this_version_is_refused(empty_url: str) -> None:
    dsn = PostgresDsn(empty_url)
    initialise_postgres(dsn, actor="tests")
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = %s", (LATEST_VERSION,))
    with pytest.raises(StoreError, match=f"schema version {LATEST_VERSION - 1}.*init"):
        PostgresStore(dsn)
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (%s, 'x', 0, 'x'), (%s, 'future', 0, 'x')",
            (LATEST_VERSION, LATEST_VERSION + 1),
        )
    with pytest.raises(StoreError, match=r"newer than this vertex_tools.*upgrade"):
        PostgresStore(dsn)
    with pytest.raises(StoreError, match="newer than this vertex_tools"):
        initialise_postgres(dsn, actor="tests")  # never "migrates" a newer schema down


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:hunter2@db:5432/vt", "postgresql://u:***@db:5432/vt"),
        ("postgres://u@db/vt?password=hunter2&sslmode=require", "password=***"),
        ("postgresql://db/vt", "postgresql://db/vt"),
        ("host=db password='hunter2' dbname=vt", "password=***"),
    ],
)
def test_urls_are_shown_with_the_password_masked(url: str, shown: str) -> None:
    assert shown in redact_dsn(url) and "hunter2" not in redact_dsn(url)


def test_a_dsn_never_shows_its_password() -> None:
    dsn = PostgresDsn("postgresql://u:hunter2@db/vt")
    assert "hunter2" not in f"{dsn} {dsn!r} {dsn.redacted}"
    assert dsn.url.endswith("@db/vt")
    assert "hunter2" not in dsn.scrub("failed for postgresql://u:hunter2@db/vt: hunter2")


def test_store_values_resolve_and_bad_ones_are_refused_naming_what_works() -> None:
    home = Home.resolve("/tmp/nowhere", {})
    with pytest.raises(ConfigError, match=r"names no database"):
        PostgresDsn("postgresql://u:pw@db")
    with pytest.raises(ConfigError, match="postgresql://user@host/db") as caught:
        resolve_store("mysql://u:pw@db/x", {}, home)
    assert "pw@" not in str(caught.value)
    assert isinstance(resolve_store(None, {}, home), SqliteLocation)
    chosen = resolve_store(None, {"VERTEX_STORE": "postgresql://db/x"}, home)
    assert isinstance(chosen, PostgresLocation)
    explicit = resolve_store("sqlite", {"VERTEX_STORE": "postgresql://db/x"}, home)
    assert isinstance(explicit, SqliteLocation)


def test_a_refused_login_is_a_store_error_without_the_password(
    pg_cluster: PostgresCluster,
) -> None:
    wrong = f"wrong-{pg_cluster.password}"
    url = f"postgresql://postgres:{wrong}@127.0.0.1:{pg_cluster.port}/postgres"
    with pytest.raises(StoreError) as caught:
        PostgresStore(PostgresDsn(url))
    assert isinstance(caught.value.__cause__, psycopg.Error)
    assert wrong not in str(caught.value)
    assert "password authentication failed" in str(caught.value)


def test_the_vault_in_postgres_seals_opens_rotates_and_never_stores_plaintext(
    empty_url: str,
) -> None:
    dsn = PostgresDsn(empty_url)
    initialise_postgres(dsn, actor="tests")
    key, new_key = MasterKey.generate(), MasterKey.generate()
    with Vault(PostgresVaultRows(dsn), Keyring(key)) as vault:
        info = vault.put("stripe-live", "stripe", SECRET)
        assert info.key_id == key.key_id
        assert vault.get("stripe-live")[1].reveal() == SECRET
        assert "***" in repr(vault) and empty_url not in repr(vault)
        assert vault.reencrypt_all(new_key) == 1
    with Vault(PostgresVaultRows(dsn), Keyring(new_key)) as vault:
        assert vault.get("stripe-live")[1].reveal() == SECRET
        assert [e.name for e in vault.list()] == ["stripe-live"]
    with psycopg.connect(empty_url) as conn:
        row = conn.execute("SELECT ciphertext, nonce FROM vault_entries").fetchone()
        assert row is not None and SECRET.encode() not in bytes(row[0])
    with Vault(PostgresVaultRows(dsn), Keyring(new_key)) as vault:
        vault.remove("stripe-live")
        with pytest.raises(SecretNotFound):
            vault.get("stripe-live")
