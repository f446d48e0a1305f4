"""Lineage: which code a model came from — git commit, branch, the git tree hash of its model folder, and the
version and source hash of the ``modelops`` library that trained it.

The tree hash identifies the model folder's content, not the commit: a squash or rebase merge to main
creates new commits but the same folder tree, so deploy still finds the package that was reviewed (deploy
matches on the tree hash only). The library hash is recorded beside it so a review can say when the code that
prepared, trained and evaluated a model changed since the champion, even though its model folder did not.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from pathlib import Path

from modelops.entities import Lineage
from modelops.errors import ChangeDetectionError
from modelops.settings import LIBRARY_VERSION


def git(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> str:
    """Run git and return its stripped stdout.

    Raises:
        ChangeDetectionError: git failed (the message carries git's own).
    """
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                env={**os.environ, **(env or {})})
    except FileNotFoundError as exc:
        raise ChangeDetectionError("git is not installed. Fix: install git.") from exc
    if check and result.returncode != 0:
        raise ChangeDetectionError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


def repository_root(path: Path) -> Path | None:
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def committed_tree_hash(folder: Path, revision: str = "HEAD") -> str | None:
    """The tree hash of ``folder`` at ``revision`` (None if the folder does not exist there)."""
    root = repository_root(folder)
    if root is None:
        return None
    relative = Path(folder).resolve().relative_to(root.resolve()).as_posix()
    return git("rev-parse", "--verify", "--quiet", f"{revision}:{relative}", cwd=root, check=False) or None


def working_tree_hash(folder: Path) -> str | None:
    """The tree hash ``folder`` would have if committed as it is now (ignored files left out).

    Built in a throw-away index, so the repository's own index and working tree are untouched.
    """
    root = repository_root(folder)
    if root is None:
        return None
    relative = Path(folder).resolve().relative_to(root.resolve()).as_posix()
    import tempfile  # only tree hashes of a dirty folder need it

    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git("add", "--all", "--", relative, cwd=root, env=env)
        return git("write-tree", f"--prefix={relative}/", cwd=root, env=env)


@lru_cache(maxsize=1)
def library_hash() -> str:
    """sha256 over the ``modelops`` package's Python sources (paths and bytes), as installed and running now."""
    root = Path(__file__).resolve().parents[1]  # the modelops package
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _library() -> dict[str, str]:
    return {"library_version": LIBRARY_VERSION, "library_hash": library_hash()}


def model_lineage(folder: Path, *, notebook_artifact: str | None = None) -> Lineage:
    """The lineage of a model trained from ``folder`` now (empty git fields outside a git repository)."""
    folder = Path(folder).resolve()
    root = repository_root(folder)
    if root is None:
        return Lineage(model_folder=folder.name, notebook_artifact=notebook_artifact,
                       ci_build_url=os.environ.get("CIRCLE_BUILD_URL"), **_library())
    commit = git("rev-parse", "--verify", "--quiet", "HEAD", cwd=root, check=False) or None
    # CircleCI checks out a detached HEAD: its branch comes from the environment.
    branch = os.environ.get("CIRCLE_BRANCH") or git("rev-parse", "--abbrev-ref", "HEAD", cwd=root, check=False)
    tree = working_tree_hash(folder)
    return Lineage(
        git_commit=commit,
        branch=None if branch in ("", "HEAD") else branch,
        tree_hash=tree,
        dirty=commit is None or tree != committed_tree_hash(folder),
        model_folder=folder.relative_to(root.resolve()).as_posix(),
        notebook_artifact=notebook_artifact,
        ci_build_url=os.environ.get("CIRCLE_BUILD_URL"),
        **_library(),
    )
