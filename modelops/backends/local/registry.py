"""Local model registry: package groups and versions in SQLite under the local backend's home."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.backends.base import PENDING, PackageVersion, Registry, TrainingResult
from modelops.errors import RegistryError
from modelops.lineage import Lineage

SCHEMA = """
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


class LocalRegistry(Registry):
    """SQLite in WAL mode; every write is one transaction, so a crash leaves no half-written version."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._connection() as db:
            db.executescript(SCHEMA)

    def register(self, group: str, *, training: TrainingResult, metrics: dict[str, Any], data_sha256: str,
                 dataset_id: str, lineage: Lineage, description: str = "",
                 report: dict[str, Any] | None = None) -> PackageVersion:
        now = _now()
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO groups (name, created_at) VALUES (?, ?)", (group, now))
            (version,) = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM packages WHERE grp = ?",
                                    (group,)).fetchone()
            db.execute(
                """INSERT INTO packages (grp, version, status, created_at, description, training_job, artifact_uri,
                       artifact_sha256, image, container_version, xgboost_version, hyperparameters, metrics, report,
                       data_sha256, dataset_id, lineage, tree_hash)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (group, version, PENDING, now, description, training.job_name, training.artifact_uri,
                 training.artifact_sha256, training.image, training.container_version, training.xgboost_version,
                 _dumps(training.hyperparameters), _dumps(metrics), _dumps(report) if report else None, data_sha256,
                 dataset_id, _dumps(lineage.to_json()), lineage.tree_hash),
            )
            db.execute("INSERT INTO events (grp, version, at, action, by, note) VALUES (?, ?, ?, 'registered', ?, ?)",
                       (group, version, now, lineage.branch, training.job_name))
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
        """The audit trail of a group: registrations and status changes, oldest first."""
        with self._connection() as db:
            rows = db.execute("SELECT version, at, action, by, note FROM events WHERE grp = ? ORDER BY id",
                              (group,)).fetchall()
        return [dict(r) for r in rows]

    def _set_status(self, package: PackageVersion, status: str, *, by: str, note: str | None,
                    expected: str) -> PackageVersion:
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
            db.execute("INSERT INTO events (grp, version, at, action, by, note) VALUES (?, ?, ?, ?, ?, ?)",
                       (package.group, package.version, now, status, by, note))
        return self.get(package.group, package.version)

    @contextmanager
    def _connection(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the registry {self.path}: {exc}. Fix: check the path and permissions "
                                f"(MODELOPS_HOME).") from exc
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.Error as exc:
            raise RegistryError(f"the registry {self.path} refused the operation: {exc}.") from exc
        finally:
            db.close()

    @contextmanager
    def _transaction(self):
        with self._connection() as db:
            # IMMEDIATE takes the write lock up front: two registrations never read the same next version.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _package(row: sqlite3.Row) -> PackageVersion:
    return PackageVersion(
        group=row["grp"],
        version=row["version"],
        status=row["status"],
        package_id=f"local:{row['grp']}/{row['version']}",
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
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
