"""What served when: a model's events read back, checked link by link, and asked about an instant.

Both backends store the same events (``modelops.backends.base.Event``), chained by the same hash; everything
here works on the list ``History.events`` returns, so it is written once. An environment's version at an
instant is the version of its newest deployed/promoted/rolled-back event at or before that instant, unless a
stop came after it. Endpoint events are written by ``modelops.release.deploy`` and ``modelops.release.gate`` once the
change they record has happened, so the history never claims a switch that failed.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelops.backends.base import History
from modelops.config import STAGING
from modelops.entities import GATE_FAILED, GATE_PASSED, SERVES, STOPPED, Event, event_hash
from modelops.errors import ConfigError, HistoryTampered

#: Who did it, when nobody says: CircleCI's user (who pushed or approved), else the local user.
ACTOR_ENV = "CIRCLE_USERNAME"


def actor(by: str | None = None) -> str:
    """Who an event is recorded as: ``by``, else ``$CIRCLE_USERNAME``, else the user running this."""
    return (by or "").strip() or os.environ.get(ACTOR_ENV) or getpass.getuser()


def now() -> str:
    """An event's time: UTC, ISO 8601 with milliseconds (what both registries write)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def checkout_commit(folder: Path | None) -> str | None:
    """The commit of the code doing something now: CircleCI's ``$CIRCLE_SHA1``, else the checkout's HEAD."""
    if os.environ.get("CIRCLE_SHA1"):
        return os.environ["CIRCLE_SHA1"]
    if folder is None:
        return None
    from modelops.review.lineage import git, repository_root

    root = repository_root(Path(folder))
    return (git("rev-parse", "--verify", "--quiet", "HEAD", cwd=root, check=False) or None) if root else None


def event_for(model: str, action: str, *, version: int, folder: Path | None = None, env_name: str | None = None,
              package_id: str | None = None, by: str | None = None, note: str | None = None) -> Event:
    """An event about ``model`` done now from the checkout holding ``folder`` (its commit; the CI job's URL in CI)."""
    return Event(group=model, version=int(version), at=now(), action=action, by=actor(by), note=note,
                 environment=env_name, package_id=package_id, git_commit=checkout_commit(folder),
                 ci_url=os.environ.get("CIRCLE_BUILD_URL"))


# -- what served when -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What an environment served at an instant, and the event that put it there."""

    env_name: str
    at: datetime
    version: int | None  # None: nothing served (never deployed before that instant, or stopped)
    package_id: str | None
    since: Event | None  # the event after which this was so (None: nothing had happened there yet)
    until: Event | None  # the next event that changed it (None: still so at the newest event)

    def describe(self, model: str) -> str:
        when = f"at {format_instant(self.at)}"
        if self.since is None:
            first = f" (its first deployment: {self.until.at}, {self.until.action} v{self.until.version})" \
                if self.until else ""
            return f"{self.env_name}: nothing had been deployed {when}{first}"
        who = f"{self.since.action} by {self.since.by or '?'} at {self.since.at}"
        provenance = "".join(f", {label} {value}" for label, value in (
            ("commit", (self.since.git_commit or "")[:12]), ("CI", self.since.ci_url)) if value)
        after = f"; until {self.until.at} ({self.until.action} v{self.until.version})" if self.until else ""
        if self.version is None:
            return f"{self.env_name}: nothing served {when} ({who}{provenance}){after}"
        return (f"{self.env_name}: {model} v{self.version} served {when} (package {self.package_id}; since "
                f"{who}{provenance}){after}")

    def to_json(self) -> dict:
        return {"environment": self.env_name, "at": format_instant(self.at), "version": self.version,
                "package_id": self.package_id, "since": self.since.to_json() if self.since else None,
                "until": self.until.to_json() if self.until else None}


def served_at(events: list[Event], env_name: str, at: datetime) -> Served:
    """What ``env_name`` served at the instant ``at`` (timezone-aware), from a model's events in order."""
    changes = [e for e in events if e.environment == env_name and (e.action in SERVES or e.action == STOPPED)]
    since = until = None
    for event in changes:
        if parse_instant(event.at) <= at:
            since = event
        else:
            until = event
            break
    serving = since is not None and since.action in SERVES
    return Served(env_name, at, since.version if serving else None, since.package_id if serving else None, since,
                  until)


def latest_gate(events: list[Event], package_id: str) -> Event | None:
    """The newest promotion-gate event for ``package_id`` on staging (None: the gate never ran for it)."""
    gates = [e for e in events if e.environment == STAGING and e.package_id == package_id
             and e.action in (GATE_PASSED, GATE_FAILED)]
    return gates[-1] if gates else None


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_instant(text: str) -> datetime:
    """An instant from ISO 8601 text (``2026-12-01T10:00Z``, ``...+02:00``, ``2026-12-01``), as UTC.

    A time without an offset is taken as UTC (events are recorded in UTC); a date alone means its midnight UTC.

    Raises:
        ConfigError: not an ISO 8601 date or time.
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value + ("T00:00" if _DATE_ONLY.match(value) else ""))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an instant. Fix: write it in ISO 8601, e.g. 2026-12-01T10:00Z "
                          f"(UTC) or 2026-12-01T11:00+01:00.") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def format_instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the chain ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of checking a model's events link by link, and against the head recorded apart from them."""

    group: str
    events: int
    head: str | None  # the newest event's hash
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.intact:
            return (f"{self.group}: history intact: {self.events} events, each chained to the one before"
                    + (f" (newest {self.head[:12]})" if self.head else ""))
        return f"{self.group}: history BROKEN: " + "; ".join(self.problems)


def check_chain(group: str, events: list[Event], head: tuple[int, str] | None) -> ChainCheck:
    """Check that every event is as written, follows the one before it, and that none is missing at either end.

    Args:
        group: the model.
        events: its events as stored, in the stored order (``seq`` is each one's place: key or row order).
        head: the (seq, hash) of the newest event as the backend recorded it apart from the log.

    Returns:
        The check, with one sentence per problem, naming the event (its place, time, action and version).
    """
    problems = []
    previous: Event | None = None
    for event in events:
        expected = previous.seq + 1 if previous else 1
        label = f"event #{event.seq} ({event.at} {event.action} v{event.version})"
        if event.seq != expected:
            gone = f"#{expected}" + (f"-#{event.seq - 1}" if event.seq - 1 > expected else "")
            problems.append(f"event {gone} is missing (the log goes from #{expected - 1} to #{event.seq}): deleted"
                            if event.seq > expected else f"{label} is out of place (after #{expected - 1})")
        if event.hash != event_hash(event.content(), event.prev_hash):
            problems.append(f"{label} was changed after it was written: its content no longer has its hash")
        wanted = previous.hash if previous else None
        if event.prev_hash != wanted and event.seq == expected:
            where = f"event #{previous.seq}" if previous else "the start of the log"
            problems.append(f"{label} does not follow {where}: an event between them was deleted, or events were "
                            f"reordered")
        previous = event
    newest = (previous.seq, previous.hash) if previous else None
    if head is not None and newest != head:
        if newest is None or head[0] > newest[0]:
            have = f"#{newest[0]}" if newest else "nothing"
            which = "the newest events were deleted" if not problems else "events were deleted"
            problems.append(f"the log ends at {have}, but its head (recorded apart from it) is #{head[0]} "
                            f"({head[1][:12]}): {which}")
        else:
            problems.append(f"the newest event #{newest[0]} ({newest[1][:12]}) is not the head recorded apart from "
                            f"the log (#{head[0]}, {head[1][:12]}): the log was rewritten")
    return ChainCheck(group, len(events), previous.hash if previous else None, tuple(problems))


def verify_history(history: History, group: str) -> ChainCheck:
    """Check a model's history as stored.

    Raises:
        HistoryTampered: the chain is broken (the message names every problem).
        HistoryError: it could not be read.
    """
    check = check_chain(group, history.events(group), history.head(group))
    if not check.intact:
        raise HistoryTampered(check.describe() + ". Fix: restore the history from a backup (local: registry.db; "
                              "SageMaker: the bucket's object versions) and find out who changed it.")
    return check


# -- one answer -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryReport:
    """A model's history as ``python -m ci history`` answers it: what served at the instant, the events, the chain."""

    model: str
    at: datetime
    served: tuple[Served, ...]  # one per environment asked about
    events: tuple[Event, ...]  # those of the environment asked about (all of them when none was)
    chain: ChainCheck

    def to_json(self) -> dict:
        return {"model": self.model, "at": format_instant(self.at), "served": [s.to_json() for s in self.served],
                "events": [e.to_json() for e in self.events],
                "chain": {"intact": self.chain.intact, "events": self.chain.events, "head": self.chain.head,
                          "problems": list(self.chain.problems)}}


def history_report(history: History, model: str, *, env_name: str | None = None,
                   instant: str | datetime | None = None) -> HistoryReport:
    """What ``env_name`` (or each environment) served at ``instant`` (default: now), and the events behind it.

    Raises:
        ConfigError: ``instant`` is not an ISO 8601 instant.
        HistoryError: the history could not be read.
    """
    from modelops.config import ENVIRONMENT_NAMES

    at = parse_instant(instant) if isinstance(instant, str) else (instant or datetime.now(UTC))
    events = history.events(model)
    chain = check_chain(model, events, history.head(model))
    envs = [env_name] if env_name else list(ENVIRONMENT_NAMES)
    shown = [e for e in events if env_name is None or e.environment == env_name]
    return HistoryReport(model, at, tuple(served_at(events, env, at) for env in envs), tuple(shown), chain)
