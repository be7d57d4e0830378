"""Do bearer token checks take the same time whether the token is nearly right or not?

Run by hand (not by the test suite; tests never assert timings):

    .venv/bin/python benchmarks/token_timing.py [--requests 400] [--calls 20000]

Three kinds of wrong bearer token, interleaved round-robin so drift hits all alike:

    unknown-id       a token id the store has never seen (a random secret)
    last-char        the real token id, its secret with the last character changed
                     (to one that decodes to different bytes: the last base64url
                     character carries 4 data bits and 2 ignored padding bits)
    other-secret     the real token id, a completely different secret

Two measurements:

1. in process: ``vertex_tools.broker.auth.authenticate`` with a real SQLite store
   lookup, the token check alone (microseconds); the valid token is shown too;
2. end to end: ``GET /proxy/echo/items/1`` with ``Authorization: Bearer ...``
   against a real broker process over one keep-alive loopback connection
   (every refusal is audited, so fsync noise dominates; milliseconds).

It prints the median, p10 and p90 of each kind and the ratio of each median to
the smallest; equal work shows as ratios near 1.00.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import statistics
import time
from collections.abc import Callable

import httpx
from _home import bench_home

from vertex_tools.broker.auth import authenticate
from vertex_tools.demo.echo import EchoServer
from vertex_tools.home import Home
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy
from vertex_tools.store import SqliteStore
from vertex_tools.tokens import mint_token, parse_token

SECRET = "sk_test_bench0000000000000000000000"
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def wrong_tokens(token: str) -> dict[str, str]:
    """The three near-miss and far-miss variants of ``token``."""
    prefix, token_id, secret_text = token.split(".")
    last = _B64URL.index(secret_text[-1])
    changed = secret_text[:-1] + _B64URL[last ^ 0b100000]  # flips a data bit, not padding
    assert parse_token(f"{prefix}.{token_id}.{changed}").secret != parse_token(token).secret
    other = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    unknown = mint_token("echo-writer", now=time.time(), ttl=3600).token
    return {
        "unknown-id": unknown,
        "last-char": f"{prefix}.{token_id}.{changed}",
        "other-secret": f"{prefix}.{token_id}.{other}",
    }


def report(title: str, unit: str, scale: float, samples: dict[str, list[float]]) -> None:
    print(title)
    print(f"  {'kind':14} {'n':>6} {'median':>10} {'p10':>10} {'p90':>10} {'ratio':>7}  ({unit})")
    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    floor = min(medians.values())
    for kind, values in samples.items():
        ordered = sorted(values)
        p10 = ordered[len(ordered) // 10] * scale
        p90 = ordered[(len(ordered) * 9) // 10] * scale
        print(
            f"  {kind:14} {len(values):6d} {medians[kind] * scale:10.2f} {p10:10.2f} "
            f"{p90:10.2f} {medians[kind] / floor:7.2f}"
        )


def interleaved(kinds: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    for call in kinds.values():  # warm up
        for _ in range(20):
            call()
    for _ in range(rounds):
        for kind, call in kinds.items():
            started = time.perf_counter()
            call()
            samples[kind].append(time.perf_counter() - started)
    return samples


def in_process(home: Home, tokens: dict[str, str], calls: int) -> dict[str, list[float]]:
    policy = load_policy(home.policy).policy
    store = SqliteStore(home.state_db)

    def check(token: str, expect_ok: bool) -> Callable[[], None]:
        header = f"Bearer {token}"

        def call() -> None:
            result = authenticate(
                policy=policy,
                lookup=store.get_token,
                method="GET",
                target="/proxy/echo/items/1",
                headers={"authorization": header},
                all_headers=[("authorization", header)],
                body=b"",
                now=time.time(),
            )
            assert (result.record is not None) is expect_ok, result.decision

        return call

    try:
        return interleaved(
            {kind: check(token, kind == "valid") for kind, token in tokens.items()}, calls
        )
    finally:
        store.close()


def end_to_end(url: str, tokens: dict[str, str], requests: int) -> dict[str, list[float]]:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:

        def send(token: str) -> Callable[[], None]:
            headers = {"Authorization": f"Bearer {token}"}

            def call() -> None:
                response = client.get("/proxy/echo/items/1", headers=headers)
                assert response.status_code == 401, response.status_code

            return call

        return interleaved({kind: send(token) for kind, token in tokens.items()}, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="per kind, end to end")
    parser.add_argument("--calls", type=int, default=20000, help="per kind, in process")
    args = parser.parse_args()
    with EchoServer(SECRET) as upstream:
        home, env, token = bench_home(upstream.url, SECRET)
        wrong = wrong_tokens(token)
        report(
            "in process: authenticate() with a SQLite token lookup",
            "us",
            1e6,
            in_process(home, {**wrong, "valid": token}, args.calls),
        )
        with LocalBroker(home.root, env=env, listen="tcp") as broker:
            assert broker.url is not None
            report(
                "end to end: bearer GET through a broker process (each refusal audited)",
                "ms",
                1e3,
                end_to_end(broker.url, wrong, args.requests),
            )
        assert not upstream.received, "a wrong token was forwarded"


if __name__ == "__main__":
    main()
