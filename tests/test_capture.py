"""Data capture: SageMaker's record format and S3 layout, and the local writer's sampling, rotation and bounds.

The expected record is the shape of aws/sagemaker-python-sdk's tests/data/monitor/capture.jsonl and
captured-data.jsonl (the records SageMaker's data capture writes); the object layout is the one its examples
read (``<prefix>/<endpoint>/AllTraffic/2020/03/11/12/32-18-648-<uuid>.jsonl``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from modelops.backends.local import LocalBackend
from modelops.entities import DataCapture
from modelops.monitoring.monitor import read_capture
from modelops.serving.capture import CaptureWriter, capture_record, capture_uri, file_name, hour_folder
from tests.support import monitoring as tiny

pytestmark = pytest.mark.slow  # real endpoint servers writing capture files

#: One record of the SDK's sample capture file (eventId and time as SageMaker writes them).
AWS_RECORD = {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                                "data": "9,45,45,42,7,5,0", "encoding": "CSV"},
                              "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                                 "data": "0.302709460258", "encoding": "CSV"}},
              "eventMetadata": {"eventId": "74b0dd56-e7c8-368e-94b1-14a138a96000",
                                "inferenceTime": "2019-11-24T07:30:50Z"},
              "eventVersion": "0"}
AT = datetime(2019, 11, 24, 7, 30, 50, tzinfo=UTC).timestamp()


def test_a_csv_record_is_sagemakers():
    record = capture_record("74b0dd56-e7c8-368e-94b1-14a138a96000", AT, b"9,45,45,42,7,5,0", "text/csv",
                            b"0.302709460258", "text/csv")
    assert record == AWS_RECORD


def test_json_and_other_bodies_are_encoded_as_sagemaker_encodes_them():
    record = capture_record("e", AT, b"1 1:0.5\n", "text/libsvm", b'{"predictions": [{"score": 0.5}]}',
                            "application/json", inference_id="mine-1")
    assert record["captureData"]["endpointInput"] == {"observedContentType": "text/libsvm", "mode": "INPUT",
                                                      "data": base64.b64encode(b"1 1:0.5\n").decode(),
                                                      "encoding": "BASE64"}
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert record["eventMetadata"]["inferenceId"] == "mine-1"
    not_utf8 = capture_record("e", AT, b"\xff,1\n", "text/csv; charset=utf-8", None, None)
    assert not_utf8["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert "endpointOutput" not in not_utf8["captureData"]


def test_objects_are_laid_out_as_sagemakers(tmp_path):
    at = datetime(2020, 3, 11, 12, 32, 18, 648000, tzinfo=UTC).timestamp()
    assert hour_folder("churn-model", at) == "churn-model/AllTraffic/2020/03/11/12"
    assert re.fullmatch(r"32-18-648-[0-9a-f-]{36}\.jsonl", file_name(at))
    store = LocalBackend(tmp_path).store
    assert capture_uri(store, "churn-model") == store.uri("churn-model", "data-capture")


def settings(tmp_path, **changes) -> DataCapture:
    return DataCapture(LocalBackend(tmp_path).store.uri("m", "data-capture"), **changes)


class Clock:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


def offer(writer, n: int, body: bytes = b"1.0,2.0,0,0,1\n") -> None:
    for _ in range(n):
        writer.offer(body, {"content-type": "text/csv"}, b"0.5\n", "text/csv; charset=utf-8")


def test_the_writer_rotates_by_hour_and_is_read_back(tmp_path):
    clock = Clock(datetime(2026, 1, 2, 10, 59, 58, tzinfo=UTC).timestamp())
    writer = CaptureWriter("ep", settings(tmp_path), clock=clock)
    offer(writer, 3)
    clock.now += 4  # 11:00:02: the next hour's file
    offer(writer, 2)
    writer.close()
    files = sorted(p.relative_to(writer.folder).as_posix() for p in writer.folder.rglob("*.jsonl"))
    assert [f.rsplit("/", 1)[0] for f in files] == ["2026/01/02/10", "2026/01/02/11"]
    lines = [json.loads(line) for f in sorted(writer.folder.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    assert len(lines) == 5 and len({r["eventMetadata"]["eventId"] for r in lines}) == 5
    assert lines[0]["captureData"]["endpointOutput"]["observedContentType"] == "text/csv; charset=utf-8"
    assert writer.status()["captured"] == 5


def test_sampling_keeps_about_its_share(tmp_path):
    import random

    random.seed(3)
    writer = CaptureWriter("ep", settings(tmp_path, sampling_percentage=20))
    offer(writer, 2000)
    writer.close()
    status = writer.status()
    assert status["captured"] + status["sampled_out"] == 2000
    assert 300 < status["captured"] < 500


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path, monkeypatch):
    release = threading.Event()
    writer = CaptureWriter("ep", settings(tmp_path), queue_size=5)
    original = writer._write
    monkeypatch.setattr(writer, "_write", lambda items: (release.wait(10), original(items)))
    offer(writer, 1)
    time.sleep(0.2)  # the writer holds the first record and waits
    started = time.perf_counter()
    offer(writer, 20)
    assert time.perf_counter() - started < 0.5
    assert writer.dropped == 15
    release.set()
    writer.close()
    assert writer.status()["captured"] == 6


def test_the_disk_bound_deletes_the_oldest_files(tmp_path):
    clock = Clock(datetime(2026, 1, 2, 0, 0, tzinfo=UTC).timestamp())
    writer = CaptureWriter("ep", settings(tmp_path, max_bytes=20_000), clock=clock, max_file_bytes=4_000)
    for hour in range(12):
        offer(writer, 10, body=b"1.0,2.0,0,0,1\n" * 5)
        time.sleep(0.05)
        clock.now += 3600
    writer.close()
    status = writer.status()
    assert status["deleted_files"] > 0 and status["bytes_on_disk"] <= 20_000
    on_disk = sum(p.stat().st_size for p in writer.folder.rglob("*.jsonl"))
    assert on_disk == status["bytes_on_disk"]
    hours = sorted({p.parent.name for p in writer.folder.rglob("*.jsonl")})
    assert hours[-1] == "11" and "00" not in hours  # the newest kept, the oldest gone (and its empty folders)
    assert not (writer.folder / "2026" / "01" / "02" / "00").exists()


def test_what_the_writer_wrote_is_what_the_monitor_reads(tmp_path):
    cfg, served = tiny.config(), tiny.served()
    backend = LocalBackend(tmp_path / "home")
    writer = CaptureWriter(tiny.ENDPOINT, DataCapture(capture_uri(backend.store, tiny.ENDPOINT)))
    rows = tiny.rows(50, 4)
    for row in rows:
        body = tiny.csv_body(row).encode()
        writer.offer(body, {"content-type": "text/csv"}, f"{float(tiny.scores(row[None])[0])!r}\n".encode(),
                     "text/csv; charset=utf-8")
    writer.close()
    captured = read_capture(backend, cfg, served, since="1h")
    assert captured.records == 50 and np.array_equal(captured.rows, rows)
    assert np.allclose(captured.scores[:, 0], tiny.scores(rows))


def test_a_destination_off_this_machine_is_refused():
    with pytest.raises(ValueError, match="captures to a folder"):
        CaptureWriter("ep", DataCapture("s3://bucket/prefix"))
