"""Session files are read strictly: every malformed or cut file names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vertex_tools.replay import SessionFormatError, read_session

SESSIONS = Path(__file__).parents[1] / "sessions"
GOOD = SESSIONS / "stripe-injection-refund-denied.session.jsonl"


def _lines() -> list[str]:
    return GOOD.read_text("utf-8").splitlines()


def _write(tmp_path: Path, lines: list[str], *, newline: bool = True) -> Path:
    path = tmp_path / "s.session.jsonl"
    path.write_text("\n".join(lines) + ("\n" if newline else ""), encoding="utf-8")
    return path


def _edit(line: str, **changes: object) -> str:
    obj = json.loads(line)
    obj.update(changes)
    return json.dumps(obj)


def _drop(line: str, *path: str) -> str:
    obj = json.loads(line)
    inner = obj
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return json.dumps(obj)


def test_the_committed_file_reads() -> None:
    session = read_session(GOOD)
    assert [c.tool for c in session.calls] == ["stripe_retrieve_customer", "stripe_create_refund"]
    assert session.calls[1].line == 3
    assert session.calls[1].decision.reason == "tainted_argument"
    assert session.calls[1].lookups and session.calls[1].lookups[0][0].startswith("/v1/charges/")


def _cases() -> list[tuple[str, object, str]]:
    lines = _lines()
    header, first, second, end = lines
    return [
        ("not json", [header, first, "{not json", end], r"s\.session\.jsonl:3: not a JSON object"),
        ("json list", [header, "[1]", second, end], r":2: not a JSON object"),
        (
            "unknown format",
            [_edit(header, format="other"), first, second, end],
            r":1: not a vertex session file",
        ),
        (
            "unknown version",
            [_edit(header, version=2), first, second, end],
            r":1: session format version 2 is not supported",
        ),
        ("missing field", [header, _drop(first, "decision"), second, end], r":2: missing field"),
        (
            "missing nested field",
            [header, first, _drop(second, "request", "method"), end],
            r":3: request: missing field 'method'",
        ),
        (
            "wrong type",
            [header, _edit(first, time="yesterday"), second, end],
            r":2: field 'time' has the wrong type",
        ),
        ("reordered", [header, second, first, end], r":2: call 2 where call 1 was expected"),
        ("a call deleted", [header, first, end], r":3: the end line says 2 calls"),
        ("cut at a line boundary", [header, first, second], r":3: no end line"),
        ("text after the end", [header, first, second, end, first], r":5: text after the end"),
        ("empty", [], r":1: the file is empty|does not end with a newline"),
    ]


@pytest.mark.parametrize(
    ("lines", "message"), [(c[1], c[2]) for c in _cases()], ids=[c[0] for c in _cases()]
)
def test_malformed_files_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path, lines, newline=bool(lines))
    with pytest.raises(SessionFormatError, match=message):
        read_session(path)


def test_a_file_cut_mid_line_is_refused(tmp_path: Path) -> None:
    text = GOOD.read_text("utf-8")
    path = tmp_path / "cut.session.jsonl"
    path.write_text(text[: len(text) - 40], encoding="utf-8")
    with pytest.raises(SessionFormatError, match=r"cut\.session\.jsonl:\d+: "):
        read_session(path)


def test_replaying_does_not_import_langchain() -> None:
    """``vertex replay`` and the pytest plugin stay light: LangChain only for recording."""
    import subprocess
    import sys

    code = (
        "import sys, vertex_tools.replay, vertex_tools.testing, vertex_tools.cli.replay; "
        "print(sorted(m for m in sys.modules if m.startswith('langchain')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from vertex_tools.replay import Recorder

    assert Recorder.__name__ == "Recorder"
