"""Where the broker's CPU goes per forwarded call, thread by thread, against two
pass-throughs measured in the same run. Run by hand (tests never assert timings):

    .venv/bin/python benchmarks/cpu_per_call.py [--seconds 10] [--connections 32]

wrk drives, in turn, at the same connection count:

    bare     benchmarks/_servers.py proxy  (aiohttp server + aiohttp client)
    asgi     benchmarks/_servers.py asgi   (uvicorn + httptools + uvloop + ASGI +
             aiohttp client: the broker's own stack with none of its work)
    broker   ``vertex serve`` with the demo's echo-writer grant, bearer token

and this script reads each process's CPU time per thread from /proc before and
after, divided by the requests wrk completed. ``asgi`` against ``bare`` says what
the framework costs; ``broker`` against ``asgi`` what the broker's own work costs
(authentication, policy, admission, audit, scrubbing, taint memory) and on which
thread (the event loop, the database thread, the audit writer).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _forwarding import KEY, free_port, spawn_server, wait_http, wrk
from _home import bench_home

from vertex_tools.local import LocalBroker

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) per thread of ``pid``. The main thread runs the
    event loop; Python does not name the others for the OS, so they go by id (in the
    broker: the database thread and the audit writer, plus idle helpers)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        name = "main thread (event loop)" if int(tid) == pid else f"thread {tid}"
        out[name] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def measure(name: str, pid: int, url: str, token: str, seconds: int, conns: int) -> None:
    wrk(url, conns, 1, token)  # warm up
    before = thread_cpu(pid)
    result = wrk(url, conns, seconds, token)
    after = thread_cpu(pid)
    per = {k: (v - before.get(k, 0.0)) / result.requests * 1e6 for k, v in after.items()}
    total = sum(per.values())
    print(
        f"{name:7} {result.rps:8,.0f} req/s  {total:6.1f} us CPU per call "
        f"({result.requests:,} calls, {result.errors} errors)"
    )
    for thread, us in sorted(per.items(), key=lambda item: -item[1]):
        if us >= 1.0:
            print(f"          {us:6.1f} us  {thread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    up, bare_port, asgi_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up}"
    servers = [spawn_server("upstream", up)]
    try:
        wait_http("127.0.0.1", up, "/items/1", {"Authorization": f"Bearer {KEY}"}, 20)
        for role, port in (("proxy", bare_port), ("asgi", asgi_port)):
            servers.append(spawn_server(role, port, upstream_url))
            wait_http("127.0.0.1", port, "/items/1", {}, 20)
        references = (("bare", bare_port), ("asgi", asgi_port))
        for (name, port), proc in zip(references, servers[1:], strict=True):
            url = f"http://127.0.0.1:{port}/items/1"
            measure(name, proc.pid, url, "unused", args.seconds, args.connections)
        home, env, token = bench_home(upstream_url, KEY, rate="1000000/second")
        with LocalBroker(home.root, env=env, listen="tcp") as broker:
            assert broker.url is not None
            assert broker.pid is not None
            url = f"{broker.url}/proxy/echo/items/1"
            measure("broker", broker.pid, url, token, args.seconds, args.connections)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
