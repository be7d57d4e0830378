"""The examples in docs/ run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_guard_any_tool_refuses_the_injected_payment_and_makes_the_users() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "guard_any_tool.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[1].startswith("REFUSED by vertex guard (tainted_argument")
    assert "'to' came from tool:read_page" in out[1]
    assert out[2] == "sent 50 to ACCT-1111-2222"
