"""What the broker itself served to each run: its own, unforgeable taint source.

Labels from the agent process can be under-reported by a compromised agent; what the
broker served (issue bodies, rows, pages) cannot. :class:`TaintMemory` remembers those
untrusted texts per ``(token_id, run_id)`` for ``ttl`` seconds and checks later
requests of the same run against them, with the matching of ``_match.py``. The broker
holds no trusted text, so nothing is cleared here: the policy weighs these hits with
the agent's own labels (which do say what the user gave).

Invariants and limits:

- A text expires ``ttl`` seconds after it was remembered (the clock is injectable).
- A run holds at most ``max_bytes_per_run`` of text. A text that would pass it is not
  stored and the run is marked *overflowed* (fail closed: the caller then treats the
  run as strict) for as long as that text would have been remembered; nothing already
  stored is dropped.
- At most ``max_runs`` runs are held; beyond it the least recently used run is
  evicted whole. **Evicting is forgetting**: an evicted run is no longer ``seen``
  nor ``overflowed``, and its values no longer match. Size ``max_runs`` for the
  number of runs alive within ``ttl``. Memory is bounded by
  ``max_runs * max_bytes_per_run`` of text (times about five for the indexes).
- Thread-safe: one lock around every operation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice

from vertex_tools.taint._match import Hit, TextIndex, Value, _find, _utf8_size

__all__ = ["TaintMemory"]

_SWEEP = 8  # least recently used runs looked at per remember(), to drop expired ones


class _Run:
    __slots__ = ("expiries", "index", "overflow_until")

    def __init__(self, max_bytes: int) -> None:
        self.index = TextIndex(max_bytes=max_bytes)
        self.expiries: deque[float] = deque()  # one per text, oldest first, like the index
        self.overflow_until = float("-inf")

    def expire(self, now: float) -> None:
        count = 0
        while count < len(self.expiries) and self.expiries[count] <= now:
            count += 1
        if count:
            for _ in range(count):
                self.expiries.popleft()
            self.index._drop_oldest(count)

    def idle(self, now: float) -> bool:
        return not self.expiries and self.overflow_until <= now


class TaintMemory:
    """Untrusted text the broker served, per ``(token_id, run_id)``, for ``ttl``
    seconds; bounded per run and in runs (see the module docstring). Thread-safe."""

    def __init__(
        self,
        *,
        ttl: float,
        max_bytes_per_run: int,
        max_runs: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        if max_bytes_per_run < 1:
            raise ValueError(f"max_bytes_per_run must be >= 1, not {max_bytes_per_run!r}")
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, not {max_runs!r}")
        self._ttl = float(ttl)
        self._max_bytes = max_bytes_per_run
        self._max_runs = max_runs
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[str, str], _Run] = OrderedDict()

    def remember(self, key: tuple[str, str], text: str, source: str) -> None:
        """Remember ``text`` served from ``source`` to the run ``key`` =
        ``(token_id, run_id)``. Past ``max_bytes_per_run`` the text is not stored and
        the run is marked overflowed; past ``max_runs`` the least recently used run
        is forgotten."""
        _check_key(key)
        with self._lock:
            now = self._clock()
            run = self._runs.get(key)
            if run is None:
                run = self._runs[key] = _Run(self._max_bytes)
            self._runs.move_to_end(key)
            run.expire(now)
            room = self._max_bytes - run.index.size_bytes
            if len(text) > room or _utf8_size(text) > room:  # the first test saves encoding
                run.overflow_until = max(run.overflow_until, now + self._ttl)
            elif run.index.add(text, source):
                run.expiries.append(now + self._ttl)
            self._sweep(now)
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)

    def find(self, key: tuple[str, str], value: Value) -> tuple[Hit, ...]:
        """Where ``value`` appears in the unexpired text served to the run ``key``
        (see ``TextIndex.find``); ``()`` for an unknown or forgotten run."""
        _check_key(key)
        with self._lock:
            run = self._live(key)
            return () if run is None else _find(run.index, None, value)

    def seen(self, key: tuple[str, str]) -> bool:
        """Whether any unexpired untrusted text is remembered for the run ``key``."""
        _check_key(key)
        with self._lock:
            run = self._live(key)
            return run is not None and bool(run.expiries)

    def overflowed(self, key: tuple[str, str]) -> bool:
        """Whether the run ``key`` was served more than it could remember, within the
        last ``ttl`` seconds."""
        _check_key(key)
        with self._lock:
            run = self._live(key)
            return run is not None and run.overflow_until > self._clock()

    def _live(self, key: tuple[str, str]) -> _Run | None:
        run = self._runs.get(key)
        if run is not None:
            self._runs.move_to_end(key)  # a run being checked is in use: evict it last
            run.expire(self._clock())
        return run

    def _sweep(self, now: float) -> None:
        # Runs nobody asks about again would otherwise hold memory until evicted.
        for key in list(islice(self._runs, _SWEEP)):
            run = self._runs[key]
            run.expire(now)
            if run.idle(now):
                del self._runs[key]


def _check_key(key: tuple[str, str]) -> None:
    if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise TypeError(f"a taint memory key is (token_id, run_id), not {key!r}")
