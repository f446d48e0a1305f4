"""The backend interface: a store, a trainer, a registry and endpoints, with frozen records they return."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from pathlib import Path

from modelops.errors import StoreError

_KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def safe_key(*parts: str) -> str:
    """Join key parts into a store key, refusing anything that could escape the store's root.

    Raises:
        StoreError: a part is empty, is ``.``/``..``, or holds a separator or other unsafe character.
    """
    for part in parts:
        if not isinstance(part, str) or not _KEY_PART.match(part) or part in (".", ".."):
            raise StoreError(
                f"unsafe store key part {part!r} in {'/'.join(map(str, parts))!r}. Fix: use names made of "
                f"letters, digits, '.', '_' and '-' (no '/', no '..')."
            )
    return "/".join(parts)


@dataclass(frozen=True)
class StoredObject:
    """An object written to a store."""

    uri: str
    sha256: str
    size: int


class Store(abc.ABC):
    """Artifacts addressed by URI (``file://`` for the local backend, ``s3://`` for SageMaker)."""

    @abc.abstractmethod
    def uri(self, *parts: str) -> str:
        """The URI of a key under this store's root.

        Args:
            parts: key segments (model name, "datasets", ...); each is checked by ``safe_key``.

        Returns:
            A URI usable with every other method of this store.

        Raises:
            StoreError: a segment is unsafe.
        """

    @abc.abstractmethod
    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        """Write ``data`` at ``uri`` atomically (readers see the old object or the new one, never half).

        Returns:
            The stored object with its sha256.

        Raises:
            StoreError: the write failed.
        """

    @abc.abstractmethod
    def put_file(self, uri: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        """Upload a local file to ``uri`` atomically.

        Returns:
            The stored object with its sha256.

        Raises:
            StoreError: the upload failed.
        """

    @abc.abstractmethod
    def get_bytes(self, uri: str) -> bytes:
        """Read a whole object.

        Raises:
            StoreError: no object at ``uri`` (the message says which), or the read failed.
        """

    @abc.abstractmethod
    def get_file(self, uri: str, path: Path) -> Path:
        """Download an object to a local file (written atomically).

        Returns:
            ``path``.

        Raises:
            StoreError: no object at ``uri``, or the download failed.
        """

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an object exists at ``uri``."""

    def local_path(self, uri: str) -> Path | None:
        """A local file holding the object, when the store is on this machine (else None)."""
        return None


class Backend:
    """One backend: its store, trainer, registry and endpoints, built lazily by name (see ``get_backend``)."""

    name: str = ""

    def __init__(self, store: Store):
        self.store = store

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} store={self.store.uri()!r}>"
