"""The one loop that watches SageMaker jobs and endpoints: changes logged once, the deadline, the best-effort stop."""

from __future__ import annotations

import botocore.exceptions
import pytest

from modelops.backends.sagemaker import polling
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.errors import TrainingFailed


class Clock:
    """Stands in for the module's ``time``: ``sleep`` moves ``monotonic`` on instead of waiting."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(polling, "time", clock)
    return clock


def answers(*statuses: str, secondary: str = ""):
    """A describe that answers these statuses in turn, then the last one forever; counts its calls."""
    described = [{"Status": s, "Secondary": secondary} for s in statuses]

    def describe() -> dict:
        describe.calls += 1
        return described[min(describe.calls, len(described)) - 1]

    describe.calls = 0
    return describe


def wait(describe, log, **overrides):
    arguments = dict(name="job-1", status=lambda job: job["Status"], timeout=60, poll_seconds=10, log=log,
                     timed_out=lambda job: TrainingFailed(f"job-1 was still {job['Status']}"))
    return wait_until_ended(describe, **{**arguments, **overrides})


def test_each_status_change_is_logged_once_and_the_ended_description_returned(clock):
    lines = []
    describe = answers("InProgress", "InProgress", "Stopping", "Stopping", "Stopped")
    assert wait(describe, lines.append) == {"Status": "Stopped", "Secondary": ""}
    assert lines == ["job-1: InProgress", "job-1: Stopping", "job-1: Stopped"]
    assert describe.calls == 5 and clock.slept == [10, 10, 10, 10]


def test_a_resource_ended_at_the_first_describe_is_returned_without_sleeping(clock):
    lines = []
    assert wait(answers("Completed"), lines.append, timeout=0)["Status"] == "Completed"
    assert lines == ["job-1: Completed"] and clock.slept == []


def test_progress_decides_what_is_a_change_and_report_writes_the_line(clock):
    lines = []
    describe = answers("InProgress", "InProgress", "Completed", secondary="Training")
    assert wait(describe, lines.append, progress=lambda job: job["Secondary"],
                report=lambda job: f"job-1: {job['Status']} / {job['Secondary']}")["Status"] == "Completed"
    assert lines == ["job-1: InProgress / Training"]  # the status changed, the progress did not
    assert describe.calls == 3


def test_on_the_deadline_the_resource_is_stopped_and_the_callers_error_raised(clock):
    stopped, lines = [], []
    describe = answers("InProgress")
    with pytest.raises(TrainingFailed, match="^job-1 was still InProgress$"):
        wait(describe, lines.append, timeout=30, stop=lambda: stopped.append("job-1"))
    # describes at 0, 10, 20 and 30 s are within the deadline; the one at 40 s is past it
    assert describe.calls == 5 and clock.slept == [10] * 4
    assert stopped == ["job-1"] and lines == ["job-1: InProgress"]


def test_a_stop_that_fails_does_not_hide_the_timeout(clock):
    def refuse():
        raise botocore.exceptions.ClientError({"Error": {"Code": "ValidationException", "Message": "no"}},
                                              "StopTrainingJob")

    with pytest.raises(TrainingFailed, match="still InProgress"):
        wait(answers("InProgress"), lambda line: None, timeout=5, stop=refuse)
    assert clock.slept == [10]


def test_without_stop_the_deadline_only_raises(clock):
    describe = answers("Creating")
    with pytest.raises(TrainingFailed, match="still Creating"):
        wait(describe, lambda line: None, ended=lambda status: status == "InService", timeout=15)
    assert describe.calls == 3 and clock.slept == [10, 10]
