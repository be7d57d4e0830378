"""What the broker itself served to each run: its own, unforgeable taint source.

Labels from the agent process can be under-reported by a compromised agent; what the
broker served (issue bodies, rows, pages) cannot. :class:`TaintMemory` remembers those
untrusted texts per ``(token_id, run_id)`` for ``ttl`` seconds and checks later
requests of the same run against them, with the matching of ``_match.py``. The broker
holds no trusted text, so nothing is cleared here: the policy weighs these hits with
the agent's own labels (which do say what the user gave).

Invariants and limits:

- A text expires ``ttl`` seconds after it was remembered (the clock is injectable).
  The same text from the same source remembered again (an agent polling one issue)
  is not stored twice: it renews the copy held, which is then kept until ``ttl``
  after the newest time it was served (longer if a text held before it lives
  longer: texts leave oldest first, never early). So repeats neither cost
  re-indexing nor fill the run's bytes.
- A run holds at most ``max_bytes_per_run`` of text. A text that would pass it is not
  stored and the run is marked *overflowed* (fail closed: the caller then treats the
  run as strict) for as long as that text would have been remembered; nothing already
  stored is dropped.
- A token holds at most ``max_runs_per_token`` runs: a new run of a token at its cap
  evicts that token's least recently used run, so one token's traffic first evicts
  its own memory.
- At most ``max_runs`` runs are held; beyond it the least recently used run is
  evicted whole, a run of a token-scoped key (run id ``*``, ``taint.scope =
  "token"``) only when no other run is left: another token's traffic never evicts
  it. **Evicting is forgetting, and it is remembered**: an evicted run is no longer
  ``seen`` and its values no longer match, but every key of its token is then
  ``overflowed`` for ``ttl`` seconds (fail closed: the caller treats those runs as
  strict). At most ``max(max_runs, 10_000)`` such token marks are kept (the oldest
  dropped).
  Size ``max_runs`` for the number of runs alive within ``ttl``. Memory is bounded
  by ``max_runs * max_bytes_per_run`` of text (times about five for the indexes).
- A text that is a JSON document with escapes is remembered with its decoded
  strings too (``TextIndex.add``): what the agent copies is the decoded value.
- Thread-safe: one lock around every operation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice

import blake3

from vertex_tools.taint._match import Hit, TextIndex, Value, _find, _utf8_size, _with_json_leaves

__all__ = ["TaintMemory"]

_SWEEP = 8  # least recently used runs looked at per remember(), to drop expired ones
_MIN_EVICTED_MARKS = 10_000  # tokens remembered as having lost a run (a few MB at most)
EVERY_RUN = "*"
"""The run id of a token-scoped key: never evicted by another token's traffic."""


class _Run:
    __slots__ = ("entries", "held", "index", "overflow_until")

    def __init__(self, max_bytes: int) -> None:
        self.index = TextIndex(max_bytes=max_bytes)
        # One per text, oldest first, like the index: (when it expires, what it is).
        self.entries: deque[tuple[float, tuple[bytes, str]]] = deque()
        # Each held (BLAKE3 of the text, source): the latest expiry asked for (renewals
        # included). A digest, not the text: the index keeps the text in its own forms.
        self.held: dict[tuple[bytes, str], float] = {}
        self.overflow_until = float("-inf")

    def renew(self, item: tuple[bytes, str], until: float) -> bool:
        """Keep a held ``item`` until ``until``; False if it is not held."""
        if item not in self.held:
            return False
        self.held[item] = until
        return True

    def add(self, item: tuple[bytes, str], prepared: str, until: float) -> bool:
        """Index ``item`` (its text already through ``_with_json_leaves``)."""
        if not self.index._add_prepared(prepared, item[1]):
            return False
        self.entries.append((until, item))
        self.held[item] = until
        return True

    def expire(self, now: float) -> None:
        entries = self.entries
        count = 0
        while count < len(entries) and entries[count][0] <= now:
            count += 1
        if not count:
            return
        again: list[int] = []
        for at in range(count):
            _, item = entries.popleft()
            until = self.held[item]
            if until > now:
                again.append(at)
                entries.append((until, item))
            else:
                del self.held[item]
        # A renewed text moves to the end, as if served just now: the order of
        # ``entries`` stays the index's order, and no text leaves before its time.
        self.index._drop_oldest(count, again)

    def idle(self, now: float) -> bool:
        return not self.entries and self.overflow_until <= now


class TaintMemory:
    """Untrusted text the broker served, per ``(token_id, run_id)``, for ``ttl``
    seconds; bounded per run, per token and in runs (see the module docstring).
    Thread-safe."""

    def __init__(
        self,
        *,
        ttl: float,
        max_bytes_per_run: int,
        max_runs: int = 10_000,
        max_runs_per_token: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        if max_bytes_per_run < 1:
            raise ValueError(f"max_bytes_per_run must be >= 1, not {max_bytes_per_run!r}")
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, not {max_runs!r}")
        if max_runs_per_token is None:
            max_runs_per_token = max(1, max_runs // 4)
        if max_runs_per_token < 1:
            raise ValueError(f"max_runs_per_token must be >= 1, not {max_runs_per_token!r}")
        self._ttl = float(ttl)
        self._max_bytes = max_bytes_per_run
        self._max_runs = max_runs
        self._max_per_token = max_runs_per_token
        self._clock = clock
        self._lock = threading.Lock()
        # Runs of run-scoped keys, least recently used first, and of token-scoped keys
        # (run "*"), evicted only when no run-scoped key is left.
        self._runs: OrderedDict[tuple[str, str], _Run] = OrderedDict()
        self._scoped: OrderedDict[tuple[str, str], _Run] = OrderedDict()
        # Each token's run-scoped run ids, least recently used first.
        self._by_token: dict[str, OrderedDict[str, None]] = {}
        # Tokens a run of which was evicted: overflowed until then (fail closed).
        self._evicted: OrderedDict[str, float] = OrderedDict()

    def remember(self, key: tuple[str, str], text: str, source: str) -> None:
        """Remember ``text`` served from ``source`` to the run ``key`` =
        ``(token_id, run_id)``. Past ``max_bytes_per_run`` the text is not stored and
        the run is marked overflowed; past ``max_runs_per_token`` or ``max_runs`` a
        least recently used run is forgotten and its token marked overflowed."""
        _check_key(key)
        item = (_digest(text), source)
        with self._lock:
            now = self._clock()
            run = self._get(key)
            if run is None:
                run = self._create(key, now)
            self._touch(key)
            run.expire(now)
            until = now + self._ttl
            if not run.renew(item, until):
                self._add(run, text, item, until)
            self._sweep(now)
            while len(self._runs) + len(self._scoped) > self._max_runs:
                victim = next(iter(self._runs), None)
                if victim is None or (victim == key and len(self._runs) == 1 and self._scoped):
                    victim = next(iter(self._scoped))
                self._evict(victim, now)

    def _add(self, run: _Run, text: str, item: tuple[bytes, str], until: float) -> None:
        """Index a text not held yet; past the run's bytes, mark it overflowed instead."""
        prepared = _with_json_leaves(text)
        room = self._max_bytes - run.index.size_bytes
        if len(prepared) > room or _utf8_size(prepared) > room:  # the first test saves encoding
            run.overflow_until = max(run.overflow_until, until)
        elif not run.add(item, prepared, until):  # cannot happen (room was checked)
            run.overflow_until = max(run.overflow_until, until)  # fail closed all the same

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
            return run is not None and bool(run.entries)

    def overflowed(self, key: tuple[str, str]) -> bool:
        """Whether the run ``key`` was served more than it could remember, or a run of
        its token was evicted, within the last ``ttl`` seconds."""
        _check_key(key)
        with self._lock:
            now = self._clock()
            if self._evicted.get(key[0], float("-inf")) > now:
                return True
            run = self._live(key)
            return run is not None and run.overflow_until > now

    def _get(self, key: tuple[str, str]) -> _Run | None:
        return (self._scoped if key[1] == EVERY_RUN else self._runs).get(key)

    def _create(self, key: tuple[str, str], now: float) -> _Run:
        run = _Run(self._max_bytes)
        if key[1] == EVERY_RUN:
            self._scoped[key] = run
            return run
        runs_of = self._by_token.get(key[0])
        if runs_of is not None:
            while len(runs_of) >= self._max_per_token:
                self._evict((key[0], next(iter(runs_of))), now)
        self._runs[key] = run
        self._by_token.setdefault(key[0], OrderedDict())[key[1]] = None
        return run

    def _touch(self, key: tuple[str, str]) -> None:
        if key[1] == EVERY_RUN:
            self._scoped.move_to_end(key)
        else:
            self._runs.move_to_end(key)
            self._by_token[key[0]].move_to_end(key[1])

    def _drop(self, key: tuple[str, str]) -> None:
        if key[1] == EVERY_RUN:
            del self._scoped[key]
            return
        del self._runs[key]
        runs_of = self._by_token[key[0]]
        del runs_of[key[1]]
        if not runs_of:
            del self._by_token[key[0]]

    def _evict(self, key: tuple[str, str], now: float) -> None:
        """Forget a run for lack of room, and remember that its token lost one."""
        self._drop(key)
        token = key[0]
        self._evicted[token] = now + self._ttl
        self._evicted.move_to_end(token)
        while len(self._evicted) > max(self._max_runs, _MIN_EVICTED_MARKS):
            self._evicted.popitem(last=False)

    def _live(self, key: tuple[str, str]) -> _Run | None:
        run = self._get(key)
        if run is not None:
            self._touch(key)  # a run being checked is in use: evict it last
            run.expire(self._clock())
        return run

    def _sweep(self, now: float) -> None:
        # Runs nobody asks about again would otherwise hold memory until evicted.
        for runs in (self._runs, self._scoped):
            for key in list(islice(runs, _SWEEP)):
                run = runs[key]
                run.expire(now)
                if run.idle(now):
                    self._drop(key)
        # Eviction marks are ordered by when they were set, so the oldest expire first.
        while self._evicted:
            token, until = next(iter(self._evicted.items()))
            if until > now:
                break
            del self._evicted[token]


def _digest(text: str) -> bytes:
    """What identifies a text among those held (lone surrogates kept, never refused)."""
    return blake3.blake3(text.encode("utf-8", "surrogatepass")).digest()


def _check_key(key: tuple[str, str]) -> None:
    if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise TypeError(f"a taint memory key is (token_id, run_id), not {key!r}")
