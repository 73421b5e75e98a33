"""The coordinator's durable state: SQLite in WAL mode, one writer, one process per directory.

What survives a restart (DESIGN.md §4): apps with their specs and model bytes (stored once by
content hash), the app-id and epoch counters, known devices with their last records and
leases, the deployed plan with what each agent should hold, and quarantines. Leases are kept
so that agents that outlived a coordinator crash carry on heartbeating without registering
again.

Every method is blocking and must be called from one thread at a time (the driver runs them
on its single writer thread). SQLite errors are translated here, once: a full disk is
RESOURCE_EXHAUSTED, anything else UNAVAILABLE, each naming the store's path. A directory held
by a running coordinator is refused (an advisory lock on ``lock`` in it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synergy.errors import FailedPrecondition, ResourceExhausted, SynergyError, Unavailable
from synergy.types import AppSpec, DeviceSpec, JointPlan
from synergy.wire.persist import (
    app_spec_from_bytes,
    app_spec_to_bytes,
    device_from_bytes,
    device_to_bytes,
    plan_from_bytes,
    plan_to_bytes,
)

__all__ = ["StateStore", "StoredApp", "StoredState"]

DB_NAME = "coordinator.sqlite3"
LOCK_NAME = "lock"
#: Bumped when the schema changes incompatibly; an unknown version is refused.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models (digest TEXT PRIMARY KEY, name TEXT NOT NULL, onnx BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, spec BLOB NOT NULL,
    model_digest TEXT NOT NULL REFERENCES models(digest), owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, spec BLOB NOT NULL, lease_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployment (
    id INTEGER PRIMARY KEY CHECK (id = 1), plan BLOB NOT NULL, expected TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantines (
    device_id TEXT PRIMARY KEY, reason TEXT NOT NULL, until_unix REAL NOT NULL, failures INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StoredApp:
    spec: AppSpec
    model_name: str
    model_digest: str
    onnx: bytes
    owner: str = ""


@dataclass(frozen=True)
class StoredState:
    next_app: int = 0
    next_epoch: int = 0
    apps: tuple[StoredApp, ...] = ()
    devices: tuple[tuple[DeviceSpec, str], ...] = ()
    plan: JointPlan = field(default_factory=JointPlan)
    expected: Mapping[str, frozenset[tuple[str, int, str]]] = field(default_factory=dict)
    quarantines: Mapping[str, tuple[str, float, int]] = field(default_factory=dict)


class StateStore:
    """See the module docstring. Open with :meth:`open`; :meth:`close` releases the lock."""

    def __init__(self, directory: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        self.directory = directory
        self._db = db
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, directory: Path) -> StateStore:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise Unavailable(f"state dir {directory}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(lock_fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(lock_fd)
            raise FailedPrecondition(
                f"state dir {directory} is in use by another running coordinator (pid {holder}); "
                "stop it or give this one another --state-dir"
            ) from None
        os.ftruncate(lock_fd, 0)
        os.pwrite(lock_fd, str(os.getpid()).encode(), 0)
        try:
            db = sqlite3.connect(directory / DB_NAME, check_same_thread=False, isolation_level=None)
            store = cls(directory, db, lock_fd)
            with store._errors():
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.executescript(_SCHEMA)
                version = store._meta("schema", SCHEMA_VERSION)
                if version == 1:  # before apps had owners: they become the admin's (owner "")
                    db.execute("ALTER TABLE apps ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
                    version = SCHEMA_VERSION
                if version != SCHEMA_VERSION:
                    raise FailedPrecondition(
                        f"state dir {directory}: schema version {version}, this coordinator knows {SCHEMA_VERSION}"
                    )
                store._set_meta("schema", SCHEMA_VERSION)
        except BaseException:
            os.close(lock_fd)
            raise
        return store

    def close(self) -> None:
        """Close the database and release the directory. Idempotent."""
        if self._lock_fd < 0:
            return
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        os.close(self._lock_fd)
        self._lock_fd = -1

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SynergyError:
            raise
        except sqlite3.Error as exc:
            text = str(exc)
            if "full" in text:
                raise ResourceExhausted(f"state store {self.directory}: {text}") from exc
            raise Unavailable(f"state store {self.directory}: {text}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _meta(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- writes ------------------------------------------------------------------------------

    def next_boot(self) -> int:
        """Count this start (numbers what must differ between runs, e.g. Infer inputs)."""
        with self._transaction():
            boots = self._meta("boots", 0) + 1
            self._set_meta("boots", boots)
        return boots

    def add_app(
        self, spec: AppSpec, model_name: str, model_digest: str, onnx: bytes, next_app: int, owner: str = ""
    ) -> None:
        """Store an accepted app (and its model, once per digest) with the app counter, atomically."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO models (digest, name, onnx) VALUES (?, ?, ?)", (model_digest, model_name, onnx)
            )
            db.execute(
                "INSERT OR REPLACE INTO apps (app_id, ordinal, spec, model_digest, owner) VALUES (?, ?, ?, ?, ?)",
                (spec.app_id, next_app, app_spec_to_bytes(spec), model_digest, owner),
            )
            self._set_meta("next_app", next_app)

    def remove_app(self, app_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM apps WHERE app_id = ?", (app_id,))
            db.execute("DELETE FROM models WHERE digest NOT IN (SELECT model_digest FROM apps)")

    def save_device(self, spec: DeviceSpec, lease_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO devices (device_id, spec, lease_id) VALUES (?, ?, ?)",
                (spec.device_id, device_to_bytes(spec), lease_id),
            )

    def forget_device(self, device_id: str) -> None:
        """Drop an (offline) device's record and its quarantine: ``synergy devices --remove``."""
        with self._transaction() as db:
            db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM quarantines WHERE device_id = ?", (device_id,))

    def save_counters(self, next_app: int, next_epoch: int) -> None:
        with self._transaction():
            self._set_meta("next_app", next_app)
            self._set_meta("next_epoch", next_epoch)

    def save_deployment(self, plan: JointPlan, expected: Mapping[str, frozenset[tuple[str, int, str]]]) -> None:
        held = {device: sorted([list(item) for item in items]) for device, items in expected.items()}
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO deployment (id, plan, expected) VALUES (1, ?, ?)",
                (plan_to_bytes(plan), json.dumps(held)),
            )

    def save_quarantines(self, quarantines: Mapping[str, tuple[str, float, int]]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM quarantines")
            db.executemany(
                "INSERT INTO quarantines (device_id, reason, until_unix, failures) VALUES (?, ?, ?, ?)",
                [(d, reason, until, failures) for d, (reason, until, failures) in quarantines.items()],
            )

    # -- read back -----------------------------------------------------------------------------

    def load(self) -> StoredState:
        """Everything persisted. A damaged record is refused with the reason (InvalidArgument)."""
        with self._errors():
            db = self._db
            apps = tuple(
                StoredApp(app_spec_from_bytes(spec, app_id), name, digest, bytes(onnx), str(owner))
                for app_id, spec, digest, name, onnx, owner in db.execute(
                    "SELECT a.app_id, a.spec, a.model_digest, m.name, m.onnx, a.owner FROM apps a "
                    "JOIN models m ON m.digest = a.model_digest ORDER BY a.ordinal"
                )
            )
            devices = tuple(
                (device_from_bytes(spec), lease_id)
                for spec, lease_id in db.execute("SELECT spec, lease_id FROM devices ORDER BY device_id")
            )
            row = db.execute("SELECT plan, expected FROM deployment WHERE id = 1").fetchone()
            plan, expected = JointPlan(), {}
            if row is not None:
                plan = plan_from_bytes(row[0])
                expected = {
                    device: frozenset((str(a), int(s), str(d)) for a, s, d in items)
                    for device, items in json.loads(row[1]).items()
                }
            quarantines = {
                d: (reason, float(until), int(failures))
                for d, reason, until, failures in db.execute(
                    "SELECT device_id, reason, until_unix, failures FROM quarantines"
                )
            }
            return StoredState(
                next_app=self._meta("next_app", 0),
                next_epoch=self._meta("next_epoch", 0),
                apps=apps,
                devices=devices,
                plan=plan,
                expected=expected,
                quarantines=quarantines,
            )
