"""Issue 9's benchmarks in one command: one table of measured, reference, ratio, target.

    .venv/bin/python benchmarks/run_all.py [--quick] [--write] [--only NAME ...]

Every figure is held against a reference measured in the same run on the same
machine (the bare proxy, raw sqlite3 commits, a plain scan, json.loads,
str.find). ``--quick`` uses small sizes (wrk 3 s, verify 100,000 entries);
the default is the full sizes (wrk 10 s, verify 1,000,000). ``--write``
rewrites benchmarks/RESULTS.md with the table, the notes and the machine.
It measures; it exits 0 whether or not the targets are met. Tests never
assert timings.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import _forwarding
import _inprocess
from _row import Row

HERE = Path(__file__).resolve().parent
READING = "## Reading"  # this heading and what follows it are kept by --write
HEADER = ("benchmark", "measured", "reference (same run)", "ratio", "target", "met")


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return [
        f"CPU: {model}, {os.cpu_count()} logical cores",
        f"memory: {mem_kb / 1024 / 1024:.1f} GiB",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
    ]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(rows: list[Row]) -> list[str]:
    cells = [HEADER] + [
        (r.benchmark, r.measured, r.reference, r.ratio, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + " |"
        for cell in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


SUITES: dict[str, Callable[[bool], tuple[list[Row], list[str]]]] = {
    "forwarding": lambda quick: _forwarding.run(3 if quick else 10),
    "audit": _inprocess.audit_rows,
    "verify": _inprocess.verify_rows,
    "policy": _inprocess.policy_rows,
    "taint": _inprocess.taint_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/RESULTS.md")
    parser.add_argument("--only", nargs="+", choices=list(SUITES), default=list(SUITES))
    args = parser.parse_args()
    if "forwarding" in args.only and shutil.which("wrk") is None:
        parser.error(
            "the forwarding benchmark needs wrk (a load generator): install it "
            "(Debian: apt-get install wrk), or leave it out: --only audit verify policy taint"
        )

    started = datetime.datetime.now(datetime.UTC)
    load_before = loadavg()
    rows: list[Row] = []
    notes: list[str] = []
    for name in args.only:
        print(f"running {name}...", file=sys.stderr, flush=True)
        suite_rows, suite_notes = SUITES[name](args.quick)
        rows += suite_rows
        notes += suite_notes
    load_after = loadavg()
    elapsed = datetime.datetime.now(datetime.UTC) - started

    lines = table(rows)
    print("\n".join(lines))
    print()
    print("\n".join(notes))
    print(f"\nload average (1, 5, 15 min): before {load_before}; after {load_after}")
    if args.write:
        write_results(lines, notes, started, elapsed, load_before, load_after, args.quick)


def write_results(
    lines: list[str],
    notes: list[str],
    started: datetime.datetime,
    elapsed: datetime.timedelta,
    load_before: str,
    load_after: str,
    quick: bool,
) -> None:
    text = [
        "# Benchmark results (issue 9)",
        "",
        "Written by `.venv/bin/python benchmarks/run_all.py --write"
        + (" --quick`" if quick else "`")
        + "; rerun it to refresh.",
        "Every reference was measured in the same run on the same machine. The machine is",
        "shared and has two cores (wrk, the upstream, the proxy under test and this script",
        "share them): the figures are noisy; compare ratios, not absolute numbers.",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {elapsed.total_seconds():.0f} s"
        + (" (quick sizes)" if quick else " (full sizes)"),
        *(f"- {line}" for line in machine()),
        f"- load average (1, 5, 15 min) from /proc/loadavg: before {load_before}; "
        f"after {load_after}",
        "",
        *lines,
        "",
        "## Notes from the run",
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    # A hand-written reading of the figures, under its own heading, survives a rewrite.
    path = HERE / "RESULTS.md"
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(READING) :] if READING in old else ""
    path.write_text("\n".join(text) + ("\n" + kept if kept else ""))
    print(f"wrote {HERE / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
