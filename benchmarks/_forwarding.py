"""Issue 9, items 1 and 5: forwarding under wrk, and the broker process itself.

Three servers, each its own process, all on this machine:

    upstream   benchmarks/_servers.py upstream (GET /items/{id}, checks the key)
    bare       benchmarks/_servers.py proxy (aiohttp server + one ClientSession)
    broker     ``vertex serve`` on a fresh data directory (the demo policy's
               echo-writer grant: bearer, GET /items/* without spend, a rate
               limit set high enough never to refuse)

wrk hits each at 1 and 32 connections (``--latency`` for the median). The broker
is measured twice: with the token as a bearer header (what official SDKs send; no
nonce or signature) and with requests signed the way ``BrokerClient`` signs them
(``Authorization: Vertex-v1 ...``: an Ed25519 signature checked and a nonce
recorded per request). wrk cannot sign, so the signed requests are made in advance,
one per request with a nonce of its own, and a Lua script (``_signed.lua``) sends
each once. Every brokered call is authenticated, decided, admitted (rate, and the
nonce when signed, in SQLite) and audited (intent and outcome, synchronous=FULL)
before and after it is forwarded.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _home import bench_home
from _row import Row

from vertex_tools.local import LocalBroker
from vertex_tools.signing import sign_request
from vertex_tools.tokens import derive_signing_key, parse_token

KEY = "sk_test_bench0000000000000000000000"
STARTS = 7  # broker starts measured; the table gives their median and range
SIGNED_TARGET = "/proxy/echo/items/1"
HERE = Path(__file__).resolve().parent
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(host: str, port: int, path: str, headers: dict[str, str], timeout: float) -> float:
    """Poll until ``GET path`` answers 200; return when it did (time.perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1)
            conn.request("GET", path, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"nothing answered 200 on {host}:{port}{path} within {timeout} s")


def spawn_server(role: str, port: int, upstream: str = "") -> subprocess.Popen[bytes]:
    args = [sys.executable, str(HERE / "_servers.py"), role, "--port", str(port), "--key", KEY]
    if upstream:
        args += ["--upstream", upstream]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match[1]) * _UNITS[match[2]]


def wrk_threads(connections: int) -> int:
    return 1 if connections == 1 else 2  # two cores


def signed_requests(token: str, target: str, count: int, threads: int, into: Path) -> Path:
    """Write ``count`` signed ``GET target`` Authorization values, each with its own
    nonce, split over one file per wrk thread (``into/signed.<n>``); return ``into``."""
    parsed = parse_token(token)
    key = derive_signing_key(parsed.secret)
    now = int(time.time())
    into.mkdir(parents=True, exist_ok=True)
    per_thread = -(-count // threads)
    for n in range(threads):
        values = (
            sign_request(
                key,
                token_id=parsed.token_id,
                method="GET",
                target=target,
                body=b"",
                headers=[],
                timestamp=now,
            )
            for _ in range(per_thread)
        )
        (into / f"signed.{n}").write_text("\n".join(values) + "\n", encoding="ascii")
    return into


def wrk(
    url: str, connections: int, seconds: int, token: str, signed: Path | None = None
) -> WrkResult:
    """Run wrk; with ``signed`` (a directory from :func:`signed_requests`) each request
    carries one of the prepared signatures instead of the bearer token."""
    auth = (
        ["-s", str(HERE / "_signed.lua"), "--", str(signed)]
        if signed is not None
        else ["-H", f"Authorization: Bearer {token}"]
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{wrk_threads(connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            url,
            *auth,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match[1])
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return WrkResult(rps, p50, p99, total, errors)


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def startup(home_root: Path, env: dict[str, str], token: str) -> tuple[float, float]:
    """Seconds from spawning ``vertex serve`` to its first /healthz 200 and first proxied 200."""
    port = free_port()
    args = [sys.executable, "-m", "vertex_tools", "--home", str(home_root), "serve"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*args, "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = wait_http("127.0.0.1", port, "/healthz", {}, 20) - started
        proxied = (
            wait_http(
                "127.0.0.1", port, "/proxy/echo/items/1", {"Authorization": f"Bearer {token}"}, 20
            )
            - started
        )
    finally:
        proc.terminate()
        proc.wait(10)
    return health, proxied


def langchain_in(pid: int) -> str:
    """Whether a running process mapped any langchain file, and the tests' import check."""
    mapped = "langchain" in Path(f"/proc/{pid}/maps").read_text()
    code = (
        "import sys, vertex_tools, vertex_tools.broker.server, vertex_tools.cli; "
        "from vertex_tools.providers import CATALOG_PROVIDERS, get_catalog; "
        "[get_catalog(p) for p in CATALOG_PROVIDERS if __import__('importlib').util.find_spec("
        "f'vertex_tools.providers.{p}.catalog')]; "
        "print(len([m for m in sys.modules if m.startswith('langchain')]))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"maps: {'yes' if mapped else 'no'}; modules: {imported}"


def run(seconds: int) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    up_port, bare_port = free_port(), free_port()
    upstream = spawn_server("upstream", up_port)
    bare = spawn_server("proxy", bare_port, f"http://127.0.0.1:{up_port}")
    try:
        wait_http("127.0.0.1", up_port, "/items/1", {"Authorization": f"Bearer {KEY}"}, 20)
        wait_http("127.0.0.1", bare_port, "/items/1", {}, 20)
        home, env, token = bench_home(f"http://127.0.0.1:{up_port}", KEY, rate="1000000/second")
        # One start is at the mercy of whatever else this shared machine does at that
        # moment (0.39-0.58 s seen): the median of several, with their range.
        starts = [startup(home.root, env, token) for _ in range(STARTS)]
        with LocalBroker(home.root, env=env, listen="tcp") as broker:
            assert broker.url is not None
            assert broker.pid is not None
            targets = {
                "upstream": (f"http://127.0.0.1:{up_port}/items/1", KEY),
                "bare": (f"http://127.0.0.1:{bare_port}/items/1", "unused"),
                "broker": (f"{broker.url}/proxy/echo/items/1", token),
            }
            results: dict[tuple[str, int], WrkResult] = {}
            scratch = Path(tempfile.mkdtemp(prefix="vertex-bench-signed-"))
            for conns in (1, 32):
                for name, (url, bearer) in targets.items():
                    wrk(url, conns, 1, bearer)  # warm up connections, caches, the JIT-less VM
                    results[name, conns] = wrk(url, conns, seconds, bearer)
                # Signed: enough prepared requests for twice the bearer rate, so none is
                # sent twice (a reused nonce would be refused and counted as an error).
                url = targets["broker"][0]
                need = int(results["broker", conns].rps * (seconds + 1) * 2) + 2000
                threads = wrk_threads(conns)
                warm = signed_requests(
                    token, SIGNED_TARGET, need // seconds, threads, scratch / f"w{conns}"
                )
                wrk(url, conns, 1, token, warm)
                prepared = signed_requests(
                    token, SIGNED_TARGET, need, threads, scratch / f"m{conns}"
                )
                results["signed", conns] = wrk(url, conns, seconds, token, prepared)
            shutil.rmtree(scratch, ignore_errors=True)
            rss_mb = vm_kb(broker.pid, "VmRSS") / 1024
            hwm_mb = vm_kb(broker.pid, "VmHWM") / 1024
            langchain = langchain_in(broker.pid)
            audit_rows = _audit_count(home.audit_db)
    finally:
        for proc in (bare, upstream):
            proc.terminate()
            proc.wait(10)

    for (name, conns), r in results.items():
        notes.append(
            f"wrk {name:8} c={conns:<2}: {r.rps:9.0f} req/s, p50 {r.p50_ms:6.2f} ms, "
            f"p99 {r.p99_ms:6.2f} ms, {r.requests} requests, {r.errors} errors"
        )
    r32, r1 = results["bare", 32], results["bare", 1]
    for mode, label in (("signed", "signed (agents)"), ("broker", "bearer (SDKs)")):
        b32, b1 = results[mode, 32], results[mode, 1]
        rows.append(
            Row(
                f"forward c=32 throughput, {label}",
                f"{b32.rps:,.0f} req/s",
                f"bare {r32.rps:,.0f}",
                f"{b32.rps / r32.rps:.2f}x",
                ">= 0.5x bare",
                b32.rps >= 0.5 * r32.rps and b32.errors == 0,
            )
        )
        added = b1.p50_ms - r1.p50_ms
        rows.append(
            Row(
                f"forward c=1 added median latency, {label}",
                f"{added:.2f} ms (p50 {b1.p50_ms:.2f})",
                f"bare p50 {r1.p50_ms:.2f} ms",
                f"{b1.p50_ms / r1.p50_ms:.2f}x",
                "<= 1 ms",
                added <= 1.0 and b1.errors == 0,
            )
        )
        rows.append(
            Row(
                f"forward c=1 throughput, {label}",
                f"{b1.rps:,.0f} req/s",
                f"bare {r1.rps:,.0f}",
                f"{b1.rps / r1.rps:.2f}x",
            )
        )
        rows.append(
            Row(
                f"forward c=32 added median latency, {label}",
                f"{b32.p50_ms - r32.p50_ms:.2f} ms (p50 {b32.p50_ms:.2f})",
                f"bare p50 {r32.p50_ms:.2f} ms",
                f"{b32.p50_ms / r32.p50_ms:.2f}x",
            )
        )
    for what, times in (("/healthz", [h for h, _ in starts]), ("proxied", [f for _, f in starts])):
        median = statistics.median(times)
        rows.append(
            Row(
                f"broker start to first {what} 200",
                f"{median:.2f} s ({min(times):.2f}-{max(times):.2f})",
                target="<= 0.5 s",
                met=median <= 0.5,
            )
        )
    rows.append(
        Row(
            "broker RSS after the wrk runs",
            f"{rss_mb:.0f} MB (peak {hwm_mb:.0f})",
            target="<= 150 MB",
            met=hwm_mb <= 150,
        )
    )
    no_langchain = langchain.endswith("modules: 0") and "maps: no" in langchain
    rows.append(Row("langchain in the broker", langchain, target="none", met=no_langchain))
    notes.append(f"broker audit log after the runs: {audit_rows:,} entries")
    return rows, notes


def _audit_count(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        count: int = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    return count


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)[0]:
        print(row)
