"""Watching a SageMaker job or endpoint until it ends: one loop for every Describe* poll of this backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from modelops.errors import ModelOpsError

Described = TypeVar("Described")

#: The statuses in which a training, processing, transform or tuning job is still running; any other (Completed,
#: Failed, Stopped, or Deleting) ends the wait.
JOB_RUNNING = ("InProgress", "Stopping")

_NOTHING_SEEN = object()


def wait_until_ended(describe: Callable[[], Described], *, name: str, status: Callable[[Described], str],
                     timeout: float, poll_seconds: float, log: Callable[[str], object],
                     timed_out: Callable[[Described], ModelOpsError], ended: Callable[[str], bool] | None = None,
                     stop: Callable[[], object] | None = None,
                     progress: Callable[[Described], Hashable] | None = None,
                     report: Callable[[Described], str] | None = None) -> Described:
    """Describe the resource until its status has ended, logging each change of progress once.

    The first describe comes at once and a poll that finds it ended returns without sleeping; a resource still
    running after ``timeout`` seconds is asked to ``stop`` (best effort: a failure to stop is ignored, the timeout
    is what the caller must see) and ``timed_out(described)`` is raised.

    Args:
        describe: one Describe*/List* call, its botocore errors already translated to the caller's error.
        name: the resource, for the default log line ``<name>: <status>``.
        status: the status of what ``describe`` returned.
        timeout: seconds from the call past which a running resource is given up on.
        poll_seconds: the sleep between two describes.
        log: where the progress lines go.
        timed_out: the error to raise on the deadline, from the last description.
        ended: whether a status means the resource no longer changes (default: a job's, not in ``JOB_RUNNING``).
        stop: asks AWS to stop the resource so it costs nothing more (None: nothing to stop).
        progress: what counts as a change worth a line (default: the status).
        report: the line logged on a change (default: ``<name>: <status>``).

    Returns:
        The last description: the one whose status has ended.

    Raises:
        ModelOpsError: what ``timed_out`` builds; whatever ``describe`` raises.
    """
    ended = ended or (lambda status: status not in JOB_RUNNING)
    progress = progress or status
    report = report or (lambda described: f"{name}: {status(described)}")
    deadline = time.monotonic() + timeout
    seen = _NOTHING_SEEN
    while True:
        described = describe()
        if (current := progress(described)) != seen:
            seen = current
            log(report(described))
        if ended(status(described)):
            return described
        if time.monotonic() > deadline:
            if stop is not None:
                try:
                    stop()
                except Exception:  # best effort: the timeout error that follows is what the caller must see
                    pass
            raise timed_out(described)
        time.sleep(poll_seconds)
