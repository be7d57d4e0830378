"""The broker's long-lived parts, and the policy they serve under.

All blocking database work (state store, vault) runs on one dedicated
thread that owns those connections; audit appends go through the group-commit
writer's own thread. The event loop never blocks on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vertex_tools.audit import AsyncAuditWriter, AuditLog, EntryKind
from vertex_tools.broker.forward import Forwarder
from vertex_tools.broker.netguard import AddressPolicy
from vertex_tools.broker.reconcile import HOST, Orphan, find_orphans
from vertex_tools.decision import Reason
from vertex_tools.errors import InvalidCiphertext, PolicyError
from vertex_tools.home import Home
from vertex_tools.policy import LoadedPolicy, load_policy
from vertex_tools.policy.durations import parse_duration
from vertex_tools.store import SqliteStore
from vertex_tools.taint import TaintMemory
from vertex_tools.vault import SecretValue, Vault, load_keyring

__all__ = ["BrokerConfig", "Runtime"]

log = logging.getLogger("vertex_tools.broker")
RECONCILE_WINDOW = 200_000  # recent audit entries searched for orphans at start
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What ``vertex serve`` was asked to serve."""

    home: Home
    policy_path: Path
    environ: Mapping[str, str]
    reload_interval_s: float = 1.0


class Runtime:
    """Store, vault, audit writer, forwarder and the current policy."""

    def __init__(self, config: BrokerConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.loaded: LoadedPolicy = load_policy(config.policy_path)
        self._policy_stamp = _stamp(config.policy_path)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vertex-db")
        self.store: SqliteStore | None = None
        self.vault: Vault | None = None
        self.audit = AsyncAuditWriter(config.home.audit_db, clock=clock)
        self.instance = secrets.token_hex(6)
        """This broker process's id in the audit log (intents carry it)."""
        self.forwarder = self._make_forwarder(self.loaded)
        settings = self.loaded.policy.settings
        self.taint_memory = TaintMemory(
            ttl=float(parse_duration(settings.taint_memory_ttl)),
            max_bytes_per_run=settings.taint_memory_bytes,
        )
        """The untrusted values this broker served, per token and run (in memory: a
        restart forgets them, and each replica remembers what it served itself)."""
        from vertex_tools.broker.hold import SentValues

        self.sent_values = SentValues()
        """What each run sent before an upstream echoed it back (not third-party)."""
        self._reload_task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None

    @staticmethod
    def _make_forwarder(loaded: LoadedPolicy) -> Forwarder:
        settings = loaded.policy.settings
        return Forwarder(
            AddressPolicy(settings.allow_private_upstreams),
            connect_timeout=float(parse_duration(settings.connect_timeout)),
            read_timeout=float(parse_duration(settings.read_timeout)),
            max_response_bytes=settings.max_response_bytes,
        )

    async def db(self, fn: Callable[[], T]) -> T:
        """Run blocking database work on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn)

    async def secret(self, name: str) -> SecretValue:
        """Open a vault entry. If it fails to open, the master key may have been rotated
        since the broker started: reload the keyring from disk once and retry."""

        def get() -> SecretValue:
            assert self.vault is not None
            try:
                return self.vault.get(name)[1]
            except InvalidCiphertext:
                keyring = load_keyring(self.config.home.root, self.config.environ)
                if keyring.key_ids == self.vault.keyring.key_ids:
                    raise
                self.vault.close()
                self.vault = Vault(self.config.home.state_db, keyring)
                log.warning("vault master key changed on disk; keyring reloaded")
                return self.vault.get(name)[1]

        return await self.db(get)

    async def start(self) -> None:
        """Open everything; raise if anything is missing (the broker then refuses to start)."""
        home = self.config.home
        keyring = load_keyring(home.root, self.config.environ)

        def open_db() -> None:
            self.store = SqliteStore(home.state_db)
            self.vault = Vault(home.state_db, keyring)

        await self.db(open_db)
        self.audit.start()
        await self.forwarder.start()
        await self.audit.append(
            EntryKind.ADMIN,
            {
                "action": "broker_start",
                "broker": self.instance,
                "pid": os.getpid(),
                "host": HOST,
            },
        )
        # In the background: a long log must not delay serving.
        self._reconcile_task = asyncio.create_task(self._reconcile_logged())
        await self.audit.append(
            EntryKind.ADMIN,
            {
                "action": "policy_load",
                "policy": self.loaded.path,
                "digest": self.loaded.digest,
                "pid": os.getpid(),
            },
        )
        self._reload_task = asyncio.create_task(self._watch_policy())

    async def _reconcile_logged(self) -> None:
        try:
            await self._reconcile()
        except Exception:
            log.exception("reconciling orphaned intents failed; they stay open until next start")

    async def _reconcile(self) -> None:
        """Record an outcome for every orphaned intent in the recent log (reconcile.py)."""
        path = self.config.home.audit_db

        def scan() -> list[Orphan]:
            with AuditLog(path, read_only=True) as log:
                start = max(1, log.count() - RECONCILE_WINDOW + 1)
                return find_orphans(log.records(start), current=self.instance)

        orphans = await asyncio.get_running_loop().run_in_executor(None, scan)
        store = self.store
        assert store is not None
        for orphan in orphans:
            claim = functools.partial(store.claim_orphan, orphan.request_id, self.clock())
            if not await self.db(claim):
                continue
            data: dict[str, object] = {
                "request_id": orphan.request_id,
                "status": 0,
                "reason": Reason.ORPHANED.value,
                "latency_us": 0,
                "reconciled_by": self.instance,
                "intent_seq": orphan.seq,
            }
            if "amount" in orphan.data:
                data["spend"] = "held"
            await self.audit.append(EntryKind.OUTCOME, data)
            log.warning(
                "request %s (intent %d) was left without an outcome by broker %s: "
                "recorded as orphaned",
                orphan.request_id,
                orphan.seq,
                orphan.broker,
            )

    async def stop(self) -> None:
        """Close everything, draining queued audit entries first."""
        if self._reload_task is not None:
            self._reload_task.cancel()
        if self._reconcile_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_task, timeout=30)
        await self.forwarder.close()
        await self.audit.aclose()

        def close_db() -> None:
            if self.store is not None:
                self.store.close()
            if self.vault is not None:
                self.vault.close()

        await self.db(close_db)
        self._db.shutdown(wait=True)

    async def _watch_policy(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.config.reload_interval_s)
            ticks += 1
            try:
                await self.reload_policy()
                if ticks % 60 == 0:  # about once a minute: drop expired nonces
                    await self.db(self._prune)
            except Exception:
                log.exception("policy watcher failed")

    def _prune(self) -> None:
        if self.store is not None:
            self.store.prune(self.clock())

    async def reload_policy(self, *, force: bool = False) -> bool:
        """Reload the policy file if it changed. An invalid file keeps the old policy."""
        stamp = _stamp(self.config.policy_path)
        if not force and stamp == self._policy_stamp:
            return False
        self._policy_stamp = stamp
        try:
            loaded = load_policy(self.config.policy_path)
        except PolicyError as exc:
            log.error("policy reload refused, still serving %s: %s", self.loaded.digest[:16], exc)
            await self.audit.append(
                EntryKind.ADMIN,
                {
                    "action": "policy_reload_failed",
                    "policy": str(self.config.policy_path),
                    "serving": self.loaded.digest,
                    "error": str(exc),
                },
            )
            return False
        if loaded.digest == self.loaded.digest:
            return False
        old_forwarder = self.forwarder
        if loaded.policy.settings != self.loaded.policy.settings:
            new_forwarder = self._make_forwarder(loaded)
            await new_forwarder.start()
            self.forwarder = new_forwarder
            await old_forwarder.close()
        self.loaded = loaded
        log.warning("policy reloaded: %s", loaded.digest[:16])
        await self.audit.append(
            EntryKind.ADMIN,
            {"action": "policy_load", "policy": loaded.path, "digest": loaded.digest},
        )
        return True


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
