"""Local model registry: package groups, versions and their event history in SQLite, under a versioned schema.

The schema's version is SQLite's ``PRAGMA user_version`` (0 in databases made before it was versioned).
Opening a registry applies the migrations it lacks, in order, in one IMMEDIATE transaction: two processes
opening an old database at once do not both migrate; the second waits for the write lock, then finds the
new version and does nothing. A failed migration rolls back whole, leaving the database as it was. A
database written by a newer modelops (a version this code does not know) is refused before anything is
written to it.

To change the schema, append a migration to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.backends.base import History, Registry
from modelops.entities import (
    EVENT_FIELDS,
    PENDING,
    REGISTERED,
    Event,
    Lineage,
    PackageVersion,
    TrainingResult,
    event_hash,
)
from modelops.errors import HistoryError, RegistryError

#: Version 1: the schema as shipped before it had a version (those databases say user_version 0).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS packages (
    grp TEXT NOT NULL REFERENCES groups(name),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    training_job TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    image TEXT NOT NULL,
    container_version TEXT NOT NULL,
    xgboost_version TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    metrics TEXT NOT NULL,
    report TEXT,
    data_sha256 TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    lineage TEXT NOT NULL,
    tree_hash TEXT,
    status_by TEXT,
    status_at TEXT,
    status_note TEXT,
    PRIMARY KEY (grp, version)
);
CREATE INDEX IF NOT EXISTS packages_by_tree ON packages (grp, tree_hash);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    version INTEGER NOT NULL,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    by TEXT,
    note TEXT
);
"""

#: Version 2: what the event history (what served when) records about each event, each group's
#: events chained by hash, and the table made append-only.
SCHEMA_V2 = """
ALTER TABLE events ADD COLUMN environment TEXT;
ALTER TABLE events ADD COLUMN package_id TEXT;
ALTER TABLE events ADD COLUMN git_commit TEXT;
ALTER TABLE events ADD COLUMN ci_url TEXT;
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
CREATE INDEX events_by_group ON events (grp, id);
"""

#: Version 3: each group's newest event (its position and hash) kept apart from the events, so that deleting the
#: newest events, which leaves no gap in the chain, is detected too.
SCHEMA_V4 = """
CREATE TABLE event_heads (
    grp TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO event_heads (grp, seq, hash)
    SELECT grp, COUNT(*), (SELECT hash FROM events AS newest WHERE newest.grp = events.grp ORDER BY id DESC LIMIT 1)
    FROM events GROUP BY grp;
"""

APPEND_ONLY = """
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'registry events are append-only'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'registry events are append-only'); END;
"""

def _run(script: str) -> Callable[[sqlite3.Connection], None]:
    """A migration step running each statement of ``script`` on the open transaction.

    Not ``executescript``: it commits the transaction it finds before running, so a failure halfway would
    leave half a migration behind.
    """

    def apply(db: sqlite3.Connection) -> None:
        statement = ""
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):  # knows a trigger's BEGIN ... END holds semicolons
                db.execute(statement)
                statement = ""
        if statement.strip():
            raise ValueError(f"incomplete SQL statement in a migration: {statement!r}")

    return apply


def _backfill_events_v2(db: sqlite3.Connection) -> None:
    """Give the events recorded before version 2 what is known of them, and chain them by hash."""
    rows = db.cursor()
    rows.row_factory = sqlite3.Row  # whatever the connection's own factory is
    lineages = {(r["grp"], r["version"]): json.loads(r["lineage"])
                for r in rows.execute("SELECT grp, version, lineage FROM packages").fetchall()}
    previous: dict[str, str] = {}
    for row in rows.execute("SELECT * FROM events ORDER BY id").fetchall():
        event = {**_event_record(row), "package_id": _package_id(row["grp"], row["version"])}
        lineage = lineages.get((row["grp"], row["version"]), {})
        if row["action"] == "registered":  # the commit and CI build the version was trained from
            event.update(git_commit=lineage.get("git_commit"), ci_url=lineage.get("ci_build_url"))
        prev_hash = previous.get(row["grp"])
        previous[row["grp"]] = digest = event_hash(event, prev_hash)
        db.execute("UPDATE events SET package_id = ?, git_commit = ?, ci_url = ?, prev_hash = ?, hash = ? "
                   "WHERE id = ?", (event["package_id"], event["git_commit"], event["ci_url"], prev_hash, digest,
                                    row["id"]))


#: Version 3: each version's monitoring baseline, its files' URIs by name (modelops.monitoring.baseline).
SCHEMA_V3 = """
ALTER TABLE packages ADD COLUMN baselines TEXT;
"""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: a database at ``version - 1`` is at ``version`` once ``steps`` have run."""

    version: int
    why: str
    steps: tuple[Callable[[sqlite3.Connection], None], ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the schema as first shipped (created where absent; a database from then already has it)",
              (_run(SCHEMA_V1),)),
    Migration(2, "events record environment, package, git commit and CI URL, chained by hash, append-only: the "
                 "history of what served when starts from the events already recorded",
              (_run(SCHEMA_V2), _backfill_events_v2, _run(APPEND_ONLY))),
    Migration(3, "each version records its monitoring baseline (statistics and constraints beside its "
                 "artifact); versions registered before have none", (_run(SCHEMA_V3),)),
    Migration(4, "each group's newest event is recorded apart from the events, so that deleting the newest ones is "
                 "detected (the chain alone shows an edited, reordered or deleted event before the newest)",
              (_run(SCHEMA_V4),)),
)
#: The newest schema this code reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(db: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the database on ``db`` (an autocommit connection) to the newest version in ``migrations``.

    Returns:
        The version the database had before (equal to the newest when there was nothing to do).

    Raises:
        RegistryError: the database has a newer version than ``migrations`` know (nothing is written).
        sqlite3.Error: a migration failed (rolled back: the database is unchanged).
    """
    latest = migrations[-1].version
    found = _schema_version(db, path, latest)
    if found == latest:
        return found
    # IMMEDIATE takes the write lock now: a second opener waits here (the connection's busy timeout),
    # then reads the version again and finds the first one's work done.
    db.execute("BEGIN IMMEDIATE")
    try:
        found = _schema_version(db, path, latest)
        for migration in migrations:
            if migration.version > found:
                for step in migration.steps:
                    step(db)
        db.execute(f"PRAGMA user_version = {int(latest)}")  # transactional: rolled back with the rest
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found


def _schema_version(db: sqlite3.Connection, path: Path, latest: int) -> int:
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > latest:
        raise RegistryError(f"the registry {path} has schema version {found}, written by a newer modelops; this one "
                            f"knows versions up to {latest}. Nothing was changed. Fix: upgrade modelops in this "
                            f"environment (`pip install -U modelops`), or set MODELOPS_HOME to another folder.")
    return found


class LocalRegistry(Registry):
    """SQLite in WAL mode; every write is one transaction, so a crash leaves no half-written version."""

    #: Seconds a connection waits for another process's write lock before giving up.
    timeout: float = 30

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._connection() as db:
            #: The schema version the database had when opened (SCHEMA_VERSION unless it was just migrated).
            self.schema_found = migrate(db, self.path)

    def register(self, group: str, *, training: TrainingResult, metrics: dict[str, Any], data_sha256: str,
                 dataset_id: str, lineage: Lineage, description: str = "",
                 report: dict[str, Any] | None = None, baselines: dict[str, str] | None = None) -> PackageVersion:
        now = _now()
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO groups (name, created_at) VALUES (?, ?)", (group, now))
            (version,) = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM packages WHERE grp = ?",
                                    (group,)).fetchone()
            db.execute(
                """INSERT INTO packages (grp, version, status, created_at, description, training_job, artifact_uri,
                       artifact_sha256, image, container_version, xgboost_version, hyperparameters, metrics, report,
                       data_sha256, dataset_id, lineage, tree_hash, baselines)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (group, version, PENDING, now, description, training.job_name, training.artifact_uri,
                 training.artifact_sha256, training.image, training.container_version, training.xgboost_version,
                 _dumps(training.hyperparameters), _dumps(metrics), _dumps(report) if report else None, data_sha256,
                 dataset_id, _dumps(lineage.to_json()), lineage.tree_hash, _dumps(baselines) if baselines else None),
            )
            _append_event(db, {"group": group, "version": version, "at": now, "action": REGISTERED,
                               "by": lineage.branch, "note": training.job_name, "git_commit": lineage.git_commit,
                               "ci_url": lineage.ci_build_url})
        return self.get(group, version)

    def get(self, group: str, version: int) -> PackageVersion:
        with self._connection() as db:
            row = db.execute("SELECT * FROM packages WHERE grp = ? AND version = ?", (group, int(version))).fetchone()
            if row is None:
                existing = [r[0] for r in db.execute("SELECT version FROM packages WHERE grp = ? ORDER BY version",
                                                     (group,))]
        if row is None:
            listing = f"its versions are {existing}" if existing else "it has no versions yet"
            raise RegistryError(f"{group} has no version {version} ({listing}). Fix: pick an existing version "
                                f"(`python -m ci registry MODEL_DIR`).")
        return _package(row)

    def versions(self, group: str, status: str | None = None) -> list[PackageVersion]:
        query = "SELECT * FROM packages WHERE grp = ?" + (" AND status = ?" if status else "")
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY version DESC", (group, status) if status else (group,)).fetchall()
        return [_package(r) for r in rows]

    def events(self, group: str) -> list[dict]:
        """The audit trail of a group: registrations and status changes, oldest first, each with its hash."""
        with self._connection() as db:
            rows = db.execute("SELECT * FROM events WHERE grp = ? ORDER BY id", (group,)).fetchall()
        return [{**_event_record(r), "prev_hash": r["prev_hash"], "hash": r["hash"]} for r in rows]

    def _set_status(self, package: PackageVersion, status: str, *, by: str, note: str | None, expected: str,
                    git_commit: str | None = None, ci_url: str | None = None) -> PackageVersion:
        now = _now()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE packages SET status = ?, status_by = ?, status_at = ?, status_note = ? "
                "WHERE grp = ? AND version = ? AND status = ?",
                (status, by, now, note, package.group, package.version, expected),
            ).rowcount
            if not changed:
                raise RegistryError(f"{package.label} changed status while this command ran. Fix: look at "
                                    f"`python -m ci registry` and try again.")
            _append_event(db, {"group": package.group, "version": package.version, "at": now, "action": status,
                               "by": by, "note": note, "git_commit": git_commit, "ci_url": ci_url})
        return self.get(package.group, package.version)

    @contextmanager
    def _connection(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"cannot open the registry {self.path}: {exc}. Fix: check the path and its "
                                f"permissions (MODELOPS_HOME).") from exc
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.Error as exc:
            raise _translated(exc, self.path) from exc
        finally:
            db.close()

    @contextmanager
    def _transaction(self):
        with self._connection() as db:
            # IMMEDIATE takes the write lock up front: two registrations never read the same next version,
            # and two events never chain to the same previous one.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


class LocalHistory(History):
    """The events table of the local registry's database (append-only by trigger), with each group's head."""

    def __init__(self, registry: LocalRegistry):
        self.registry = registry

    def append(self, event: Event) -> Event:
        try:
            with self.registry._transaction() as db:
                seq = _append_event(db, event.content())
                row = db.execute("SELECT * FROM events WHERE grp = ? ORDER BY id DESC LIMIT 1",
                                 (event.group,)).fetchone()
        except RegistryError as exc:
            raise HistoryError(f"the event ({event.action} v{event.version} of {event.group}) could not be recorded: "
                               f"{exc}") from exc
        return _event(row, seq)

    def events(self, group: str) -> list[Event]:
        try:
            with self.registry._connection() as db:
                rows = db.execute("SELECT * FROM events WHERE grp = ? ORDER BY id", (group,)).fetchall()
        except RegistryError as exc:
            raise HistoryError(f"the history of {group} could not be read: {exc}") from exc
        return [_event(row, seq) for seq, row in enumerate(rows, 1)]

    def head(self, group: str) -> tuple[int, str] | None:
        with self.registry._connection() as db:
            row = db.execute("SELECT seq, hash FROM event_heads WHERE grp = ?", (group,)).fetchone()
        return (row["seq"], row["hash"]) if row else None


def _append_event(db: sqlite3.Connection, event: dict[str, Any]) -> int:
    """Add an event to its group's chain (inside the caller's IMMEDIATE transaction, so the chain has no fork).

    Returns:
        Its place in the group's history (1 for the first).
    """
    event = {name: event.get(name) for name in EVENT_FIELDS}
    event["package_id"] = event["package_id"] or _package_id(event["group"], event["version"])
    last = db.execute("SELECT hash FROM events WHERE grp = ? ORDER BY id DESC LIMIT 1", (event["group"],)).fetchone()
    prev_hash = last["hash"] if last else None
    digest = event_hash(event, prev_hash)
    db.execute("INSERT INTO events (grp, version, at, action, by, note, environment, package_id, git_commit, ci_url, "
               "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (event["group"], event["version"], event["at"], event["action"], event["by"], event["note"],
                event["environment"], event["package_id"], event["git_commit"], event["ci_url"], prev_hash, digest))
    (seq,) = db.execute("SELECT COUNT(*) FROM events WHERE grp = ?", (event["group"],)).fetchone()
    db.execute("INSERT INTO event_heads (grp, seq, hash) VALUES (?, ?, ?) "
               "ON CONFLICT (grp) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
               (event["group"], seq, digest))
    return seq


def _event(row: sqlite3.Row, seq: int) -> Event:
    return Event(**_event_record(row), prev_hash=row["prev_hash"], hash=row["hash"], seq=seq)


def _event_record(row: sqlite3.Row) -> dict[str, Any]:
    """An events row under the names the hash uses (columns added by version 2 are None before it ran)."""
    columns = row.keys()
    return {"group": row["grp"], "version": row["version"], "at": row["at"], "action": row["action"],
            "by": row["by"], "note": row["note"],
            **{name: row[name] if name in columns else None
               for name in ("environment", "package_id", "git_commit", "ci_url")}}


def _translated(exc: sqlite3.Error, path: Path) -> RegistryError:
    """A sqlite3 error as a RegistryError saying what to do (the transaction it hit was rolled back)."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        fix = ("another process held the registry's write lock for too long; wait for it to finish (or stop it) "
               "and try again")
    elif isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        fix = (f"{path} is damaged or not a registry; move it aside and restore it from a backup (the store's "
               f"artifacts are untouched)")
    elif "readonly" in text or "read-only" in text or "disk" in text or "full" in text:
        fix = f"make {path} and its folder writable, with free disk space"
    else:
        fix = "nothing was half-written (the transaction was rolled back); try again, and report it if it persists"
    return RegistryError(f"the registry {path} refused the operation: {text}. Fix: {fix}.")


def _package(row: sqlite3.Row) -> PackageVersion:
    return PackageVersion(
        group=row["grp"],
        version=row["version"],
        status=row["status"],
        package_id=_package_id(row["grp"], row["version"]),
        artifact_uri=row["artifact_uri"],
        artifact_sha256=row["artifact_sha256"],
        image=row["image"],
        container_version=row["container_version"],
        xgboost_version=row["xgboost_version"],
        hyperparameters=json.loads(row["hyperparameters"]),
        metrics=json.loads(row["metrics"]),
        data_sha256=row["data_sha256"],
        dataset_id=row["dataset_id"],
        lineage=Lineage(**json.loads(row["lineage"])),
        created_at=row["created_at"],
        training_job=row["training_job"],
        description=row["description"],
        status_by=row["status_by"],
        status_at=row["status_at"],
        status_note=row["status_note"],
        baselines=json.loads(row["baselines"]) if "baselines" in row.keys() and row["baselines"] else {},
    )


def _package_id(group: str, version: int) -> str:
    return f"local:{group}/{version}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
