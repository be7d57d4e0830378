"""The CLI lines of the README, run as a user would: the real `vertex` command in a
fresh process, VERTEX_HOME pointing at an empty directory."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SECRET = "sk_test_cli51LkqPq2XbZ8nRt3Vw9Ys"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def vertex(tmp_path: Path) -> Run:
    home = tmp_path / "vhome"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    env["VERTEX_HOME"] = str(home)

    def run(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "vertex_tools", *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"vertex {' '.join(args)} -> {result.returncode}\n{result.stderr}")
        return result

    run.home = home  # type: ignore[attr-defined]
    return run


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_init_vault_token_audit_lifecycle(vertex: Run) -> None:
    home: Path = vertex.home  # type: ignore[attr-defined]
    out = vertex("init").stdout
    assert "policy.toml" in out and (home / "master.key").exists()
    assert oct((home / "master.key").stat().st_mode & 0o777) == "0o600"
    assert oct((home / "checkpoint.key").stat().st_mode & 0o777) == "0o600"
    assert "already initialised" in vertex("init").stdout  # idempotent, overwrites nothing

    assert "ok" in vertex("policy", "check").stdout

    vertex("vault", "put", "echo-key", "--provider", "http", stdin=SECRET + "\n")
    listed = json.loads(vertex("vault", "list", "--json").stdout)
    assert [(e["name"], e["provider"]) for e in listed] == [("echo-key", "http")]
    assert SECRET not in vertex("vault", "list").stdout

    issued = json.loads(vertex("token", "issue", "--grant", "echo-writer", "--json").stdout)
    assert issued["id"].startswith("tk_") and issued["token"].startswith("vt1.")
    tokens = json.loads(vertex("token", "list", "--json").stdout)
    assert tokens[0]["id"] == issued["id"] and tokens[0]["revoked"] is None
    assert set(tokens[0]) >= {"id", "grant", "created", "expires", "last_used", "revoked"}
    assert issued["token"] not in vertex("token", "list").stdout
    vertex("token", "revoke", issued["id"])
    assert json.loads(vertex("token", "list", "--json").stdout)[0]["revoked"] is not None

    verified = json.loads(vertex("audit", "verify", "--json").stdout)
    assert verified["ok"] is True and verified["entries"] >= 3
    tail = [
        json.loads(line)
        for line in vertex("audit", "tail", "-n", "3", "--json").stdout.splitlines()
    ]
    assert [t["data"]["action"] for t in tail] == ["vault_put", "token_issue", "token_revoke"]

    vertex("vault", "rotate-key")
    vertex("vault", "rm", "echo-key")
    assert json.loads(vertex("vault", "list", "--json").stdout) == []
    actions = [
        json.loads(line)["data"]["action"]
        for line in vertex("audit", "tail", "-n", "2", "--json").stdout.splitlines()
    ]
    assert actions == ["vault_rotate_key", "vault_rm"]

    data = all_bytes(home)
    assert SECRET.encode() not in data
    assert issued["token"].split(".")[2].encode() not in data


def test_vault_put_never_takes_the_secret_from_argv(vertex: Run) -> None:
    vertex("init")
    result = vertex("vault", "put", "echo-key", SECRET, "--provider", "http", check=False)
    assert result.returncode == 2
    assert SECRET not in result.stderr + result.stdout
    assert "stdin" in result.stderr
    empty = vertex("vault", "put", "echo-key", "--provider", "http", stdin="", check=False)
    assert empty.returncode == 3 and "no secret on stdin" in empty.stderr


def test_bad_secret_errors_do_not_echo_it(vertex: Run) -> None:
    vertex("init")
    bad = "sk_test_has\x07control"
    result = vertex("vault", "put", "k", "--provider", "http", stdin=bad, check=False)
    assert result.returncode == 3
    assert "sk_test_has" not in result.stderr


def test_commands_on_an_uninitialised_home_say_how_to_fix_it(vertex: Run) -> None:
    result = vertex("token", "list", check=False)
    assert result.returncode == 3
    assert "vertex init" in result.stderr


def test_policy_check_names_key_and_line(vertex: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = 1\n[upstreams.a]\nprovider = "http"\nbase_url = "https://api.example.com"\n'
        'secret = "a"\nextra = 1\n[grants.g]\nupstream = "a"\nallow = []\n'
    )
    result = vertex("policy", "check", str(bad), check=False)
    assert result.returncode == 1
    assert f"{bad}:6: upstreams.a.extra: unknown key" in result.stderr
    assert f"{bad}:9: grants.g.allow" in result.stderr
    as_json = json.loads(vertex("policy", "check", str(bad), "--json", check=False).stdout)
    assert as_json["valid"] is False and {p["line"] for p in as_json["problems"]} == {6, 9}


def test_token_ttl_is_capped_by_max_ttl(vertex: Run) -> None:
    vertex("init")
    result = vertex("token", "issue", "--grant", "echo-writer", "--ttl", "48h", check=False)
    assert result.returncode == 3 and "max_ttl" in result.stderr
    unknown = vertex("token", "issue", "--grant", "nope", check=False)
    assert unknown.returncode == 3 and "echo-writer" in unknown.stderr


def _tamper(home: Path, sql: str) -> None:
    conn = sqlite3.connect(home / "audit.db")
    # The append-only triggers are a seatbelt, not a defence: whoever can write the
    # file can drop them, which is exactly what verify must catch.
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    conn.executescript(sql)
    conn.commit()
    conn.close()


def _seed(vertex: Run, n: int = 4) -> None:
    vertex("init")
    for i in range(n):
        vertex("vault", "put", f"k{i}", "--provider", "http", stdin=f"sk_test_value{i}xxxxxxxx")


@pytest.mark.parametrize(
    ("sql", "seq"),
    [
        (
            "UPDATE audit_log SET entry = "
            "CAST(replace(CAST(entry AS TEXT), 'k2', 'k9') AS BLOB) WHERE seq = 3",
            3,
        ),
        ("DELETE FROM audit_log WHERE seq = 2", 2),
        ("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 4", 4),
        # an entry inserted in the middle: everything after it is renumbered
        (
            "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3; "
            "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 103; "
            "INSERT INTO audit_log (seq, prev_hash, hash, entry) "
            "SELECT 3, prev_hash, hash, entry FROM audit_log WHERE seq = 2",
            3,
        ),
        # two entries swapped
        (
            "UPDATE audit_log SET seq = 100 WHERE seq = 2; "
            "UPDATE audit_log SET seq = 2 WHERE seq = 3; "
            "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            2,
        ),
    ],
)
def test_verify_names_the_first_bad_entry(vertex: Run, sql: str, seq: int) -> None:
    _seed(vertex)
    assert vertex("audit", "verify").returncode == 0
    _tamper(vertex.home, sql)  # type: ignore[attr-defined]
    result = vertex("audit", "verify", check=False)
    assert result.returncode == 1
    assert f"seq {seq}" in result.stderr
    as_json = json.loads(vertex("audit", "verify", "--json", check=False).stdout)
    assert as_json["ok"] is False and as_json["seq"] == seq


def test_checkpoint_catches_truncation(vertex: Run, tmp_path: Path) -> None:
    _seed(vertex)
    cp = tmp_path / "cp.json"
    vertex("audit", "checkpoint", "--out", str(cp))
    assert vertex("audit", "verify", "--checkpoint", str(cp)).returncode == 0
    home: Path = vertex.home  # type: ignore[attr-defined]
    _tamper(home, "DELETE FROM audit_log WHERE seq >= 4")
    assert vertex("audit", "verify").returncode == 0  # a bare chain cannot see this
    result = vertex("audit", "verify", "--checkpoint", str(cp), check=False)
    assert result.returncode == 1 and "checkpoint" in result.stderr


def test_checkpoint_catches_a_rewritten_chain(vertex: Run, tmp_path: Path) -> None:
    """Whoever holds the database can rewrite every entry and recompute every hash;
    a bare chain then verifies, a checkpoint kept off the host does not."""
    _seed(vertex)
    cp = tmp_path / "cp.json"
    vertex("audit", "checkpoint", "--out", str(cp))
    home: Path = vertex.home  # type: ignore[attr-defined]
    from vertex_tools.audit import AuditLog

    with AuditLog(home / "audit.db") as log:
        entries = [(r.kind, dict(r.data)) for r in log.records()]
        log_id = log.log_id()
    (home / "audit.db").unlink()
    for suffix in ("-wal", "-shm"):
        (home / f"audit.db{suffix}").unlink(missing_ok=True)
    with AuditLog(home / "audit.db") as forged:
        for kind, data in entries:
            if data.get("name") == "k1":
                data["name"] = "k1-forged"
            forged.append(kind, data)
    conn = sqlite3.connect(home / "audit.db")  # and the forger keeps the log's identity
    conn.execute("UPDATE meta SET value = ? WHERE key = 'log_id'", (log_id,))
    conn.commit()
    conn.close()
    assert vertex("audit", "verify").returncode == 0
    result = vertex("audit", "verify", "--checkpoint", str(cp), check=False)
    assert result.returncode == 1
    assert "rewritten" in result.stderr or "head_hash" in result.stderr, result.stderr


def test_help_and_version(vertex: Run) -> None:
    assert "Exit codes" in vertex("--help").stdout
    for sub in ("vault", "token", "audit", "policy", "serve", "init", "demo"):
        assert vertex(sub, "--help").returncode == 0
    assert "0.1.0" in vertex("--version").stdout


def test_master_key_from_the_environment(tmp_path: Path) -> None:
    from vertex_tools.vault import MasterKey

    key = MasterKey.generate()
    home = tmp_path / "envhome"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    env.update(VERTEX_HOME=str(home), VERTEX_MASTER_KEY=key.encode())

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vertex_tools", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    assert run("init").returncode == 0
    assert not (home / "master.key").exists()
    assert run("vault", "put", "k", "--provider", "http", stdin=SECRET).returncode == 0
    refused = run("vault", "rotate-key")
    assert refused.returncode == 3 and "--new-key-stdin" in refused.stderr
    new = MasterKey.generate()
    rotated = run("vault", "rotate-key", "--new-key-stdin", stdin=new.encode() + "\n")
    assert rotated.returncode == 0, rotated.stderr
    assert key.encode() not in rotated.stdout + rotated.stderr
    env["VERTEX_MASTER_KEY"] = new.encode()
    listed = run("vault", "list", "--json")
    assert json.loads(listed.stdout)[0]["key_id"] == new.key_id
    env["VERTEX_MASTER_KEY"] = "not-a-key"
    bad = run("vault", "put", "k2", "--provider", "http", stdin=SECRET)
    assert bad.returncode == 3 and "VERTEX_MASTER_KEY" in bad.stderr


def test_serve_listens_on_loopback_unless_told_otherwise(vertex: Run) -> None:
    vertex("init")
    result = vertex("serve", "--listen", "0.0.0.0:0", check=False)
    assert result.returncode == 3
    assert "loopback" in result.stderr and "--allow-remote" in result.stderr
    both = vertex("serve", "--listen", "127.0.0.1:0", "--uds", "x.sock", check=False)
    assert both.returncode == 2 and "not both" in both.stderr


def test_serve_refuses_an_invalid_policy_naming_the_line(vertex: Run, tmp_path: Path) -> None:
    vertex("init")
    bad = tmp_path / "p.toml"
    bad.write_text("version = 1\n[upstreams.a]\nprovider = 1\n")
    result = vertex("serve", "--policy", str(bad), "--listen", "127.0.0.1:0", check=False)
    assert result.returncode == 1
    assert f"{bad}:3: upstreams.a.provider" in result.stderr
