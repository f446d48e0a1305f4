"""Where things live: the local backend's home, the download cache and the offline data folder."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MODELOPS_HOME"
DATA_DIR_ENV = "MODELOPS_DATA_DIR"
BACKEND_ENV = "MODELOPS_BACKEND"
DEFAULT_BACKEND = "local"


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding a ``.git``; else ``start`` itself."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def modelops_home() -> Path:
    """The local backend's state folder: ``$MODELOPS_HOME``, else ``.modelops/`` at the project root."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser().resolve() if configured else project_root() / ".modelops"


def cache_dir() -> Path:
    """Downloads cached by content hash, inside the home so one folder holds all local state."""
    return modelops_home() / "cache"


def data_dir() -> Path | None:
    """``$MODELOPS_DATA_DIR``: a folder searched for a source's file name before anything is downloaded."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else None


def backend_name(name: str | None = None) -> str:
    """The backend to use: the explicit name, else ``$MODELOPS_BACKEND``, else ``local``."""
    return name or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
