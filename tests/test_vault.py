"""Tests for vertex_tools.vault, against real SQLite files and real key files."""

from __future__ import annotations

import base64
import os
import pickle
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

import vertex_tools.vault as vault_module
from vertex_tools.errors import (
    InvalidCiphertext,
    MasterKeyError,
    SecretNotFound,
    StoreError,
    VaultError,
)
from vertex_tools.vault import (
    KEY_FILE,
    NAME_PATTERN,
    NEW_KEY_FILE,
    PROVIDER_PATTERN,
    Keyring,
    MasterKey,
    SecretValue,
    Vault,
    VaultEntryInfo,
    load_keyring,
    read_key_file,
    rotate_key_file,
    write_key_file,
)

# Distinctive enough that finding it anywhere means it leaked.
SECRET = "sk_test_VaultCanary_Zq8xVv3Kp0LmTw7Yb2Rn5Hj9"
OTHER_SECRET = "gh_test_OtherCanary_Qm4Lp8Zt2Xw6Vn0Bc3Ry7Ks1"
T0 = 1_700_000_000.75


class FakeClock:
    """A settable clock, injected instead of time.time."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def other_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def vault(db_path: Path, key: MasterKey) -> Iterator[Vault]:
    with Vault(db_path, Keyring(key)) as opened:
        yield opened


def opaque_message() -> str:
    """The one message every decryption failure carries."""
    with pytest.raises(InvalidCiphertext) as info:
        Keyring(MasterKey.generate()).get("no-such-key-id")
    return str(info.value)


# --- leak scanning -------------------------------------------------------------------


def leak_forms(secret: str) -> list[bytes]:
    """The secret as UTF-8, UTF-16, hex and base64 at every alignment."""
    raw = secret.encode("utf-8")
    forms = [
        raw,
        secret.encode("utf-16-le"),
        secret.encode("utf-16-be"),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]
    for shift in range(3):
        # Base64 of a longer blob contains these whole groups wherever the secret sits.
        chunk = raw[shift:]
        chunk = chunk[: len(chunk) // 3 * 3]
        forms += [base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)]
    return forms


def files_containing(root: Path, secret: str) -> list[str]:
    forms = leak_forms(secret)
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {form!r}" for form in forms if form in data]
    return found


def assert_no_part_of(secret: str, text: str) -> None:
    """No 6-character piece of the secret appears in ``text``."""
    pieces = {secret[i : i + 6] for i in range(len(secret) - 5)}
    assert not [p for p in pieces if p in text], text


def test_leak_scanner_finds_plaintext(tmp_path: Path) -> None:
    """Control: the scanner does find the forms it looks for."""
    for form in leak_forms(SECRET):
        (tmp_path / "leak").write_bytes(b"prefix-" + form + b"-suffix")
        assert files_containing(tmp_path, SECRET)
    blob = base64.b64encode(b"xy" + SECRET.encode() + b"z")
    (tmp_path / "leak").write_bytes(blob)
    assert files_containing(tmp_path, SECRET)


def test_plaintext_never_reaches_disk_reprs_or_errors(
    tmp_path: Path, home: Path, db_path: Path
) -> None:
    key = MasterKey.generate()
    write_key_file(home / KEY_FILE, key)
    texts: list[str] = []
    with Vault(db_path, load_keyring(home, environ={})) as vault:
        texts.append(repr(vault))
        infos = [vault.put("stripe-live", "stripe", SECRET)]
        infos.append(vault.put("github", "github", OTHER_SECRET))
        info, value = vault.get("stripe-live")
        assert value.reveal() == SECRET
        infos += [info, *vault.list()]
        texts += [repr(value), str(value), f"{value}", repr(vault)]
        texts += [repr(i) for i in infos] + [str(i) for i in infos]
        texts += [repr(vault.keyring), repr(key), str(key)]
        # Scan while the connection is open: the -wal and -shm files exist now.
        names = {p.name for p in tmp_path.rglob("*")}
        assert {"state.db", "state.db-wal", "state.db-shm", KEY_FILE} <= names
        assert files_containing(tmp_path, SECRET) == []
        with pytest.raises(VaultError) as bad:
            vault.put("stripe-live", "stripe", SECRET + "\r\nX-Injected: 1")
        texts.append(str(bad.value))
    rotate_key_file(home, db_path)
    with Vault(db_path, load_keyring(home, environ={})) as vault:
        assert vault.get("stripe-live")[1].reveal() == SECRET
        vault.remove("github")
    for secret in (SECRET, OTHER_SECRET):
        assert files_containing(tmp_path, secret) == []
        for text in texts:
            assert_no_part_of(secret, text)


# --- round trip, dates, listing ------------------------------------------------------


def test_round_trip(vault: Vault, key: MasterKey) -> None:
    info = vault.put("stripe-live", "stripe", SECRET)
    assert (info.name, info.provider, info.key_id) == ("stripe-live", "stripe", key.key_id)
    got_info, value = vault.get("stripe-live")
    assert got_info == info
    assert isinstance(value, SecretValue)
    assert value.reveal() == SECRET


def test_round_trip_across_connections(db_path: Path, key: MasterKey) -> None:
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("supabase.prod", "supabase", "eyJhbGciOiJIUzI1NiJ9.ünïcödé")
    with Vault(db_path, Keyring(key)) as vault:
        assert vault.get("supabase.prod")[1].reveal() == "eyJhbGciOiJIUzI1NiJ9.ünïcödé"


def test_clock_dates_entries_and_replace_keeps_created(db_path: Path, key: MasterKey) -> None:
    clock = FakeClock()
    with Vault(db_path, Keyring(key), clock=clock) as vault:
        first = vault.put("stripe-live", "stripe", SECRET)
        created = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        assert first.created == first.updated == created
        clock.now = T0 + 3600
        second = vault.put("stripe-live", "stripe", OTHER_SECRET)
        assert second.created == created
        assert second.updated == datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC)
        assert vault.get("stripe-live")[0] == second
        assert vault.get("stripe-live")[1].reveal() == OTHER_SECRET


def test_list_is_sorted_metadata(vault: Vault) -> None:
    assert vault.list() == []
    vault.put("zeta", "github", SECRET)
    vault.put("alpha", "stripe", OTHER_SECRET)
    listed = vault.list()
    assert [i.name for i in listed] == ["alpha", "zeta"]
    assert all(isinstance(i, VaultEntryInfo) for i in listed)
    assert not hasattr(listed[0], "value")


def test_remove(vault: Vault) -> None:
    vault.put("stripe-live", "stripe", SECRET)
    vault.remove("stripe-live")
    assert vault.list() == []
    with pytest.raises(SecretNotFound, match="stripe-live"):
        vault.remove("stripe-live")


def test_get_missing_names_the_fix(vault: Vault) -> None:
    with pytest.raises(SecretNotFound) as info:
        vault.get("stripe-live")
    assert "stripe-live" in str(info.value)
    assert "`vertex vault put stripe-live --provider P`" in str(info.value)


def test_table_shares_the_file_and_uses_wal(db_path: Path, key: MasterKey) -> None:
    other = Database(db_path)
    other.table("tokens").insert({"id": "t1", "grant": "g"}, pk="id")
    other.close()
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("stripe-live", "stripe", SECRET)
    with Vault(db_path, Keyring(key)) as vault:  # IF NOT EXISTS: a second open is fine
        assert len(vault.list()) == 1
    db = Database(db_path)
    assert db.journal_mode == "wal"
    assert set(db.table_names()) == {"tokens", "vault_entries"}
    assert list(db.table("tokens").rows) == [{"id": "t1", "grant": "g"}]
    columns = {c.name: c.type for c in db.table("vault_entries").columns}
    assert columns == {
        "name": "TEXT",
        "provider": "TEXT",
        "key_id": "TEXT",
        "nonce": "BLOB",
        "ciphertext": "BLOB",
        "created": "INTEGER",
        "updated": "INTEGER",
    }
    row = next(iter(db.table("vault_entries").rows))
    assert len(row["nonce"]) == 12
    db.close()


def test_each_put_uses_a_fresh_nonce(vault: Vault, db_path: Path) -> None:
    nonces = set()
    for _ in range(20):
        vault.put("stripe-live", "stripe", SECRET)
        db = Database(db_path)
        nonces.add(next(iter(db.table("vault_entries").rows))["nonce"])
        db.close()
    assert len(nonces) == 20


def test_not_a_database_is_a_store_error(tmp_path: Path, key: MasterKey) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database, not at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        Vault(path, Keyring(key))


# --- tampering -----------------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


Tamper = Callable[[Database, dict[str, object], MasterKey], str]


def _update(db: Database, **values: object) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(
        f"UPDATE vault_entries SET {assignments} WHERE name = 'stripe-live'",  # noqa: S608
        list(values.values()),
    )


def _set(column: str, make: Callable[[dict[str, object], MasterKey], object]) -> Tamper:
    def tamper(db: Database, row: dict[str, object], other: MasterKey) -> str:
        _update(db, **{column: make(row, other)})
        return "stripe-live"

    return tamper


def _rename(db: Database, row: dict[str, object], other: MasterKey) -> str:
    _update(db, name="stripe-test")
    return "stripe-test"


def _move_other_ciphertext_here(db: Database, row: dict[str, object], other: MasterKey) -> str:
    # Same provider, different name: the ciphertext is authentic, just not this entry's.
    donor = next(iter(db.table("vault_entries").rows_where("name = ?", ["stripe-backup"])))
    _update(db, nonce=donor["nonce"], ciphertext=donor["ciphertext"])
    return "stripe-live"


TAMPERS: dict[str, Tamper] = {
    "ciphertext first byte": _set("ciphertext", lambda r, o: _flip(r["ciphertext"], 0)),  # type: ignore[arg-type]
    "ciphertext tag byte": _set("ciphertext", lambda r, o: _flip(r["ciphertext"], -1)),  # type: ignore[arg-type]
    "ciphertext truncated": _set("ciphertext", lambda r, o: r["ciphertext"][:-1]),  # type: ignore[index]
    "ciphertext tag stripped": _set("ciphertext", lambda r, o: r["ciphertext"][:-16]),  # type: ignore[index]
    "ciphertext empty": _set("ciphertext", lambda r, o: b""),
    "ciphertext as text": _set("ciphertext", lambda r, o: "not bytes at all"),
    "nonce bit flip": _set("nonce", lambda r, o: _flip(r["nonce"], 5)),  # type: ignore[arg-type]
    "nonce too short": _set("nonce", lambda r, o: r["nonce"][:11]),  # type: ignore[index]
    "nonce too long": _set("nonce", lambda r, o: r["nonce"] + b"\x00"),  # type: ignore[operator]
    "nonce as text": _set("nonce", lambda r, o: "twelve chars"),
    "key_id unknown": _set("key_id", lambda r, o: "00" * 8),
    "key_id of another loaded key": _set("key_id", lambda r, o: o.key_id),
    "provider relabelled": _set("provider", lambda r, o: "github"),
    "name moved": _rename,
    "ciphertext from another entry": _move_other_ciphertext_here,
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_raises_the_same_opaque_error(
    db_path: Path, key: MasterKey, other_key: MasterKey, tamper: Tamper
) -> None:
    with Vault(db_path, Keyring(key, (other_key,))) as vault:
        vault.put("stripe-live", "stripe", SECRET)
        vault.put("stripe-backup", "stripe", OTHER_SECRET)
        db = Database(db_path)
        row = next(iter(db.table("vault_entries").rows_where("name = 'stripe-live'")))
        name = tamper(db, row, other_key)
        db.close()
        with pytest.raises(InvalidCiphertext) as info:
            vault.get(name)
    assert str(info.value) == opaque_message()
    assert_no_part_of(SECRET, str(info.value))


def test_wrong_key_fails(db_path: Path, key: MasterKey, other_key: MasterKey) -> None:
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("stripe-live", "stripe", SECRET)
    with Vault(db_path, Keyring(other_key)) as vault:
        with pytest.raises(InvalidCiphertext) as info:
            vault.get("stripe-live")
        # The same, even when the wrong key claims the stored key_id's slot.
        assert str(info.value) == opaque_message()


def test_keyring_get_unknown_is_opaque(key: MasterKey) -> None:
    assert Keyring(key).get(key.key_id) is key
    with pytest.raises(InvalidCiphertext) as info:
        Keyring(key).get("ffffffffffffffff")
    assert str(info.value) == opaque_message()


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "Stripe", "-lead", ".lead", "has space", "a" * 65, "naïve", "x/y", "ok\n", "ok\x00"],
)
def test_bad_names_name_the_pattern(vault: Vault, name: str) -> None:
    with pytest.raises(VaultError) as info:
        vault.put(name, "stripe", SECRET)
    assert NAME_PATTERN in str(info.value)
    with pytest.raises(VaultError, match="must match"):
        vault.get(name)


@pytest.mark.parametrize("name", ["a", "0", "stripe-live", "s.t_r-1", "a" * 64])
def test_good_names(vault: Vault, name: str) -> None:
    assert vault.put(name, "stripe", SECRET).name == name


@pytest.mark.parametrize("provider", ["", "1stripe", "Stripe", "a" * 33, "str.ipe", "str\nipe"])
def test_bad_providers_name_the_pattern(vault: Vault, provider: str) -> None:
    with pytest.raises(VaultError) as info:
        vault.put("stripe-live", provider, SECRET)
    assert PROVIDER_PATTERN in str(info.value)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "empty"),
        (SECRET + "\n", "control character"),
        (SECRET + "\r\nX-Evil: 1", "control character"),
        ("\x00" + SECRET, "control character"),
        (SECRET[:10] + "\t" + SECRET[10:], "control character"),
        (SECRET + "\x7f", "control character"),
        (SECRET + "\x85", "control character"),  # C1 NEL
        (SECRET + "\x1b[31m", "control character"),
        (SECRET + "\ud800", "surrogate"),
        ("a" * 8193, "longer than 8192 bytes"),
        ("€" * 2731, "longer than 8192 bytes"),  # 8193 bytes of UTF-8
    ],
)
def test_bad_secrets_are_refused_without_quoting_them(
    vault: Vault, db_path: Path, secret: str, problem: str
) -> None:
    with pytest.raises(VaultError) as info:
        vault.put("stripe-live", "stripe", secret)
    message = str(info.value)
    assert problem in message
    assert_no_part_of(secret, message)
    assert vault.list() == []


def test_secret_size_limit_is_inclusive(vault: Vault) -> None:
    vault.put("big", "stripe", "a" * 8192)
    vault.put("big-utf8", "stripe", "€" * 2730 + "ab")
    assert vault.get("big-utf8")[1].reveal() == "€" * 2730 + "ab"


def test_non_str_secret_is_refused(vault: Vault) -> None:
    with pytest.raises(VaultError, match="must be a str, not bytes"):
        vault.put("stripe-live", "stripe", SECRET.encode())  # type: ignore[arg-type]


# --- SecretValue and MasterKey --------------------------------------------------------


def test_secret_value_hides_itself() -> None:
    value = SecretValue(SECRET)
    assert repr(value) == str(value) == f"{value}" == "SecretValue('***')"
    assert value.reveal() == SECRET
    with pytest.raises(TypeError):
        pickle.dumps(value)


def test_master_key_basics(key: MasterKey) -> None:
    raw = bytes(range(32))
    fixed = MasterKey(raw)
    expected_id = blake3.blake3(b"vertex_tools.vault.keyid.v1\x00" + raw).digest()[:8].hex()
    assert fixed.key_id == expected_id
    assert fixed.encode() == base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert len(fixed.encode()) == 43
    for text in (repr(fixed), str(fixed)):
        assert text == f"MasterKey(key_id={expected_id!r})"
    assert fixed == MasterKey(raw)
    assert fixed != key
    assert hash(fixed) == hash(MasterKey(raw))
    assert key != MasterKey.generate()
    with pytest.raises(AttributeError):
        fixed._raw = b"\x00" * 32
    with pytest.raises(TypeError):
        pickle.dumps(fixed)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "x" * 32])
def test_master_key_must_be_32_bytes(raw: bytes) -> None:
    with pytest.raises(MasterKeyError, match="exactly 32 bytes"):
        MasterKey(raw)


def test_decode_accepts_both_formats(key: MasterKey) -> None:
    raw_hex = base64.urlsafe_b64decode(key.encode() + "=").hex()
    for text in (
        key.encode(),
        key.encode() + "=",
        f"  {key.encode()}\n",
        raw_hex,
        raw_hex.upper(),
        raw_hex + "\n",
    ):
        assert MasterKey.decode(text) == key


def _non_canonical(encoded: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(encoded[-1])
    return encoded[:-1] + alphabet[last | 1]


@pytest.mark.parametrize(
    "make",
    [
        lambda e: "",
        lambda e: e[:-1],
        lambda e: e + "A",
        lambda e: e + "==",
        lambda e: e.replace(e[0], "+") if e[0] != "+" else "/" + e[1:],
        lambda e: "+" * 43,
        lambda e: "0" * 63,
        lambda e: "0" * 65,
        lambda e: "g" * 64,
        lambda e: "\u0660" * 64,  # Arabic-Indic digits are not hex digits
        lambda e: e[:20] + " " + e[20:],
        _non_canonical,
    ],
)
def test_decode_rejects_malformed_without_echo(key: MasterKey, make: Callable[[str], str]) -> None:
    text = make(key.encode())
    with pytest.raises(MasterKeyError) as info:
        MasterKey.decode(text)
    message = str(info.value)
    assert "expected 43 base64url characters" in message
    assert "64 hex characters" in message
    if len(text) >= 8:
        assert_no_part_of(text, message)


@given(st.text())
def test_decode_arbitrary_text_returns_a_key_or_raises_master_key_error(text: str) -> None:
    try:
        decoded = MasterKey.decode(text)
    except MasterKeyError:
        return
    assert MasterKey.decode(decoded.encode()) == decoded


@given(st.binary(min_size=32, max_size=32))
def test_encode_decode_round_trip(raw: bytes) -> None:
    key = MasterKey(raw)
    assert MasterKey.decode(key.encode()) == key
    assert MasterKey.decode(raw.hex()) == key


# --- key files and keyring loading ----------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_round_trip_is_0600(home: Path, key: MasterKey) -> None:
    path = home / KEY_FILE
    write_key_file(path, key)
    assert _mode(path) == 0o600
    assert read_key_file(path) == key
    assert path.read_text() == key.encode() + "\n"


def test_key_file_is_0600_whatever_the_umask(home: Path, key: MasterKey) -> None:
    old = os.umask(0)
    try:
        write_key_file(home / KEY_FILE, key)
    finally:
        os.umask(old)
    assert _mode(home / KEY_FILE) == 0o600


def test_write_key_file_refuses_to_overwrite(home: Path, key: MasterKey) -> None:
    path = home / KEY_FILE
    write_key_file(path, key)
    with pytest.raises(MasterKeyError, match="refusing to overwrite"):
        write_key_file(path, MasterKey.generate())
    assert read_key_file(path) == key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601])
def test_read_key_file_refuses_loose_permissions(home: Path, key: MasterKey, mode: int) -> None:
    path = home / KEY_FILE
    write_key_file(path, key)
    path.chmod(mode)
    with pytest.raises(MasterKeyError) as info:
        read_key_file(path)
    assert str(path) in str(info.value)
    assert f"`chmod 600 {path}`" in str(info.value)
    assert key.encode() not in str(info.value)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_keyring(home, environ={})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "malformed master key"),
        (b"not a key\n", "malformed master key"),
        (b"\xff\xfe" * 30, "malformed master key"),
        (b"0" * 5000, "malformed master key"),
    ],
)
def test_read_key_file_rejects_malformed(home: Path, content: bytes, message: str) -> None:
    path = home / KEY_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(MasterKeyError, match=message) as info:
        read_key_file(path)
    assert str(path) in str(info.value)


def test_read_key_file_missing_and_directory(home: Path) -> None:
    with pytest.raises(MasterKeyError, match="no master key file"):
        read_key_file(home / KEY_FILE)
    (home / KEY_FILE).mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        read_key_file(home / KEY_FILE)


def test_read_key_file_does_not_hang_on_a_fifo(home: Path) -> None:
    os.mkfifo(home / KEY_FILE, 0o600)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        read_key_file(home / KEY_FILE)


def test_load_keyring_from_file(home: Path, key: MasterKey) -> None:
    write_key_file(home / KEY_FILE, key)
    assert load_keyring(home, environ={}) == Keyring(key)
    assert load_keyring(home, environ={"VERTEX_MASTER_KEY": ""}) == Keyring(key)


def test_environment_wins_over_files(home: Path, key: MasterKey, other_key: MasterKey) -> None:
    write_key_file(home / KEY_FILE, key)
    (home / KEY_FILE).chmod(0o644)  # not even read when the variable is set
    keyring = load_keyring(home, environ={"VERTEX_MASTER_KEY": other_key.encode()})
    assert keyring == Keyring(other_key)
    raw_hex = base64.urlsafe_b64decode(other_key.encode() + "=").hex()
    assert load_keyring(home, environ={"VERTEX_MASTER_KEY": raw_hex}) == Keyring(other_key)


@pytest.mark.parametrize("value", ["nope", "  ", "sk_test_looks_like_a_secret_but_is_not_a_key"])
def test_malformed_environment_value(home: Path, key: MasterKey, value: str) -> None:
    write_key_file(home / KEY_FILE, key)  # a valid file does not rescue a bad variable
    with pytest.raises(MasterKeyError) as info:
        load_keyring(home, environ={"VERTEX_MASTER_KEY": value})
    message = str(info.value)
    assert message.startswith("VERTEX_MASTER_KEY is malformed: expected 43 base64url")
    if value.strip():
        assert value not in message


def test_no_key_at_all(home: Path) -> None:
    with pytest.raises(MasterKeyError) as info:
        load_keyring(home, environ={})
    assert str(info.value) == "no master key: run `vertex init` or set VERTEX_MASTER_KEY"


def test_load_keyring_also_reads_an_interrupted_rotation(
    home: Path, key: MasterKey, other_key: MasterKey
) -> None:
    write_key_file(home / KEY_FILE, key)
    write_key_file(home / NEW_KEY_FILE, other_key)
    keyring = load_keyring(home, environ={})
    assert keyring.primary == key
    assert keyring.key_ids == (key.key_id, other_key.key_id)
    (home / NEW_KEY_FILE).chmod(0o640)
    with pytest.raises(MasterKeyError, match=NEW_KEY_FILE):
        load_keyring(home, environ={})


def test_load_keyring_with_only_the_new_file(home: Path, other_key: MasterKey) -> None:
    write_key_file(home / NEW_KEY_FILE, other_key)
    assert load_keyring(home, environ={}) == Keyring(other_key)


def test_repr_of_keyring_shows_key_ids_only(key: MasterKey, other_key: MasterKey) -> None:
    text = repr(Keyring(key, (other_key,)))
    for one in (key, other_key):
        assert one.key_id in text
        assert one.encode() not in text


# --- rotation ------------------------------------------------------------------------


@pytest.fixture
def populated(home: Path, db_path: Path) -> MasterKey:
    """A key file and a vault with two entries sealed with it."""
    old = MasterKey.generate()
    write_key_file(home / KEY_FILE, old)
    with Vault(db_path, Keyring(old)) as vault:
        vault.put("stripe-live", "stripe", SECRET)
        vault.put("github", "github", OTHER_SECRET)
    return old


def assert_all_readable(home: Path, db_path: Path) -> Keyring:
    keyring = load_keyring(home, environ={})
    with Vault(db_path, keyring) as vault:
        assert vault.get("stripe-live")[1].reveal() == SECRET
        assert vault.get("github")[1].reveal() == OTHER_SECRET
    return keyring


def stored_key_ids(db_path: Path) -> set[str]:
    db = Database(db_path)
    ids = {row["key_id"] for row in db.table("vault_entries").rows}
    db.close()
    return ids


def test_rotate(home: Path, db_path: Path, populated: MasterKey) -> None:
    clock = FakeClock()
    with Vault(db_path, Keyring(populated), clock=clock) as vault:
        before = vault.list()
    old_id, new_id, count = rotate_key_file(home, db_path)
    assert (old_id, count) == (populated.key_id, 2)
    assert new_id != old_id
    assert not (home / NEW_KEY_FILE).exists()
    assert _mode(home / KEY_FILE) == 0o600
    keyring = assert_all_readable(home, db_path)
    assert keyring.key_ids == (new_id,)
    assert stored_key_ids(db_path) == {new_id}
    with Vault(db_path, keyring) as vault:
        after = vault.list()
    # Re-encryption is not an update: dates are kept, only the key changes.
    assert [(i.created, i.updated) for i in after] == [(i.created, i.updated) for i in before]
    with Vault(db_path, Keyring(populated)) as vault, pytest.raises(InvalidCiphertext):
        vault.get("stripe-live")


def test_rotate_an_empty_vault(home: Path, db_path: Path, key: MasterKey) -> None:
    write_key_file(home / KEY_FILE, key)
    old_id, new_id, count = rotate_key_file(home, db_path)
    assert (old_id, count) == (key.key_id, 0)
    assert load_keyring(home, environ={}).primary.key_id == new_id


def test_rotate_needs_a_key_file(home: Path, db_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="no master key file"):
        rotate_key_file(home, db_path)


def test_crash_after_new_key_written(home: Path, db_path: Path, populated: MasterKey) -> None:
    new = MasterKey.generate()
    write_key_file(home / NEW_KEY_FILE, new)  # step 1 done; crash before re-encrypting
    assert assert_all_readable(home, db_path).key_ids == (populated.key_id, new.key_id)
    assert stored_key_ids(db_path) == {populated.key_id}
    # Running the rotation again resumes with the key already on disk.
    assert rotate_key_file(home, db_path) == (populated.key_id, new.key_id, 2)
    assert assert_all_readable(home, db_path).key_ids == (new.key_id,)


def test_crash_after_reencrypt_before_rename(
    home: Path, db_path: Path, populated: MasterKey
) -> None:
    new = MasterKey.generate()
    write_key_file(home / NEW_KEY_FILE, new)
    with Vault(db_path, Keyring(populated, (new,))) as vault:
        assert vault.reencrypt_all(new) == 2  # step 2 done; crash before os.replace
    assert stored_key_ids(db_path) == {new.key_id}
    assert assert_all_readable(home, db_path).key_ids == (populated.key_id, new.key_id)
    # An entry written before the rotation is resumed is sealed with the old key...
    with Vault(db_path, load_keyring(home, environ={})) as vault:
        vault.put("late", "stripe", SECRET)
    assert stored_key_ids(db_path) == {new.key_id, populated.key_id}
    # ...and resuming re-encrypts it too.
    assert rotate_key_file(home, db_path) == (populated.key_id, new.key_id, 3)
    assert assert_all_readable(home, db_path).key_ids == (new.key_id,)
    assert stored_key_ids(db_path) == {new.key_id}


def test_crash_after_rename(home: Path, db_path: Path, populated: MasterKey) -> None:
    new = MasterKey.generate()
    write_key_file(home / NEW_KEY_FILE, new)
    with Vault(db_path, Keyring(populated, (new,))) as vault:
        vault.reencrypt_all(new)
    os.replace(home / NEW_KEY_FILE, home / KEY_FILE)  # step 3 done; directory not fsynced
    assert assert_all_readable(home, db_path).key_ids == (new.key_id,)


def test_reencrypt_all_is_one_transaction(
    db_path: Path, key: MasterKey, other_key: MasterKey
) -> None:
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("a-first", "stripe", SECRET)
        vault.put("b-broken", "stripe", OTHER_SECRET)
        vault.put("c-last", "stripe", SECRET)
    db = Database(db_path)
    db.execute("UPDATE vault_entries SET provider = 'github' WHERE name = 'b-broken'")
    db.close()
    with Vault(db_path, Keyring(key)) as vault:
        with pytest.raises(InvalidCiphertext) as info:
            vault.reencrypt_all(other_key)
        assert str(info.value) == opaque_message()
        assert "b-broken" in "".join(getattr(info.value, "__notes__", []))
        assert vault.keyring == Keyring(key)
    assert stored_key_ids(db_path) == {key.key_id}  # a-first was rolled back too


def test_failed_rotation_changes_nothing_on_disk(
    home: Path, db_path: Path, populated: MasterKey
) -> None:
    db = Database(db_path)
    db.execute("UPDATE vault_entries SET provider = 'gitlab' WHERE name = 'github'")
    db.close()
    with pytest.raises(InvalidCiphertext):
        rotate_key_file(home, db_path)
    assert read_key_file(home / KEY_FILE) == populated
    assert stored_key_ids(db_path) == {populated.key_id}
    with Vault(db_path, load_keyring(home, environ={})) as vault:
        assert vault.get("stripe-live")[1].reveal() == SECRET


def test_vault_seals_with_the_new_key_after_reencrypt(
    db_path: Path, key: MasterKey, other_key: MasterKey
) -> None:
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("stripe-live", "stripe", SECRET)
        vault.reencrypt_all(other_key)
        assert vault.keyring.key_ids == (other_key.key_id, key.key_id)
        assert vault.put("github", "github", OTHER_SECRET).key_id == other_key.key_id
    assert stored_key_ids(db_path) == {other_key.key_id}


# --- package -------------------------------------------------------------------------


def test_all_is_complete() -> None:
    public = {
        name
        for name in dir(vault_module)
        if not name.startswith("_") and not isinstance(getattr(vault_module, name), type(os))
    }
    assert set(vault_module.__all__) == public


def test_sqlite_errors_do_not_escape(db_path: Path, key: MasterKey) -> None:
    with Vault(db_path, Keyring(key)) as vault:
        vault.put("stripe-live", "stripe", SECRET)
        db = Database(db_path)
        db.execute("DROP TABLE vault_entries")
        db.close()
        for call in (vault.list, lambda: vault.get("stripe-live"), lambda: vault.remove("x")):
            with pytest.raises(StoreError, match=r"state\.db: no such table"):
                call()
