"""Throughput and latency through the broker against the same upstream hit directly.

Run by hand (not by the test suite):

    .venv/bin/python benchmarks/forward_overhead.py [--requests 2000] [--concurrency 1 32]

It starts the stand-in upstream, a real broker process on a fresh data
directory, and an aiohttp load generator in this process; every allowed call
through the broker is authenticated (bearer), decided, admitted (nonce, rate,
spend in SQLite), and audited (intent and outcome, synchronous=FULL) before it
is forwarded. Figures are ratios against the direct run measured in the same
process, on the same machine. (The fuller suite with wrk is issue 9's.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from _home import bench_home

from vertex_tools.demo.echo import EchoServer
from vertex_tools.local import LocalBroker

SECRET = "sk_test_bench0000000000000000000000"


async def load(
    url: str, headers: dict[str, str], total: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    with EchoServer(SECRET) as upstream:
        home, env, token = bench_home(upstream.url, SECRET, rate="100000/second")
        with LocalBroker(home.root, env=env, listen="tcp") as broker:
            print(f"{'run':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            for conc in args.concurrency:
                direct = asyncio.run(
                    load(
                        f"{upstream.url}/items/1",
                        {"Authorization": f"Bearer {SECRET}"},
                        args.requests,
                        conc,
                    )
                )
                brokered = asyncio.run(
                    load(
                        f"{broker.url}/proxy/echo/items/1",
                        {"Authorization": f"Bearer {token}"},
                        args.requests,
                        conc,
                    )
                )
                for name, (rps, lat) in (("direct", direct), ("through broker", brokered)):
                    lat.sort()
                    p50 = statistics.median(lat) * 1000
                    p99 = lat[int(len(lat) * 0.99) - 1] * 1000
                    print(f"{name + f' c={conc}':28} {rps:9.0f} {p50:8.2f} {p99:8.2f}")
                print(f"{'ratio c=' + str(conc):28} {brokered[0] / direct[0]:9.2f}")


if __name__ == "__main__":
    main()
