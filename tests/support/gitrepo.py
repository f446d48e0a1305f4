"""Real git repositories in tmp_path for tests: commit, branch, merge, squash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.paths import ROOT


class Repo:
    """A git repository with a few conveniences; every call is real git."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "test@example.com")
        self.git("config", "user.name", "Test")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True).stdout.strip()

    def write(self, relative: str, text: str) -> Path:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tree(self, folder: str, revision: str = "HEAD") -> str:
        return self.git("rev-parse", f"{revision}:{folder}")


def copy_model(destination: Path, model: str = "abalone_model") -> Path:
    """Copy a shipped model folder (config and notebooks) into ``destination``."""
    target = destination / model
    shutil.copytree(ROOT / model, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return target


def make_project(path: Path, models: tuple[str, ...] = ("abalone_model",)) -> Repo:
    """A committed project: the given model folders, the shared notebooks, the .gitignore."""
    repo = Repo(path)
    for model in models:
        copy_model(repo.path, model)
    shutil.copytree(ROOT / "notebooks", repo.path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / ".gitignore", repo.path / ".gitignore")
    repo.commit("initial")
    return repo
