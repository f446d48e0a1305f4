"""The local backend: files, SQLite, in-process XGBoost and local HTTP endpoints under one home folder."""

from __future__ import annotations

from pathlib import Path

from modelops import settings
from modelops.backends.base import Backend
from modelops.backends.local.store import LocalStore


class LocalBackend(Backend):
    """Everything under ``home`` (default ``$MODELOPS_HOME`` or ``.modelops/`` at the project root)."""

    name = "local"

    def __init__(self, home: Path | None = None):
        self.home = Path(home).resolve() if home else settings.modelops_home()
        super().__init__(LocalStore(self.home / "store"))


def build(**options) -> LocalBackend:
    return LocalBackend(**options)
