"""Data sources: fetch a file from https://, s3:// or a local path, cached by content hash.

Before anything is downloaded, ``$MODELOPS_DATA_DIR`` (and its subfolders) is searched for a file of the
source's file name: that is how an offline machine, a CI cache or the tests supply the data without
changing a notebook.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from modelops import atomic, settings
from modelops.errors import DataSourceError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class FetchedSource:
    """A source resolved to a local file, with where it came from and its sha256."""

    source: str
    path: Path
    sha256: str
    size: int
    origin: str  # "local" | "data-dir" | "cache" | "download"

    def _repr_markdown_(self) -> str:
        return (f"**{self.path.name}** from `{self.source}` ({self.origin}), {self.size:,} bytes, "
                f"sha256 `{self.sha256}`")


def file_name(source: str) -> str:
    """The file name a source resolves to (the last path segment of its URL or path)."""
    parsed = urlparse(source)
    remote = parsed.scheme in ("http", "https", "s3", "file")
    name = PurePosixPath(unquote(parsed.path)).name if remote else Path(source).name
    if not name:
        raise DataSourceError(f"source {source!r} does not name a file. Fix: give the URL or path of the file itself.")
    return name


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_source(
    source: str,
    *,
    expected_sha256: str | None = None,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> FetchedSource:
    """Resolve a data source to a verified local file.

    Args:
        source: ``https://`` / ``http://`` URL, ``s3://bucket/key``, ``file://`` URL or a local path.
        expected_sha256: refuse the data unless its sha256 is this (None: accept and report what it is).
        data_dir: folder searched for a file of the source's name first (default ``$MODELOPS_DATA_DIR``).
        cache_dir: download cache (default ``$MODELOPS_HOME/cache``).
        progress: show a progress bar while downloading.
        timeout: seconds before an unresponsive download is abandoned (default 60).

    Returns:
        The resolved file.

    Raises:
        DataSourceError: unreachable or missing source, unsupported scheme, or checksum mismatch.
    """
    parsed = urlparse(source)
    scheme = parsed.scheme.lower()
    if scheme not in ("", "file", "http", "https", "s3"):
        raise DataSourceError(
            f"source {source!r} has scheme {scheme!r}, which is not supported. "
            f"Fix: use an https:// or s3:// URL or a local path."
        )
    if scheme in ("", "file"):
        path = Path(unquote(parsed.path) if scheme == "file" else source).expanduser()
        if path.is_file():
            return _verified(source, path, "local", expected_sha256)
        # A path from another machine (say, in a model.yml): a file of that name in the data folder will do.
        found = _find_in_data_dir(path.name, data_dir if data_dir is not None else settings.data_dir())
        if found is None:
            raise DataSourceError(f"source {source!r}: no such file ({path.resolve()}). Fix: check the path, or set "
                                  f"MODELOPS_DATA_DIR to a folder holding {path.name}.")
        return _verified(source, found, "data-dir", expected_sha256)

    name = file_name(source)
    data_dir = data_dir if data_dir is not None else settings.data_dir()
    found = _find_in_data_dir(name, data_dir)
    if found is not None:
        return _verified(source, found, "data-dir", expected_sha256)

    cache = _Cache(cache_dir or settings.cache_dir())
    cached = cache.lookup(source, expected_sha256)
    if cached is not None:
        return _verified(source, cached, "cache", expected_sha256)
    opener = _open_s3 if scheme == "s3" else _open_http
    timeout = timeout or float(os.environ.get("MODELOPS_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT))
    path, digest = cache.download(source, name, opener, expected_sha256, progress=progress, timeout=timeout)
    return FetchedSource(source, path, digest, path.stat().st_size, "download")


def _verified(source: str, path: Path, origin: str, expected: str | None) -> FetchedSource:
    digest = sha256_file(path)
    if expected and digest != expected:
        raise DataSourceError(
            f"checksum mismatch for {source!r}: {path} has sha256 {digest}, expected {expected} "
            f"(data.sha256 in model.yml). Fix: if the data changed on purpose, update data.sha256; otherwise "
            f"replace {path} with the right file or point `source` at a good local copy."
        )
    return FetchedSource(source, path.resolve(), digest, path.stat().st_size, origin)


def _find_in_data_dir(name: str, data_dir: Path | None) -> Path | None:
    if data_dir is None:
        return None
    if not data_dir.is_dir():
        log.warning("MODELOPS_DATA_DIR=%s is not a folder; ignoring it and downloading instead", data_dir)
        return None
    matches = sorted(p for p in data_dir.rglob(name) if p.is_file())
    return matches[0] if matches else None


class _Cache:
    """Files stored as ``sha256/<digest>/<name>``, with ``urls.json`` mapping each source to its digest."""

    def __init__(self, root: Path):
        self.root = root
        self.index = root / "urls.json"

    def lookup(self, source: str, expected: str | None) -> Path | None:
        digest = expected or self._read_index().get(source)
        if not digest:
            return None
        folder = self.root / "sha256" / digest
        files = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
        return files[0] if files else None

    def download(self, source, name, opener, expected, *, progress, timeout) -> tuple[Path, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                stream, total = opener(source, timeout)
                with stream, _progress_bar(total, name, progress) as bar:
                    for chunk in iter(lambda: stream.read(CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        bar(len(chunk))
            sha = digest.hexdigest()
            if expected and sha != expected:
                raise DataSourceError(
                    f"checksum mismatch for {source!r}: downloaded data has sha256 {sha}, expected {expected} "
                    f"(data.sha256 in model.yml). Nothing was cached. Fix: if the published file changed on "
                    f"purpose, update data.sha256; or set `source` to a local copy of the expected file "
                    f"(or MODELOPS_DATA_DIR to a folder holding {name})."
                )
            target = self.root / "sha256" / sha / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            index = self._read_index()
            index[source] = sha
            atomic.write_json(self.index, index)
            return target, sha
        finally:
            tmp.unlink(missing_ok=True)

    def _read_index(self) -> dict[str, str]:
        try:
            return json.loads(self.index.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def _unreachable(source: str, reason: object) -> DataSourceError:
    name = file_name(source)
    return DataSourceError(
        f"could not download {source!r}: {reason}. Fix: check the URL and your network, or use a local copy: "
        f"pass `-p source /path/to/{name}` (notebook parameter `source`) or set MODELOPS_DATA_DIR to a folder "
        f"that holds {name}."
    )


def _open_http(source: str, timeout: float) -> tuple[BinaryIO, int | None]:
    request = urllib.request.Request(source, headers={"User-Agent": "modelops/0.1"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked above
    except urllib.error.HTTPError as exc:
        raise _unreachable(source, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(source, getattr(exc, "reason", exc)) from exc
    length = response.headers.get("Content-Length")
    return _GuardedStream(response, source), int(length) if length and length.isdigit() else None


def _open_s3(source: str, timeout: float) -> tuple[BinaryIO, int | None]:
    import boto3
    import botocore
    from botocore.config import Config

    parsed = urlparse(source)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise DataSourceError(f"source {source!r} is not of the form s3://BUCKET/KEY. Fix: correct the URL.")
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3, "mode": "standard"})
    session = boto3.session.Session()
    if session.get_credentials() is None:
        # Public sample buckets can be read without credentials: sign nothing rather than fail.
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    client = session.client("s3", config=config)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise _unreachable(source, f"S3 {error.get('Code', '')}: {error.get('Message', exc)}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _unreachable(source, exc) from exc
    return _GuardedStream(response["Body"], source), response.get("ContentLength")


class _GuardedStream:
    """A response body whose read errors become DataSourceError (a connection dropped mid-download)."""

    def __init__(self, stream, source: str):
        self._stream = stream
        self._source = source

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except Exception as exc:  # socket, http.client and botocore errors all mean the same here
            raise _unreachable(self._source, f"connection lost during download ({exc})") from exc

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()


class _progress_bar:
    """A tqdm bar on stderr (plain text, so it also reads well in an executed notebook)."""

    def __init__(self, total: int | None, name: str, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"download {name}", unit="B", unit_scale=True, mininterval=0.5,
                             file=sys.stderr, leave=True)

    def __enter__(self) -> Callable[[int], None]:
        return self._bar.update if self._bar is not None else (lambda n: None)

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.close()


