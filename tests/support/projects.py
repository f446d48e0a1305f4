"""A throwaway project for the reliability suite: the CLI run in it, its model.yml edited, what is stored hashed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml


def cli(project: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m ci ARGS`` run from ``project`` (its git root is the project root)."""
    return subprocess.run([sys.executable, "-m", "ci", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def edit_config(path: Path, change) -> None:
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (what 'nothing already stored changed' compares)."""
    found = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not path.name.startswith(".") and not path.name.endswith(("-wal", "-shm")):
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
