"""The broker's long-lived parts, and the policy they serve under.

All blocking database work (state store, vault, policy checks) runs on one
dedicated thread that owns those connections; audit appends go through the
group-commit writer's own thread. The event loop never blocks on a database.

Where the state lives is ``BrokerConfig.store`` (SQLite in the data directory
by default, or a PostgreSQL database shared by replicas); the policy comes
from a file, or with a shared store from the database (``policy_source``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vertex_tools.audit import AsyncAuditWriter, AuditLog, EntryKind
from vertex_tools.broker.admitter import Admitter
from vertex_tools.broker.dbthread import DbThread
from vertex_tools.broker.forward import Forwarder
from vertex_tools.broker.loopread import Fallback, LoopReader
from vertex_tools.broker.netguard import AddressPolicy
from vertex_tools.broker.policy_source import (
    DatabasePolicySource,
    FilePolicySource,
    PolicySource,
)
from vertex_tools.broker.reconcile import HOST, Orphan, find_orphans
from vertex_tools.decision import Reason
from vertex_tools.errors import ConfigError, InvalidCiphertext, StoreError
from vertex_tools.home import Home
from vertex_tools.policy import LoadedPolicy
from vertex_tools.policy.durations import parse_duration
from vertex_tools.store import Admission, AdmissionResult, SqliteStore, StateStore
from vertex_tools.store.location import SqliteLocation, StoreLocation
from vertex_tools.taint import TaintMemory
from vertex_tools.vault import SecretValue, Vault, load_keyring

__all__ = ["BrokerConfig", "Runtime"]

log = logging.getLogger("vertex_tools.broker")
RECONCILE_WINDOW = 200_000  # recent audit entries searched for orphans at start
OUTCOME_DEFER_S = 0.005
"""How long an outcome entry (committed after its answer was sent) may wait to share
its commit with the next request's intent: one flush per call at low load instead of
two. It is also how much longer a crash can leave a call's intent without its outcome
(reconciled as orphaned at the next start, docs/durability.md)."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What ``vertex serve`` was asked to serve."""

    home: Home
    policy_path: Path
    environ: Mapping[str, str]
    reload_interval_s: float = 1.0
    store: StoreLocation | None = None
    """Default: SQLite in ``home``."""

    @property
    def location(self) -> StoreLocation:
        """Where the state, vault and audit log live."""
        return self.store if self.store is not None else SqliteLocation(self.home)

    def policy_source(self) -> PolicySource:
        """The policy file, or with a shared store the database's newest version."""
        policies = self.location.policies()
        if policies is None:
            return FilePolicySource(self.policy_path)
        return DatabasePolicySource(policies)


class Runtime:
    """Store, vault, audit writer, forwarder and the current policy."""

    def __init__(self, config: BrokerConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.location = config.location
        self._policy = config.policy_source()
        try:
            self._policy_stamp = self._policy.stamp()
            self.loaded: LoadedPolicy = self._policy.load()
        except BaseException:
            self._policy.close()
            raise
        self._db = DbThread("vertex-db")
        self.admitter = Admitter(self.db, self._admit_many)
        """Step 3 for every request: admissions group-committed on the database thread."""
        self.store: StateStore | None = None
        self.vault: Vault | None = None
        location = self.location
        if isinstance(location, SqliteLocation):
            self.audit = AsyncAuditWriter(
                config.home.audit_db, clock=clock, defer_s=OUTCOME_DEFER_S
            )
        else:
            self.audit = AsyncAuditWriter(
                lambda: location.open_audit(clock=clock),
                label=location.describe(),
                defer_s=OUTCOME_DEFER_S,
            )
        self.instance = secrets.token_hex(6)
        """This broker process's id in the audit log (intents carry it)."""
        self.forwarder = self._make_forwarder(self.loaded)
        settings = self.loaded.policy.settings
        self.taint_memory = TaintMemory(
            ttl=float(parse_duration(settings.taint_memory_ttl)),
            max_bytes_per_run=settings.taint_memory_bytes,
            max_runs=settings.taint_memory_runs,
        )
        """The untrusted values this broker served, per token and run (in memory: a
        restart forgets them, and each replica remembers what it served itself)."""
        from vertex_tools.broker.hold import SentValues

        self.sent_values = SentValues()
        """What each run sent before an upstream echoed it back (not third-party)."""
        self.reader: LoopReader | None = None
        """With SQLite: token rows and vault entries read on the loop (loopread.py)."""
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

    def db(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run blocking database work on the database thread (await the result)."""
        return self._db.submit(fn)

    def _admit_many(self, admissions: Sequence[Admission]) -> list[AdmissionResult]:
        if self.store is None:
            raise StoreError("the state database is not open")
        return self.store.admit_many(admissions)

    def secret(self, name: str) -> asyncio.Future[SecretValue]:
        """Open a vault entry on the database thread (``read_secret``); await the result.
        With a loop reader, the value is then remembered for the row it came from."""
        reader = self.reader
        before = None
        if reader is not None:
            with contextlib.suppress(Fallback):
                before = reader.stamp(name)
        done = self.db(lambda: self.read_secret(name))
        if reader is not None and before is not None:

            def keep(opened: asyncio.Future[SecretValue]) -> None:
                if not opened.cancelled() and opened.exception() is None:
                    reader.keep(name, before, opened.result())

            done.add_done_callback(keep)
        return done

    def read_secret(self, name: str) -> SecretValue:
        """Open a vault entry; call on the database thread only. If it fails to open,
        the master key may have been rotated since the broker started: reload the
        keyring from disk once and retry."""
        if self.vault is None:
            raise StoreError("the vault is not open")
        try:
            return self.vault.get(name)[1]
        except InvalidCiphertext:
            keyring = load_keyring(self.config.home.root, self.config.environ)
            if keyring.key_ids == self.vault.keyring.key_ids:
                raise
            self.vault.close()
            self.vault = self.location.open_vault(keyring)
            log.warning("vault master key changed on disk; keyring reloaded")
            return self.vault.get(name)[1]

    async def start(self) -> None:
        """Open everything; raise if anything is missing (the broker then refuses to start)."""
        home = self.config.home
        keyring = load_keyring(home.root, self.config.environ)

        def open_db() -> None:
            self.store = self.location.open_state()
            self.vault = self.location.open_vault(keyring)

        await self.db(open_db)
        if isinstance(self.location, SqliteLocation):
            await self._restore_nonces()
            self.reader = LoopReader(self.location.home.state_db)
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

    async def _restore_nonces(self) -> None:
        """SQLite: before serving, put back the nonces of the intents still inside the
        nonce lifetime. A signed call's nonce commits without a flush, its intent
        (which names it) with one; a power cut may have rolled back the first but
        not the second (SqliteStore.admit_many, docs/durability.md). Reads the audit
        log from its end only as far back as the lifetime."""
        store = self.store
        assert isinstance(store, SqliteStore)
        lifetime = 2 * self.loaded.policy.settings.clock_skew_seconds + 1
        now = self.clock()
        path = self.config.home.audit_db

        def restore() -> int:
            with AuditLog(path, create=False, read_only=True) as audit:
                recent = audit.since(int((now - lifetime) * 1_000_000))
            used = [
                (record.data["token_id"], record.data["nonce"], record.time_us / 1e6 + lifetime)
                for record in recent
                if record.kind is EntryKind.INTENT
                and isinstance(record.data.get("token_id"), str)
                and isinstance(record.data.get("nonce"), str)
            ]
            return store.restore_nonces(used, now)

        restored = await self.db(restore)
        if restored:
            log.warning(
                "%d used nonces of logged requests were missing from the state database "
                "(a power cut?): restored, so those requests cannot be replayed",
                restored,
            )

    async def _reconcile_logged(self) -> None:
        try:
            await self._reconcile()
        except Exception:
            log.exception("reconciling orphaned intents failed; they stay open until next start")

    async def _reconcile(self) -> None:
        """Record an outcome for every orphaned intent in the recent log (reconcile.py)."""
        location = self.location

        def scan() -> list[Orphan]:
            with location.open_audit(read_only=True) as log:
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
            self._policy.close()

        await self.db(close_db)
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        self._db.shutdown()

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
        """Reload the policy if it changed. An invalid policy keeps the old one serving."""
        stamp = await self.db(self._policy.stamp)
        if not force and stamp == self._policy_stamp:
            return False
        previous, self._policy_stamp = self._policy_stamp, stamp
        try:
            loaded = await self.db(self._policy.load)
        except StoreError:
            # The database did not answer: not a verdict on the policy, so look again
            # next tick instead of serving the old one until the next push.
            self._policy_stamp = previous
            raise
        except ConfigError as exc:
            log.error("policy reload refused, still serving %s: %s", self.loaded.digest[:16], exc)
            await self.audit.append(
                EntryKind.ADMIN,
                {
                    "action": "policy_reload_failed",
                    "policy": self.loaded.path,
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
