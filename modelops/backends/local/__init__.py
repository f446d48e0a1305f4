"""The local backend: files, SQLite, in-process XGBoost and local HTTP endpoints under one home folder."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from modelops import settings
from modelops.backends.base import Backend
from modelops.backends.local.store import LocalStore


class LocalBackend(Backend):
    """Everything under ``home`` (default ``$MODELOPS_HOME`` or ``.modelops/`` at the project root)::

        home/store/       datasets, training outputs (model.tar.gz, logs), evaluation reports
        home/registry.db  model package groups and versions, and every model's event history (SQLite)
        home/tuning/      one Optuna study database per model (SQLite), so an interrupted search resumes
        home/endpoints/   one folder per endpoint: its record (pid, port, versions) and server log
        home/store/<model>/data-capture/<endpoint>/AllTraffic/yyyy/mm/dd/hh/  what endpoints captured
        home/cache/       downloads, by sha256
    """

    name = "local"

    def __init__(self, home: Path | None = None):
        self.home = Path(home).resolve() if home else settings.modelops_home()
        super().__init__(LocalStore(self.home / "store"))

    @cached_property
    def trainer(self):
        from modelops.backends.local.trainer import LocalTrainer

        return LocalTrainer(self.store, self.image_uri)

    @cached_property
    def tuner(self):
        from modelops.backends.local.tuner import LocalTuner

        return LocalTuner(self.store, self.home / "tuning")

    @cached_property
    def registry(self):
        from modelops.backends.local.registry import LocalRegistry

        return LocalRegistry(self.home / "registry.db")

    @cached_property
    def endpoints(self):
        from modelops.backends.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.home)

    @cached_property
    def transformer(self):
        from modelops.backends.local.transformer import LocalTransformer

        return LocalTransformer(self.store)

    @cached_property
    def history(self):
        from modelops.backends.local.registry import LocalHistory

        return LocalHistory(self.registry)

    def image_uri(self, container_version: str) -> str:
        # No container runs locally; record which SageMaker image the artifact is meant for.
        return f"local/sagemaker-xgboost:{container_version}"


def build(**options) -> LocalBackend:
    return LocalBackend(**options)
