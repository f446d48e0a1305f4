"""Data capture: what a local endpoint was asked and answered, in SageMaker's capture format, off the request path.

The record format is SageMaker's (one JSON object per line)::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1,2,3", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                        "data": "0.5\\n", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-01-02T03:04:05Z"}, "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` for the content types DataCaptureConfig lists as such (text/csv and
application/json by default), ``BASE64`` for any other body (libsvm, RecordIO) or one that is not UTF-8. Files are
laid out as SageMaker lays out S3 objects: ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-ms>-<uuid>.jsonl``,
a new file each hour (by inference time, UTC) and past ``max_file_bytes``.

The request path pays for a sampling decision and a ``deque.append`` (no lock to take, no thread to wake; the
request's bytes are not copied). A writer thread wakes every ``FLUSH_SECONDS``, formats what accumulated and
appends it, then flushes: one wake-up per interval rather than one per request, which costs a few times less per
record than a ``queue.Queue`` whose put wakes the writer (benchmarks/README.md, section 8). When ``queue_size``
records are waiting, a new one is dropped and counted rather than making the request wait; when the endpoint's
capture folder grows past ``max_bytes``, its oldest files are deleted (counted too). ``GET /-/status`` shows
the counters.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelops.entities import PRODUCTION_VARIANT, DataCapture

log = logging.getLogger("modelops.serving")

#: The capture format's version, as SageMaker writes it.
EVENT_VERSION = "0"
#: The header SageMaker Runtime's InvokeEndpoint carries its InferenceId in (captured as eventMetadata.inferenceId).
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
#: Records waiting for the writer: past this, new ones are dropped (and counted) instead of slowing requests.
QUEUE_SIZE = 10_000
#: How often the writer thread writes what accumulated (at most this late on disk, and on a clean stop, nothing
#: lost).
FLUSH_SECONDS = 0.1


def encoded(body: bytes, content_type: str | None, csv_types, json_types) -> tuple[str, str]:
    """(encoding, data) of a body as SageMaker captures it: CSV or JSON text for the listed types, else BASE64.

    Content types are compared by media type (``text/csv; charset=utf-8`` is ``text/csv``), case-insensitively.
    """
    media = _media(content_type)
    kind = "CSV" if media in _lowered(tuple(csv_types)) else "JSON" if media in _lowered(tuple(json_types)) else None
    if kind is not None:
        try:
            return kind, body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "BASE64", base64.b64encode(body).decode("ascii")


def capture_record(event_id: str, inference_time: float, request: bytes | None, request_type: str | None,
                   response: bytes | None, response_type: str | None, *, csv_types=("text/csv",),
                   json_types=("application/json",), inference_id: str | None = None) -> dict:
    """One capture record (either side None: that side is not captured)."""
    return json.loads(capture_line(event_id, inference_time, request, request_type, response, response_type,
                                   csv_types=csv_types, json_types=json_types, inference_id=inference_id))


def capture_line(event_id: str, inference_time: float, request: bytes | None, request_type: str | None,
                 response: bytes | None, response_type: str | None, *, csv_types=("text/csv",),
                 json_types=("application/json",), inference_id: str | None = None) -> str:
    """One capture record as its JSON line (no line break): the record of ``capture_record``, formatted directly.

    Only the strings are escaped (json.dumps of a str, in C); the structure is a template. A third of the time of
    json.dumps of the nested record, and the writer thread holds the GIL that much less.
    """
    sides = []
    for side, mode, body, content_type in (("endpointInput", "INPUT", request, request_type),
                                           ("endpointOutput", "OUTPUT", response, response_type)):
        if body is not None:
            encoding, text = encoded(body, content_type, csv_types, json_types)
            sides.append(f'"{side}":{{"observedContentType":{json.dumps(content_type or "")},"mode":"{mode}",'
                         f'"data":{json.dumps(text)},"encoding":"{encoding}"}}')
    inference = f',"inferenceId":{json.dumps(inference_id)}' if inference_id else ""
    return (f'{{"captureData":{{{",".join(sides)}}},"eventMetadata":{{"eventId":{json.dumps(event_id)},'
            f'"inferenceTime":"{inference_time_text(inference_time)}"{inference}}},"eventVersion":"{EVENT_VERSION}"}}')


def inference_time_text(at: float) -> str:
    """SageMaker's inferenceTime: ISO 8601 in UTC to the second, with a Z."""
    return _second_text(int(at))


@lru_cache(maxsize=4)
def _second_text(second: int) -> str:  # records come in bursts within a second: formatted once
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=64)
def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@lru_cache(maxsize=16)
def _lowered(types: tuple[str, ...]) -> frozenset[str]:
    return frozenset(t.lower() for t in types)


def hour_folder(endpoint: str, at: float, variant: str = PRODUCTION_VARIANT) -> str:
    """``<endpoint>/<variant>/yyyy/mm/dd/hh``: where records of that hour go, under the destination."""
    return f"{endpoint}/{variant}/{datetime.fromtimestamp(at, UTC):%Y/%m/%d/%H}"


def file_name(at: float) -> str:
    """``<mm>-<ss>-<ms>-<uuid>.jsonl``, as SageMaker names capture objects."""
    moment = datetime.fromtimestamp(at, UTC)
    return f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"


def capture_uri(store, model: str) -> str:
    """Where a model's endpoints capture to in the backend's store (SageMaker: DataCaptureConfig.DestinationS3Uri).

    Each endpoint of the model (``<name>``, ``<name>-staging``) then has its own folder under it.
    """
    return store.uri(model, "data-capture")


def destination_folder(destination: str) -> Path:
    """The local folder of a file:// destination.

    Raises:
        ValueError: the destination is not on this machine (an s3:// one is SageMaker's to write).
    """
    parsed = urlparse(destination)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"a local endpoint captures to a folder (file://), not to {destination}")
    return Path(unquote(parsed.path) if parsed.scheme else destination)


class CaptureWriter:
    """Samples an endpoint's requests and appends their capture records to hourly files from its own thread."""

    def __init__(self, endpoint: str, settings: DataCapture, *, variant: str = PRODUCTION_VARIANT,
                 queue_size: int = QUEUE_SIZE, max_file_bytes: int | None = None, clock=time.time):
        self.endpoint = endpoint
        self.settings = settings
        self.variant = variant
        self.root = destination_folder(settings.destination)
        self.folder = self.root / endpoint / variant
        self.max_file_bytes = max_file_bytes or max(1, min(settings.max_bytes // 10, 64 * 2**20))
        self.clock = clock
        self.queue_size = queue_size
        self.queue: deque = deque()
        self._stop = threading.Event()
        self.sampled_out = self.dropped = 0  # counted on the request path (the event loop's thread)
        self.captured = self.failed = self.deleted_files = 0  # counted by the writer thread
        self.bytes_on_disk = _folder_bytes(self.folder)
        self._file = None
        self._file_path: Path | None = None
        self._file_hour: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"capture-{endpoint}", daemon=True)
        self._thread.start()

    # -- the request path ----------------------------------------------------------------------------------

    def offer(self, request: bytes, headers: dict[str, str], response: bytes, response_type: str) -> None:
        """Queue one answered request for capture, if sampled; never blocks."""
        share = self.settings.sampling_percentage
        if share < 100 and random.random() * 100 >= share:
            self.sampled_out += 1
            return
        if len(self.queue) >= self.queue_size:
            self.dropped += 1
            return
        self.queue.append((self.clock(), request, headers.get("content-type"), headers.get(INFERENCE_ID_HEADER),
                           response, response_type))

    # -- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._drain()
        self._drain()
        self._close_file()

    def _drain(self) -> None:
        items = []
        while self.queue:
            items.append(self.queue.popleft())
        if items:
            self._write(items)

    def _write(self, items: list[tuple]) -> None:
        settings = self.settings
        for at, request, request_type, inference_id, response, response_type in items:
            line = (capture_line(str(uuid.uuid4()), at, request if settings.capture_input else None, request_type,
                                 response if settings.capture_output else None, response_type,
                                 csv_types=settings.csv_content_types, json_types=settings.json_content_types,
                                 inference_id=inference_id) + "\n").encode()
            try:
                handle = self._handle(at, len(line))
                handle.write(line)
            except OSError as exc:
                self.failed += 1
                if self.failed == 1 or self.failed % 1000 == 0:
                    log.error("data capture of %s could not write to %s (%d records lost so far): %s",
                              self.endpoint, self.folder, self.failed, exc)
                self._close_file()
                continue
            self.captured += 1
            self.bytes_on_disk += len(line)
        try:
            if self._file is not None:
                self._file.flush()
        except OSError:
            self._close_file()
        if self.bytes_on_disk > self.settings.max_bytes:
            self._enforce_disk_bound()

    def _handle(self, at: float, size: int):
        hour = hour_folder(self.endpoint, at, self.variant)
        if self._file is None or hour != self._file_hour or self._file.tell() + size > self.max_file_bytes:
            self._close_file()
            path = self.root / hour / file_name(at)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file, self._file_path, self._file_hour = open(path, "ab"), path, hour
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self._file = self._file_path = self._file_hour = None

    def _enforce_disk_bound(self) -> None:
        """Delete the oldest capture files until the folder is back under 90% of its bound (never the open one)."""
        files = sorted(p for p in self.folder.rglob("*.jsonl") if p != self._file_path)
        target = self.settings.max_bytes * 0.9
        for path in files:
            if self.bytes_on_disk <= target:
                break
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            self.bytes_on_disk -= size
            self.deleted_files += 1
            for parent in path.parents:  # the hour, day, month and year folders it leaves empty
                if parent == self.folder:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break
        if self.deleted_files:
            log.warning("data capture of %s is over its %d-byte bound: %d oldest files deleted so far",
                        self.endpoint, self.settings.max_bytes, self.deleted_files)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self, timeout: float = 10) -> None:
        """Write what is queued, close the file and stop the thread."""
        self._stop.set()
        self._thread.join(timeout)

    def status(self) -> dict:
        return {"destination": self.settings.destination, "sampling_percentage": self.settings.sampling_percentage,
                "captured": self.captured, "sampled_out": self.sampled_out, "dropped": self.dropped,
                "failed": self.failed, "deleted_files": self.deleted_files, "bytes_on_disk": self.bytes_on_disk,
                "max_bytes": self.settings.max_bytes, "queued": len(self.queue)}


def _folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(base) / name).stat().st_size
            except OSError:
                pass
    return total
