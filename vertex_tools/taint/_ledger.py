"""The provenance ledger of one agent run, and the taint report it produces.

An argument is *tainted* when its value comes from untrusted content and not from
trusted content. The ledger holds both: trusted text (the user's request, the system
prompt, operator config) and untrusted text (outputs of tools marked untrusted,
retrieved documents), each in a :class:`~vertex_tools.taint._match.TextIndex`.

Invariants:

- ``check(value)`` returns the hits of ``value`` in untrusted content whose
  comparison does not also match in trusted content ("a value that the user also
  gave is not tainted"). Clearing is per comparison: a trusted host does not clear
  an untrusted full URL, and the trusted "$10" clears the number 1000 (cents); a
  number inside a date, a time or an id ("2026-11-29", "10:30", "#2026") clears
  nothing. A tainted argument is never reported ``trusted``.
- Fail closed: untrusted text past ``max_bytes`` is not stored and the ledger says
  ``overflowed`` (callers then treat the run as strict); an argument too large to
  walk or a string too long to check whole is reported tainted with an
  ``UNCHECKED`` hit once the run has read untrusted content. Trusted text past
  ``max_bytes`` is not stored either: it can then clear nothing, which only taints
  more.
- Labels come from the agent process: a compromised agent can under-report them.
  The broker keeps its own memory of what it served (``_memory.py``).
- The ledger is thread-safe: tools may run in threads.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from vertex_tools.taint._match import (
    MAX_HITS,
    MAX_VALUE_CHARS,
    UNCHECKED_SOURCE,
    Hit,
    MatchKind,
    TextIndex,
    Value,
    _appears,
    _find,
    _Probes,
    _probes,
)

__all__ = ["ProvenanceLedger", "Source", "Taint", "TaintReport"]

SOURCE_KINDS = frozenset({"user", "system", "config", "tool", "retriever", "broker"})
MAX_HEADER_CHARS = 4096
MAX_LEAVES = 10_000
"""Items walked in one argument (containers and leaves); past it: tainted, unchecked."""
MAX_ARGUMENT_CHARS = 256 * 1024
"""Characters checked in one argument (each string counting at most 64 KiB): checking
is linear in them, so this bounds a label's time; past it: tainted, unchecked."""
_RUN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEADER_VERSION = 1
_CONTROL = {c: " " for c in [*range(32), 127]}
_KINDS = frozenset(kind.value for kind in MatchKind)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a text came from. ``str(source)`` reads well in an error message:
    ``tool:github_get_issue body``."""

    kind: str
    """One of user, system, config, tool, retriever, broker."""
    name: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"source kind {self.kind!r} is not one of {sorted(SOURCE_KINDS)}")
        if not self.name:
            raise ValueError("a source needs a name")

    def __str__(self) -> str:
        text = (
            f"{self.kind}:{self.name} {self.detail}" if self.detail else f"{self.kind}:{self.name}"
        )
        return text.translate(_CONTROL)  # one line in an error message or a log


@dataclass(frozen=True, slots=True)
class Taint:
    """A control argument whose value came from untrusted content; ``hits`` name the
    untrusted sources (they may be empty when a header had to trim them)."""

    argument: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True, slots=True)
class TaintReport:
    """The taint labels of one call's control arguments, for the broker.

    ``tainted``: arguments whose value came from untrusted content and not from
    trusted content. ``trusted``: arguments not tainted whose value appears in trusted
    content.
    ``untrusted_seen``: the run has read untrusted content. ``overflowed``: some
    untrusted content was too large to remember (treat the run as strict).
    """

    run_id: str
    tainted: tuple[Taint, ...]
    trusted: tuple[str, ...]
    untrusted_seen: bool
    overflowed: bool

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not _RUN_ID.fullmatch(self.run_id):
            raise ValueError(f"run_id {self.run_id!r} does not match ^[A-Za-z0-9_.:-]{{1,64}}$")

    def to_header(self) -> str:
        """This report as base64url (unpadded) of a versioned JSON object, at most 4096
        characters. Too long: excerpts are cut, then hits dropped (all but the first,
        then all), then the trusted list; a tainted argument's name is never dropped:
        when even the names do not fit, ValueError."""
        for step in _TRIM_STEPS:
            excerpt, hits_kept, keep_trusted = step
            body = {
                "v": _HEADER_VERSION,
                "run": self.run_id,
                "t": [
                    [t.argument, [[h.source, str(h.kind), h.excerpt[:excerpt]] for h in hits]]
                    for t in self.tainted
                    for hits in [t.hits if hits_kept is None else t.hits[:hits_kept]]
                ],
                "tr": list(self.trusted) if keep_trusted else [],
                "u": self.untrusted_seen,
                "o": self.overflowed,
                "x": step != _TRIM_STEPS[0],  # trimmed: the reader knows hits may be missing
            }
            # ASCII JSON: escapes survive any text, lone surrogates included.
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
            text = base64.urlsafe_b64encode(raw.encode("ascii"))
            header = text.decode("ascii").rstrip("=")
            if len(header) <= MAX_HEADER_CHARS:
                return header
        names = ", ".join(repr(t.argument[:40]) for t in self.tainted[:5])
        raise ValueError(
            f"taint report of {len(self.tainted)} tainted arguments ({names}, ...) does not fit "
            f"in {MAX_HEADER_CHARS} characters even without hits"
        )

    @classmethod
    def from_header(cls, text: str) -> TaintReport:
        """Parse :meth:`to_header`'s output. Strict: anything malformed, oversized, of
        an unknown version or with unknown fields raises ValueError naming it."""
        if not isinstance(text, str):
            raise ValueError("taint header must be a str")
        if len(text) > MAX_HEADER_CHARS:
            raise ValueError(f"taint header is {len(text)} characters, over {MAX_HEADER_CHARS}")
        if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
            raise ValueError("taint header is not unpadded base64url")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_no_duplicate_keys,
                parse_constant=_no_constants,
            )
        except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"taint header does not decode to JSON: {exc}") from exc
        except RecursionError as exc:  # "[" * 3000: too deep for the parser
            raise ValueError("taint header nests too deeply to parse") from exc
        except Exception as exc:  # whatever else a parser may raise: still malformed
            raise ValueError(f"taint header cannot be parsed: {exc!r}") from exc
        try:
            return _report_from_json(body)
        except ValueError:
            raise
        except Exception as exc:  # a shape the checks did not foresee: malformed
            raise ValueError(f"taint header is malformed: {exc!r}") from exc


# (excerpt length, hits kept per argument (None: all), keep the trusted list)
_TRIM_STEPS: tuple[tuple[int, int | None, bool], ...] = (
    (80, None, True),
    (32, None, True),
    (0, None, True),
    (0, 1, True),
    (0, 0, True),
    (0, 0, False),
)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"taint header repeats a key: {sorted(keys)}")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"taint header holds {name}, which is not JSON")


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"taint header: {what}")


def _report_from_json(body: Any) -> TaintReport:
    _expect(isinstance(body, dict), "not a JSON object")
    _expect("v" in body, "no version")
    _expect(
        body["v"] == _HEADER_VERSION and type(body["v"]) is int, f"unknown version {body['v']!r}"
    )
    keys = {"v", "run", "t", "tr", "u", "o", "x"}
    _expect(set(body) == keys, f"fields {sorted(set(body) ^ keys)} missing or unknown")
    run_id = body["run"]
    _expect(isinstance(run_id, str) and bool(_RUN_ID.fullmatch(run_id)), "bad run id")
    for flag in ("u", "o", "x"):
        _expect(type(body[flag]) is bool, f"{flag!r} is not a boolean")
    _expect(isinstance(body["tr"], list), "'tr' is not a list")
    _expect(all(isinstance(a, str) for a in body["tr"]), "a trusted argument is not a string")
    _expect(isinstance(body["t"], list), "'t' is not a list")
    tainted: list[Taint] = []
    for entry in body["t"]:
        _expect(isinstance(entry, list) and len(entry) == 2, "a taint is not [argument, hits]")
        argument, hits = entry
        _expect(isinstance(argument, str), "a tainted argument name is not a string")
        _expect(isinstance(hits, list), f"hits of {argument!r} are not a list")
        parsed: list[Hit] = []
        for hit in hits:
            _expect(
                isinstance(hit, list) and len(hit) == 3 and all(isinstance(f, str) for f in hit),
                f"a hit of {argument!r} is not [source, kind, excerpt]",
            )
            source, kind, excerpt = hit
            _expect(kind in _KINDS, f"unknown match kind {kind!r}")
            parsed.append(Hit(source, MatchKind(kind), excerpt))
        tainted.append(Taint(argument, tuple(parsed)))
    return TaintReport(
        run_id=run_id,
        tainted=tuple(tainted),
        trusted=tuple(body["tr"]),
        untrusted_seen=body["u"],
        overflowed=body["o"],
    )


def _new_run_id() -> str:
    # 10 random bytes are exactly 16 base32 characters, no padding.
    return "run_" + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def _leaves(value: Any) -> tuple[list[Value], bool]:
    """The leaves of ``value`` (dict keys included), and whether the walk stopped at
    ``MAX_LEAVES`` items. Iterative: deep nesting cannot hit the recursion limit, and
    the item cap ends a walk over a self-referencing list."""
    leaves: list[Value] = []
    stack: list[Any] = [value]
    walked = 0
    while stack:
        walked += 1
        if walked > MAX_LEAVES:
            return leaves, True
        item = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str | int | float | Decimal):
            leaves.append(item)
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                stack.append(sub)
                stack.append(key)
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(reversed(list(item)) if isinstance(item, list | tuple) else item)
        elif isinstance(item, bytes | bytearray):
            leaves.append(bytes(item).decode("utf-8", "replace"))
        elif isinstance(item, BaseModel):
            # A tool's args_schema validates nested arguments into models: walk their
            # fields, not their repr ("login='octocat-evil'" matches no whole value).
            stack.append(item.model_dump())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.append(_dataclass_fields(item))
        else:
            # A UUID, a date, an enum: compared as the text a tool would send.
            leaves.append(str(item))
    return leaves, False


def _dataclass_fields(instance: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies every field; the walk goes down itself.
    return {f.name: getattr(instance, f.name, None) for f in dataclasses.fields(instance)}


class ProvenanceLedger:
    """Trusted and untrusted text read during one agent run, and the checks of tool
    arguments against them. Thread-safe."""

    def __init__(self, *, run_id: str | None = None, max_bytes: int = 8 * 1024 * 1024) -> None:
        if run_id is None:
            run_id = _new_run_id()
        elif not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id {run_id!r} does not match ^[A-Za-z0-9_.:-]{{1,64}}$")
        self.run_id = run_id
        self._lock = threading.Lock()
        self._trusted = TextIndex(max_bytes=max_bytes)
        self._untrusted = TextIndex(max_bytes=max_bytes)
        self._untrusted_seen = False
        self._overflowed = False

    def add_trusted(self, text: str, source: Source) -> None:
        """Record text the user, the system prompt or the operator gave. Past
        ``max_bytes`` it is not stored (so it clears nothing: fail closed)."""
        with self._lock:
            self._trusted.add(text, str(source))

    def add_untrusted(self, text: str, source: Source) -> None:
        """Record third-party text the agent read. Past ``max_bytes`` it is not stored
        and the ledger becomes ``overflowed``."""
        with self._lock:
            self._untrusted_seen = True
            if not self._untrusted.add(text, str(source)):
                self._overflowed = True

    @property
    def untrusted_seen(self) -> bool:
        """Whether the run has read any untrusted content (stored or not)."""
        return self._untrusted_seen

    @property
    def overflowed(self) -> bool:
        """Whether some untrusted content was not stored for lack of room."""
        return self._overflowed

    def check(self, value: Value) -> tuple[Hit, ...]:
        """The hits of ``value`` in untrusted content not cleared by trusted content
        (the same comparison matching there); ``()`` when clean."""
        with self._lock:
            return _find(self._untrusted, self._trusted, value)

    def label(self, arguments: Mapping[str, Any], control: Iterable[str]) -> TaintReport:
        """Label the control arguments of one call. For each control argument present,
        every leaf (str, int, float, Decimal; also dict keys; bools and None ignored)
        is checked. An argument with more than ``MAX_LEAVES`` items or
        ``MAX_ARGUMENT_CHARS`` characters is tainted with an ``UNCHECKED`` hit once the
        run has read untrusted content (fail closed)."""
        tainted: list[Taint] = []
        trusted: list[str] = []
        with self._lock:
            for name in dict.fromkeys(control):
                if name not in arguments:
                    continue
                leaves, capped = _leaves(arguments[name])
                hits: list[Hit] = []
                seen: set[tuple[str, MatchKind]] = set()
                appears = False
                spent = 0
                cache: dict[str, _Probes] = {}  # an argument often repeats a value
                for leaf in leaves:
                    spent += min(len(leaf), MAX_VALUE_CHARS) if isinstance(leaf, str) else 1
                    if spent > MAX_ARGUMENT_CHARS:
                        capped = True
                        break
                    if isinstance(leaf, str):
                        probes = cache.get(leaf) or cache.setdefault(leaf, _probes(leaf))
                    else:
                        probes = _probes(leaf)
                    for hit in _find(self._untrusted, self._trusted, leaf, probes):
                        if (hit.source, hit.kind) not in seen and len(hits) < MAX_HITS:
                            seen.add((hit.source, hit.kind))
                            hits.append(hit)
                    appears = appears or _appears(self._trusted, leaf, probes)
                if capped and self._untrusted_seen:
                    note = (
                        f"more than {MAX_LEAVES} items or {MAX_ARGUMENT_CHARS} characters: "
                        "too large to check"
                    )
                    hits.append(Hit(UNCHECKED_SOURCE, MatchKind.UNCHECKED, note))
                if hits:
                    tainted.append(Taint(name, tuple(hits)))
                elif appears:
                    # Only an argument with no untrusted value is the user's word: the
                    # broker skips its own memory for the arguments named trusted.
                    trusted.append(name)
            return TaintReport(
                run_id=self.run_id,
                tainted=tuple(tainted),
                trusted=tuple(trusted),
                untrusted_seen=self._untrusted_seen,
                overflowed=self._overflowed,
            )
