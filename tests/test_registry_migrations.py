"""The local registry's schema versions: a database from before versioning migrates, and reads back unchanged.

``tests/fixtures/registry_v1.sql`` is a registry as shipped before the schema had a version (its SQL copied
verbatim, its rows written by that code); ``registry_v1.json`` is what that code's API returned for it.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from modelops.backends.local.registry import (
    MIGRATIONS,
    SCHEMA_VERSION,
    LocalRegistry,
    Migration,
    _run,
    event_hash,
    migrate,
)
from modelops.entities import APPROVED, PENDING, REJECTED
from modelops.errors import RegistryError
from tests.support.registry import register, training

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = json.loads((FIXTURES / "registry_v1.json").read_text())


def shipped_database(path: Path) -> Path:
    """A registry.db exactly as the unversioned code left it: its schema, its rows, user_version 0."""
    with sqlite3.connect(path) as db:
        db.executescript((FIXTURES / "registry_v1.sql").read_text())
        db.execute("PRAGMA journal_mode=WAL")  # as the shipped code set it on every connection
    db.close()
    return path


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def schema(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        db.close()


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [*db.iterdump(), f"user_version={db.execute('PRAGMA user_version').fetchone()[0]}"]
    finally:
        db.close()


def assert_chained(events: list[dict]) -> None:
    previous = None
    for event in events:
        assert event["prev_hash"] == previous
        assert event["hash"] == event_hash(event, previous)
        previous = event["hash"]


def test_migrations_are_numbered_one_by_one():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS) == 4
    assert all(m.why and m.steps for m in MIGRATIONS)


def test_the_shipped_database_migrates_and_every_version_reads_back_unchanged(tmp_path):
    path = shipped_database(tmp_path / "registry.db")
    assert user_version(path) == 0

    registry = LocalRegistry(path)

    assert registry.schema_found == 0 and user_version(path) == SCHEMA_VERSION
    for group, packages in SHIPPED["packages"].items():
        assert [p.version for p in registry.versions(group)] == [p["version"] for p in reversed(packages)]
        for expected in packages:
            package = asdict(registry.get(group, expected["version"]))
            # Field by field over what the shipped API returned: a field added since may be there too.
            for name, value in expected.items():
                if name == "lineage":
                    assert {k: package["lineage"][k] for k in value} == value
                else:
                    assert package[name] == value, (group, expected["version"], name)
    assert [p.version for p in registry.versions("abalone-model", APPROVED)] == [1]
    assert [p.version for p in registry.versions("abalone-model", REJECTED)] == [2]
    assert [p.version for p in registry.versions("churn-model", REJECTED)] == [1]
    assert registry.get("abalone-model", 2).status_note.startswith("worse than v1 — rmse 2.9")

    for group, expected_events in SHIPPED["events"].items():
        events = registry.events(group)
        assert [{k: e[k] for k in ("version", "at", "action", "by", "note")}
                for e in events] == expected_events
        assert {e["package_id"] for e in events} <= {f"local:{group}/{v}" for v in (1, 2, 3)}
        assert_chained(events)
    registered = [e for e in registry.events("abalone-model") if e["action"] == "registered"]
    assert [e["git_commit"] for e in registered] == ["a" * 40, "b" * 40, "c" * 40]  # from each version's lineage
    assert [e["ci_url"] for e in registered] == [None, "https://circleci.com/gh/o/r/42", None]

    # ... and it goes on working: new versions number on, their events chain on.
    assert register(registry).version == 4
    registry.approve("abalone-model", 4, by="erin")
    events = registry.events("abalone-model")
    assert [(e["version"], e["action"]) for e in events[-2:]] == [(4, "registered"), (4, APPROVED)]
    assert_chained(events)


def test_a_migrated_database_has_the_schema_of_a_new_one(tmp_path):
    LocalRegistry(tmp_path / "new.db")
    LocalRegistry(shipped_database(tmp_path / "old.db"))
    assert schema(tmp_path / "old.db") == schema(tmp_path / "new.db")
    assert user_version(tmp_path / "new.db") == SCHEMA_VERSION


def test_opening_again_changes_nothing(tmp_path):
    path = shipped_database(tmp_path / "registry.db")
    LocalRegistry(path)
    before = dump(path)
    assert LocalRegistry(path).schema_found == SCHEMA_VERSION
    assert dump(path) == before


def test_a_database_from_a_newer_modelops_is_refused_untouched(tmp_path):
    path = tmp_path / "registry.db"
    register(LocalRegistry(path))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = dump(path)
    with pytest.raises(RegistryError, match=rf"{path} has schema version {SCHEMA_VERSION + 1}, written by a newer "
                                            rf"modelops; this one knows versions up to {SCHEMA_VERSION}\. Nothing was "
                                            rf"changed\. Fix: upgrade modelops"):
        LocalRegistry(path)
    assert dump(path) == before


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path):
    path = shipped_database(tmp_path / "registry.db")
    before = dump(path)

    def breaks(db):
        raise sqlite3.OperationalError("disk I/O error")

    broken = (*MIGRATIONS, Migration(3, "fails halfway", (_run("CREATE TABLE half (x INTEGER);"), breaks)))
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, path, broken)
    db.close()
    assert dump(path) == before  # not even migration 1 and 2, which ran in the same transaction


def test_concurrent_openers_migrate_once_and_the_other_waits_for_the_result(tmp_path):
    path = shipped_database(tmp_path / "registry.db")
    migrating, waiting = threading.Event(), threading.Event()

    def slow(db):
        db.execute("CREATE TABLE migrated_by (who TEXT)")
        db.execute("INSERT INTO migrated_by VALUES (?)", (threading.current_thread().name,))
        migrating.set()
        # Hold the lock until the other opener is blocked on it, so the race is certain, not likely.
        assert waiting.wait(timeout=30), "the second opener never asked for the write lock"

    migrations = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "slow", (slow,)))
    found: dict[str, int] = {}
    errors: list[BaseException] = []

    def opener(name: str):
        db = sqlite3.connect(path, timeout=30, isolation_level=None)  # a connection of its own
        try:
            if name == "second":
                migrating.wait(timeout=30)  # arrives while the first is migrating
                db.set_trace_callback(lambda sql: sql.startswith("BEGIN IMMEDIATE") and waiting.set())
            found[name] = migrate(db, path, migrations)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=opener, args=(name,), name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and waiting.is_set()
    assert found == {"first": 0, "second": SCHEMA_VERSION + 1}  # the second read 0, waited, then found it done
    db = sqlite3.connect(path)
    assert db.execute("SELECT who FROM migrated_by").fetchall() == [("first",)]
    db.close()
    assert user_version(path) == SCHEMA_VERSION + 1


def _open_and_register(path, start, queue):
    from modelops.backends.local.registry import LocalRegistry

    start.wait(timeout=60)
    registry = LocalRegistry(path)
    queue.put((registry.schema_found, register(registry).version))


@pytest.mark.slow
def test_two_processes_open_the_shipped_database_at_once(tmp_path):
    path = shipped_database(tmp_path / "registry.db")
    context = multiprocessing.get_context("spawn")
    start, queue = context.Event(), context.Queue()
    workers = [context.Process(target=_open_and_register, args=(path, start, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    results = sorted([queue.get(timeout=120), queue.get(timeout=120)])
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert [found for found, _ in results] == [0, SCHEMA_VERSION]  # exactly one of them migrated
    assert sorted(version for _, version in results) == [4, 5]
    registry = LocalRegistry(path)
    assert [p.version for p in registry.versions("abalone-model")] == [5, 4, 3, 2, 1]
    assert_chained(registry.events("abalone-model"))  # no fork: each event chains to the one before


def test_new_events_record_the_package_and_its_commit_and_chain(tmp_path):
    registry = LocalRegistry(tmp_path / "registry.db")
    register(registry)
    registry.approve("abalone-model", 1, by="alice", note="ok")
    register(registry, training=training("job-2", "b" * 64))
    events = registry.events("abalone-model")
    assert [(e["version"], e["action"], e["by"]) for e in events] == [
        (1, "registered", "feature"), (1, APPROVED, "alice"), (2, "registered", "feature")]
    assert [e["package_id"] for e in events] == ["local:abalone-model/1"] * 2 + ["local:abalone-model/2"]
    assert [e["git_commit"] for e in events] == ["c" * 40, None, "c" * 40]
    assert events[0]["prev_hash"] is None
    assert_chained(events)
    assert registry.get("abalone-model", 1).status == APPROVED and registry.get("abalone-model", 2).status == PENDING


def test_events_are_append_only(tmp_path):
    path = tmp_path / "registry.db"
    register(LocalRegistry(path))
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="registry events are append-only"):
        db.execute("UPDATE events SET by = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="registry events are append-only"):
        db.execute("DELETE FROM events")
    db.close()


def test_an_edited_event_breaks_the_chain_where_it_was_edited(tmp_path):
    path = tmp_path / "registry.db"
    registry = LocalRegistry(path)
    register(registry)
    registry.approve("abalone-model", 1, by="alice")
    registry.reject("abalone-model", 1, by="bob")
    db = sqlite3.connect(path)  # someone with the file drops the guard and rewrites who approved
    db.execute("DROP TRIGGER events_are_append_only_update")
    db.execute("UPDATE events SET by = 'mallory' WHERE action = 'Approved'")
    db.commit()
    db.close()
    events = registry.events("abalone-model")
    broken = [i for i, e in enumerate(events) if e["hash"] != event_hash(e, e["prev_hash"])]
    assert broken == [1]


def test_sqlite_errors_are_registry_errors_with_a_fix(tmp_path):
    not_a_database = tmp_path / "registry.db"
    not_a_database.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(RegistryError, match=r"registry\.db refused the operation: file is not a database\. Fix: .* "
                                            r"is damaged or not a registry"):
        LocalRegistry(not_a_database)

    path = tmp_path / "locked.db"
    registry = LocalRegistry(path)
    registry.timeout = 0.1
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with pytest.raises(RegistryError, match=r"database is locked\. Fix: another process held the registry's "
                                                r"write lock"):
            register(registry)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert registry.versions("abalone-model") == []  # nothing half-written
    assert register(registry).version == 1
