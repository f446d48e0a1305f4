"""Local store: objects as files under the local backend's home, addressed by file:// URIs."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelops import atomic
from modelops.backends.base import Store, safe_key
from modelops.entities import ListedObject, StoredObject
from modelops.errors import StoreError


class LocalStore(Store):
    """Files under ``root`` (default ``$MODELOPS_HOME/store``); any other ``file://`` URI is also readable."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def uri(self, *parts: str) -> str:
        path = self.root / safe_key(*parts) if parts else self.root
        return path.as_uri()

    def path(self, uri: str) -> Path:
        """The local file behind a ``file://`` URI (or a plain path)."""
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            raise StoreError(f"the local store cannot hold {uri!r}. Fix: use a file:// URI or a local path "
                             f"(s3:// needs backend='sagemaker').")
        return Path(unquote(parsed.path) if parsed.scheme == "file" else uri)

    def local_path(self, uri: str) -> Path:
        return self.path(uri)

    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        path = self.path(uri)
        try:
            atomic.write_bytes(path, data)
        except OSError as exc:
            raise StoreError(f"could not write {path}: {exc}. Fix: check the disk and permissions.") from exc
        return StoredObject(path.as_uri(), hashlib.sha256(data).hexdigest(), len(data))

    def put_file(self, uri: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        target = self.path(uri)
        try:
            source = open(path, "rb")
        except OSError as exc:
            raise StoreError(f"cannot read {path} to store it at {uri}: {exc.strerror or exc}. Fix: check that the "
                             f"file exists and is readable.") from exc
        try:
            with source, atomic.atomic_open(target, "wb") as handle:
                shutil.copyfileobj(source, handle, 1024 * 1024)
        except OSError as exc:
            raise StoreError(f"could not copy {path} to {target}: {exc}. Fix: check the disk space and the "
                             f"permissions of {target.parent}.") from exc
        from modelops.data.sources import sha256_file

        return StoredObject(target.as_uri(), sha256_file(target), target.stat().st_size)

    def get_bytes(self, uri: str) -> bytes:
        path = self.path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"no object at {uri} ({path} does not exist).") from exc
        except OSError as exc:
            raise StoreError(f"could not read {path}: {exc}.") from exc

    def get_file(self, uri: str, path: Path) -> Path:
        source = self.path(uri)
        if not source.is_file():
            raise StoreError(f"no object at {uri} ({source} does not exist).")
        return atomic.copy_file(source, path)

    def exists(self, uri: str) -> bool:
        return self.path(uri).is_file()

    def list_objects(self, prefix: str) -> list[ListedObject]:
        """Files under the folder ``prefix``; names starting with ``.`` (a write in progress) are left out."""
        root = self.path(prefix)
        found = []
        try:
            for base, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    if name.startswith("."):
                        continue
                    path = Path(base) / name
                    try:
                        info = path.stat()
                    except FileNotFoundError:  # removed while listing (a capture file past the disk bound)
                        continue
                    found.append(ListedObject(path.as_uri(), info.st_size, datetime.fromtimestamp(
                        info.st_mtime, UTC).isoformat(timespec="milliseconds")))
        except OSError as exc:
            raise StoreError(f"could not list {root}: {exc}. Fix: check the folder's permissions.") from exc
        return sorted(found, key=lambda o: o.uri)
