"""Backends by name: a plain mapping to builders that import lazily, so `local` never imports boto3."""

from __future__ import annotations

import importlib

from modelops import settings
from modelops.backends.base import Backend
from modelops.errors import BackendUnavailable

#: Backend name -> module whose ``build(**options)`` returns it (imported only when asked for).
BACKENDS = {
    "local": "modelops.backends.local",
    "sagemaker": "modelops.backends.sagemaker",
}


def get_backend(name: str | None = None, **options) -> Backend:
    """Build the backend called ``name`` (default ``$MODELOPS_BACKEND`` or ``local``).

    Raises:
        BackendUnavailable: unknown name (the valid ones are listed) or a missing optional dependency.
    """
    if isinstance(name, Backend):
        return name
    name = settings.backend_name(name)
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}. Fix: use one of {sorted(BACKENDS)}.")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("modelops"):
            raise BackendUnavailable(f"backend {name!r} is not available in this version.") from exc
        raise BackendUnavailable(
            f"backend {name!r} needs {exc.name!r}, which is not installed. Fix: pip install 'modelops[aws]'."
        ) from exc
    return module.build(**options)
