"""Issue 9, items 2-4: audit append, group commit, verify, a policy decision, a taint check.

All in this process, each against a reference measured right before or
interleaved with it, on the same disk (the system temporary directory).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from _row import Row

from vertex_tools.audit import AsyncAuditWriter, AuditLog, EntryKind, verify_log
from vertex_tools.policy import parse_policy
from vertex_tools.policy.engine import RequestFacts, decide

# An intent entry shaped like the broker's (same keys and sizes, made-up values).
INTENT = {
    "request_id": "req_0123456789abcdef",
    "grant": "echo-writer",
    "token_id": "tok_0123456789abcdef01",
    "upstream": "echo",
    "method": "GET",
    "path": "/items/1",
    "operation": "GET /items/*",
    "risk": "read",
    "decision": "allow",
    "reason": "allowed",
    "rule": "grants.echo-writer.allow[0]",
}


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vertex-bench-audit-"))


def raw_sqlite_commits(path: Path, n: int) -> float:
    """Single-row INSERT + COMMIT per row, WAL, synchronous=FULL: commits per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, prev BLOB, hash BLOB, entry BLOB)")
    entry = json.dumps(INTENT).encode()
    started = time.perf_counter()
    for i in range(1, n + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (i, b"p" * 32, b"h" * 32, entry))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    conn.close()
    return rate


def single_appends(path: Path, n: int) -> float:
    with AuditLog(path) as log:
        log.append(EntryKind.INTENT, INTENT)  # creates the schema, untimed
        started = time.perf_counter()
        for _ in range(n):
            log.append(EntryKind.INTENT, INTENT)
        return n / (time.perf_counter() - started)


async def _group(path: Path, total: int, concurrency: int) -> tuple[float, int]:
    writer = AsyncAuditWriter(path)
    writer.start()
    per_task = total // concurrency

    async def appender() -> None:
        for _ in range(per_task):
            await writer.append(EntryKind.INTENT, INTENT)

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await writer.aclose()
    return per_task * concurrency / elapsed, writer.committed_batches


def group_commit(path: Path, total: int, concurrency: int) -> tuple[float, int]:
    AuditLog(path).close()  # the schema, untimed
    return asyncio.run(_group(path, total, concurrency))


def audit_rows(quick: bool) -> tuple[list[Row], list[str]]:
    n, rounds = (300, 3) if quick else (2000, 5)
    raw_rates, log_rates = [], []
    for _ in range(rounds):  # interleaved: disk and load drift hit both alike
        raw_rates.append(raw_sqlite_commits(_tmpdir() / "raw.db", n // rounds))
        log_rates.append(single_appends(_tmpdir() / "audit.db", n // rounds))
    raw, log = statistics.median(raw_rates), statistics.median(log_rates)
    total = 3200 if quick else 32000
    group, batches = group_commit(_tmpdir() / "group.db", total, 32)
    rows = [
        Row(
            "audit single append (entries/s)",
            f"{log:,.0f}",
            f"raw sqlite3 {raw:,.0f}",
            f"{log / raw:.2f}x",
            ">= 0.7x raw",
            log >= 0.7 * raw,
        ),
        Row(
            "audit group commit, 32 appenders (entries/s)",
            f"{group:,.0f}",
            f"raw sqlite3 {raw:,.0f}",
            f"{group / raw:.2f}x",
            ">= 10,000/s",
            group >= 10_000,
        ),
    ]
    notes = [
        f"audit single append: {n // rounds} rows x {rounds} rounds each; entries/s raw "
        f"{', '.join(f'{r:,.0f}' for r in raw_rates)}; log "
        f"{', '.join(f'{r:,.0f}' for r in log_rates)}",
        f"group commit: {total:,} entries from 32 tasks in {batches:,} transactions "
        f"({total / max(batches, 1):.1f} per commit)",
    ]
    return rows, notes


def _build_log(path: Path, n: int, batch: int = 10_000) -> float:
    started = time.perf_counter()
    with AuditLog(path) as log:
        done = 0
        while done < n:
            size = min(batch, n - done)
            log.append_many([(EntryKind.INTENT, INTENT)] * size)
            done += size
    return n / (time.perf_counter() - started)


def verify_rows(quick: bool) -> tuple[list[Row], list[str]]:
    n = 100_000 if quick else 1_000_000
    path = _tmpdir() / "verify.db"
    build_rate = _build_log(path, n)
    # Reference: reading the same rows with a plain cursor, no decoding or hashing.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    for _ in conn.execute("SELECT seq, prev_hash, hash, entry FROM audit_log ORDER BY seq"):
        pass
    scan_rate = n / (time.perf_counter() - started)
    conn.close()
    with AuditLog(path, read_only=True) as log:
        started = time.perf_counter()
        report = verify_log(log)
        elapsed = time.perf_counter() - started
    rate = n / elapsed
    cli = Path(__file__).resolve().parent.parent / "vertex_tools" / "cli" / "audit.py"
    has_bar = "click.progressbar" in cli.read_text()
    rows = [
        Row(
            f"audit verify, {n:,} entries (entries/s)",
            f"{rate:,.0f} ({elapsed:.1f} s)",
            f"plain scan {scan_rate:,.0f}",
            f"{rate / scan_rate:.2f}x",
            ">= 150,000/s",
            rate >= 150_000,
        ),
        Row(
            "`vertex audit verify` progress bar",
            "yes" if has_bar else "no",
            target="yes",
            met=has_bar,
        ),
    ]
    notes = [
        f"verify: built {n:,} entries at {build_rate:,.0f}/s (append_many, 10,000 a "
        f"commit); verify_log reported {report.entries:,} entries"
    ]
    return rows, notes


POLICY = """\
version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]

[upstreams.stripe]
provider = "stripe"
base_url = "https://api.stripe.com"
secret = "stripe-test"

[upstreams.echo]
provider = "http"
base_url = "http://127.0.0.1:9000"
secret = "echo-key"
inject = { header = "Authorization", format = "Bearer {secret}" }

[grants.support-agent]
upstream = "stripe"
operations = ["customers.list", "customers.retrieve", "customers.update", "refunds.create",
              "payment_intents.confirm"]
spend = { currency = "usd", per_call = 5000, per_day = 20000 }

[grants.echo-writer]
upstream = "echo"
allow = [ { method = "GET", path = "/items/*" }, { method = "POST", path = "/items" } ]
rate = "5/second"
spend = { currency = "usd", per_call = 5000, per_day = 20000, amount_field = "amount" }
"""


def _median_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def policy_rows(quick: bool) -> tuple[list[Row], list[str]]:
    policy = parse_policy(POLICY.encode()).policy
    body = urlencode({"charge": "ch_3Nabc0123456789", "amount": "1250", "reason": "duplicate"})
    refund = RequestFacts(
        upstream="stripe",
        method="POST",
        path="/v1/refunds",
        query="",
        content_type="application/x-www-form-urlencoded",
        body=body.encode(),
    )
    post = RequestFacts(
        upstream="echo",
        method="POST",
        path="/items",
        query="",
        content_type="application/json",
        body=json.dumps({"name": "new item", "amount": 1250}).encode(),
    )
    for facts, grant in ((refund, "support-agent"), (post, "echo-writer")):
        verdict = decide(policy, grant, facts)
        assert verdict.decision.allowed, verdict.decision
    n = 20_000 if quick else 200_000
    refund_us = _median_us(lambda: decide(policy, "support-agent", refund), n)
    post_us = _median_us(lambda: decide(policy, "echo-writer", post), n)
    raw = post.body
    loads_us = _median_us(lambda: json.loads(raw), n)
    return [
        Row(
            "policy decide(), Stripe refund (median)",
            f"{refund_us:.1f} us",
            f"json.loads(body) {loads_us:.2f} us",
            f"{refund_us / loads_us:.1f}x",
            "<= 20 us",
            refund_us <= 20,
        ),
        Row(
            "policy decide(), http POST rule (median)",
            f"{post_us:.1f} us",
            f"json.loads(body) {loads_us:.2f} us",
            f"{post_us / loads_us:.1f}x",
            "<= 20 us",
            post_us <= 20,
        ),
    ], [f"policy: {n:,} calls per measurement"]


def taint_rows(quick: bool) -> tuple[list[Row], list[str]]:
    import taint_check

    from vertex_tools.taint import normalise

    ledger, blob, _ = taint_check.build_ledger(1.0)
    arguments = {
        "amount": 125_000,
        "recipient": "alice@customer.example",
        "url": "https://attacker.example/other",
        "account": "ch_3Trusted0001",
        "memo": "duplicate charge refunded as agreed with the customer today",
    }
    control = list(arguments)
    ledger.label(arguments, control)  # builds the blobs once, untimed
    absent = normalise("zq9 absent value xk7")
    calls = 200 if quick else 2000
    label_ms: list[float] = []
    find_ms: list[float] = []
    for _ in range(10):
        label_ms += taint_check.timed(lambda: ledger.label(arguments, control), calls // 10)
        find_ms += taint_check.timed(lambda: blob.find(absent), calls // 10)
    label, find = statistics.median(label_ms), statistics.median(find_ms)
    return [
        Row(
            "taint label(), 5 args vs 1 MB ledger (median)",
            f"{label:.3f} ms",
            f"str.find {find:.3f} ms",
            f"{label / find:.1f}x",
            "<= 1 ms",
            label <= 1.0,
        ),
    ], [f"taint: {len(label_ms)} calls (benchmarks/taint_check.py's ledger and call)"]
