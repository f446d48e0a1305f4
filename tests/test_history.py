"""The history: what served when, answered from events; the hash chain, and every way of breaking it detected.

The answers and the chain check are pure functions over a list of events (``modelops.release.history``); the stores are
one contract over both backends: the local registry's SQLite and S3 objects on moto, each tampered with the way
someone with write access to it would (an edited row or object, a deleted one, two swapped, the newest gone).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from modelops.entities import (
    APPROVED,
    DEPLOYED,
    GATE_PASSED,
    PROMOTED,
    REGISTERED,
    ROLLED_BACK,
    STOPPED,
    Event,
    event_hash,
)
from modelops.errors import ConfigError, HistoryTampered
from modelops.release.history import check_chain, history_report, parse_instant, served_at, verify_history
from tests.support.contract import backend_for
from tests.support.registry import register

MODEL = "abalone-model"


def event(minute: int, action: str, version: int, env: str | None = None, by: str = "alice") -> Event:
    return Event(MODEL, version, f"2026-12-01T10:{minute:02d}:00.000+00:00", action, by=by, environment=env,
                 package_id=f"local:{MODEL}/{version}", git_commit="c" * 40, ci_url="https://circleci.com/b/1")


def chained(events: list[Event]) -> list[Event]:
    out, previous = [], None
    for seq, e in enumerate(events, 1):
        out.append(e.chained(previous, seq))
        previous = out[-1].hash
    return out


STORY = chained([
    event(0, REGISTERED, 1), event(1, APPROVED, 1), event(2, DEPLOYED, 1, "staging"),
    event(3, GATE_PASSED, 1, "staging"), event(4, PROMOTED, 1, "production", by="bob"),
    event(10, REGISTERED, 2), event(11, APPROVED, 2), event(12, DEPLOYED, 2, "staging"),
    event(13, GATE_PASSED, 2, "staging"), event(14, PROMOTED, 2, "production", by="carol"),
    event(20, ROLLED_BACK, 1, "production", by="dave"), event(30, STOPPED, 1, "production", by="erin"),
])


def at(text: str) -> datetime:
    return parse_instant(text)


def test_which_version_served_at_an_instant():
    assert served_at(STORY, "production", at("2026-12-01T10:03Z")).version is None  # before the first promotion
    first = served_at(STORY, "production", at("2026-12-01T10:04Z"))  # the promotion's own instant counts
    assert (first.version, first.since.by, first.until.action) == (1, "bob", PROMOTED)
    assert served_at(STORY, "production", at("2026-12-01T10:15Z")).version == 2
    rolled = served_at(STORY, "production", at("2026-12-01T10:25:30+00:00"))
    assert (rolled.version, rolled.since.action, rolled.since.by) == (1, ROLLED_BACK, "dave")
    stopped = served_at(STORY, "production", at("2026-12-01T11:00Z"))
    assert stopped.version is None and stopped.since.action == STOPPED and stopped.until is None
    assert served_at(STORY, "staging", at("2026-12-01T11:00Z")).version == 2  # staging was never stopped
    # An offset is an instant like any other: 11:14 in UTC+1 is 10:14 UTC.
    assert served_at(STORY, "production", at("2026-12-01T11:14:00+01:00")).version == 2


def test_the_answer_reads_as_a_sentence_with_who_when_commit_and_ci_job():
    text = served_at(STORY, "production", at("2026-12-01T10:15Z")).describe(MODEL)
    assert text == ("production: abalone-model v2 served at 2026-12-01T10:15:00Z (package local:abalone-model/2; "
                    "since promoted by carol at 2026-12-01T10:14:00.000+00:00, commit cccccccccccc, CI "
                    "https://circleci.com/b/1); until 2026-12-01T10:20:00.000+00:00 (rolled-back v1)")
    before = served_at(STORY, "production", at("2026-12-01T09:00Z")).describe(MODEL)
    assert before.startswith("production: nothing had been deployed at 2026-12-01T09:00:00Z (its first deployment")


def test_instants_in_iso_8601_with_or_without_an_offset():
    assert parse_instant("2026-12-01T10:00Z") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-12-01T10:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)  # no offset: UTC
    assert parse_instant("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_instant("2026-12-01T12:00+02:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"'yesterday' is not an instant\. Fix: write it in ISO 8601"):
        parse_instant("yesterday")


def test_an_intact_chain_and_each_way_of_breaking_it():
    assert check_chain(MODEL, STORY, (12, STORY[-1].hash)).intact

    edited = [*STORY[:4], Event(**{**STORY[4].to_json(), "by": "mallory"}), *STORY[5:]]
    [problem] = check_chain(MODEL, edited, (12, STORY[-1].hash)).problems
    assert problem.startswith("event #5 (2026-12-01T10:04:00.000+00:00 promoted v1) was changed after it was written")

    # Deleted from the middle: S3 keys keep their numbers (a gap); SQLite rows are renumbered (a broken link).
    [gap] = check_chain(MODEL, [*STORY[:5], *STORY[6:]], (12, STORY[-1].hash)).problems
    assert gap == "event #6 is missing (the log goes from #5 to #7): deleted"
    renumbered = [Event(**{**e.to_json(), "seq": i}) for i, e in enumerate([*STORY[:5], *STORY[6:]], 1)]
    [link] = check_chain(MODEL, renumbered, (11, STORY[-1].hash)).problems
    assert link.startswith("event #6 (2026-12-01T10:11:00.000+00:00 Approved v2) does not follow event #5: an event "
                           "between them was deleted, or events were reordered")

    swapped = [Event(**{**e.to_json(), "seq": i}) for i, e in enumerate([*STORY[:5], STORY[6], STORY[5],
                                                                        *STORY[7:]], 1)]
    problems = check_chain(MODEL, swapped, (12, STORY[-1].hash)).problems
    assert len(problems) == 3 and all("does not follow" in p for p in problems)

    # The newest events gone: the chain alone is intact, the head recorded apart says what is missing.
    tail = check_chain(MODEL, STORY[:10], (12, STORY[-1].hash))
    assert tail.problems == (f"the log ends at #10, but its head (recorded apart from it) is #12 "
                             f"({STORY[-1].hash[:12]}): the newest events were deleted",)
    assert check_chain(MODEL, STORY[:10], None).intact  # without a head, nothing tells


def test_the_chain_is_the_registrys_own_hash_form():
    """One verifier for both logs: an event's hash is the one migration 2 gave the registry's events."""
    first = STORY[0]
    assert first.hash == event_hash({**first.content()}, None) and first.prev_hash is None
    assert STORY[1].prev_hash == first.hash


# -- the stores -------------------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "sagemaker"])
def backend(request, tmp_path):
    return backend_for(request, tmp_path)


def story(backend) -> list[Event]:
    """Registration and approval through the registry (which records them), then endpoint events appended."""
    register(backend.registry)
    backend.registry.approve(MODEL, 1, by="alice", note="looks right")
    package_id = backend.registry.get(MODEL, 1).package_id
    for minute, action, env in ((2, DEPLOYED, "staging"), (3, GATE_PASSED, "staging"), (4, PROMOTED, "production")):
        backend.history.append(Event(MODEL, 1, f"2099-01-01T00:{minute:02d}:00.000+00:00", action, by="bob",
                                     environment=env, package_id=package_id))
    return backend.history.events(MODEL)


def test_the_registry_and_the_endpoints_append_to_one_chain(backend):
    events = story(backend)
    assert [(e.seq, e.action, e.environment) for e in events] == [
        (1, REGISTERED, None), (2, APPROVED, None), (3, DEPLOYED, "staging"), (4, GATE_PASSED, "staging"),
        (5, PROMOTED, "production")]
    assert events[1].by == "alice" and events[1].note == "looks right"
    assert events[0].git_commit == "c" * 40  # the commit the version was trained from
    assert {e.package_id for e in events} == {backend.registry.get(MODEL, 1).package_id}
    assert backend.history.head(MODEL) == (5, events[-1].hash)
    assert verify_history(backend.history, MODEL).describe().startswith(f"{MODEL}: history intact: 5 events")
    report = history_report(backend.history, MODEL, env_name="production", instant="2099-01-01T00:05Z")
    assert [s.version for s in report.served] == [1] and [e.action for e in report.events] == [PROMOTED]
    assert backend.history.events("no-such-model") == [] and backend.history.head("no-such-model") is None


def test_concurrent_appends_never_fork_the_chain(backend):
    story(backend)
    errors = []

    def append(i: int) -> None:
        try:
            backend.history.append(Event(MODEL, 1, f"2099-01-01T01:00:{i:02d}.000+00:00", STOPPED, by=f"t{i}",
                                         environment="staging"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    events = backend.history.events(MODEL)
    assert [e.seq for e in events] == list(range(1, 10)) and len({e.by for e in events[5:]}) == 4
    assert check_chain(MODEL, events, backend.history.head(MODEL)).intact


def tamper(backend, how: str) -> None:
    """What someone with write access to the store does to it, bypassing modelops."""
    if backend.name == "local":
        db = sqlite3.connect(backend.home / "registry.db")
        db.execute("DROP TRIGGER events_are_append_only_update")
        db.execute("DROP TRIGGER events_are_append_only_delete")
        ids = [row[0] for row in db.execute("SELECT id FROM events WHERE grp = ? ORDER BY id", (MODEL,))]
        if how == "edit":
            db.execute("UPDATE events SET by = 'mallory' WHERE id = ?", (ids[1],))
        elif how == "delete":
            db.execute("DELETE FROM events WHERE id = ?", (ids[2],))
        elif how == "reorder":  # swap two events' contents, ids kept
            rows = {i: db.execute("SELECT * FROM events WHERE id = ?", (i,)).fetchone() for i in ids[1:3]}
            columns = [c[1] for c in db.execute("PRAGMA table_info(events)") if c[1] != "id"]
            for target, source in ((ids[1], ids[2]), (ids[2], ids[1])):
                values = dict(zip(["id", *columns], rows[source]))
                db.execute(f"UPDATE events SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                           [values[c] for c in columns] + [target])
        elif how == "drop newest":
            db.execute("DELETE FROM events WHERE id = ?", (ids[-1],))
        db.commit()
        db.close()
        return
    s3, bucket = backend.store.s3, backend.store.bucket
    key = f"modelops/{MODEL}/history/{{:08d}}.json".format
    body = {n: json.loads(s3.get_object(Bucket=bucket, Key=key(n))["Body"].read()) for n in (2, 3, 5)}
    if how == "edit":
        s3.put_object(Bucket=bucket, Key=key(2), Body=json.dumps({**body[2], "by": "mallory"}).encode())
    elif how == "delete":
        s3.delete_object(Bucket=bucket, Key=key(3))
    elif how == "reorder":
        s3.put_object(Bucket=bucket, Key=key(2), Body=json.dumps(body[3]).encode())
        s3.put_object(Bucket=bucket, Key=key(3), Body=json.dumps(body[2]).encode())
    elif how == "drop newest":
        s3.delete_object(Bucket=bucket, Key=key(5))


@pytest.mark.parametrize("how, expected", [
    ("edit", r"event #2 \(.* Approved v1\) was changed after it was written"),
    ("delete", r"event #3 (is missing|\(.* does not follow event #2: an event between them was deleted)"),
    ("reorder", r"event #2 \(.*\) (was changed|does not follow the start|does not follow event #1)"),
    ("drop newest", r"the log ends at #4, but its head \(recorded apart from it\) is #5 .*: the newest events were "
                    r"deleted"),
])
def test_verify_names_where_the_history_was_altered(backend, how, expected):
    story(backend)
    tamper(backend, how)
    with pytest.raises(HistoryTampered, match=rf"{MODEL}: history BROKEN: .*{expected}.*Fix: restore the history "
                                               r"from a backup") as broken:
        verify_history(backend.history, MODEL)
    assert broken.value.exit_code == 8


def test_ci_history_answers_at_an_instant_lists_the_events_and_verify_exits_8_on_a_broken_chain(home):
    from click.testing import CliRunner

    from ci.cli import main
    from modelops.backends.local import LocalBackend

    backend = LocalBackend(home)
    story(backend)
    runner = CliRunner()
    answer = runner.invoke(main, ["history", "abalone_model", "--env", "production", "--at", "2099-01-01T00:04:30Z"])
    assert answer.exit_code == 0, answer.output
    lines = answer.output.splitlines()
    assert lines[0] == "abalone-model at 2099-01-01T00:04:30Z:"
    assert lines[1].startswith("  production: abalone-model v1 served at 2099-01-01T00:04:30Z (package "
                               "local:abalone-model/1; since promoted by bob at 2099-01-01T00:04:00.000+00:00")
    assert "history intact: 5 events" in answer.output and " promoted " in lines[-1] and len(lines) == 7
    data = json.loads(runner.invoke(main, ["history", "abalone_model", "--json", "--at", "2099-01-01T00:03Z"]).output)
    assert [(s["environment"], s["version"]) for s in data["served"]] == [("staging", 1), ("production", None)]
    assert [e["action"] for e in data["events"]] == [REGISTERED, APPROVED, DEPLOYED, GATE_PASSED, PROMOTED]
    assert data["chain"]["intact"] and data["chain"]["head"] == data["events"][-1]["hash"]
    assert runner.invoke(main, ["history", "abalone_model", "--verify"]).exit_code == 0
    bad = runner.invoke(main, ["history", "abalone_model", "--at", "tomorrow"])
    assert bad.exit_code == 2 and "Fix: write it in ISO 8601" in bad.output

    tamper(backend, "edit")
    broken = runner.invoke(main, ["history", "abalone_model", "--verify"])
    assert broken.exit_code == 8 and "history BROKEN: event #2" in broken.output
    assert "Traceback" not in broken.output and len(broken.output.strip().splitlines()) == 1
    warned = runner.invoke(main, ["history", "abalone_model"])  # still answers, and says it may rest on altered events
    assert warned.exit_code == 0 and "warning: abalone-model: history BROKEN" in warned.output
