"""The path-filtering orb's own ``create-parameters.sh``, run in a CircleCI-like checkout of a pushed repository.

The orb's code is not part of this project: point ``PATH_FILTERING_ORB`` at a clone of
https://github.com/CircleCI-Public/path-filtering-orb (a work tree or a bare repository) and the script is
read from it at ``ORB_COMMIT``. Without it (or without bash, jq, a UTF-8 locale), ``available()`` says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

#: Tag v2.1.0 of CircleCI-Public/path-filtering-orb: the version the generated config pins.
ORB_COMMIT = "a0040264a55a2f69380bbba465ee8e502adc3ec0"
SCRIPT = "src/scripts/create-parameters.sh"
#: The closest to cimg/base's LC_ALL=en_US.UTF-8 that every glibc has: a UTF-8 locale, as grep -P sees it.
LOCALE = "C.UTF-8"
# `circleci env subst` replaces $VARIABLES in the orb's inputs; none of ours holds a '$', so it is the identity.
_CIRCLECI = """#!/bin/sh
[ "$1 $2" = "env subst" ] || { echo "stand-in circleci: unexpected arguments $*" >&2; exit 2; }
input=$(cat; echo .)
case "$input" in *'$'*) echo "stand-in circleci: cannot substitute a \\$ in the input" >&2; exit 2;; esac
printf '%s' "${input%.}"
"""


def orb_clone() -> Path | None:
    path = os.environ.get("PATH_FILTERING_ORB")
    return Path(path) if path else None


def available() -> str | None:
    """Why the orb's script cannot run here, or None when it can."""
    if orb_clone() is None:
        return "PATH_FILTERING_ORB is not set (a clone of CircleCI-Public/path-filtering-orb)"
    missing = [tool for tool in ("bash", "jq", "grep") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    done = subprocess.run(["git", "-C", str(orb_clone()), "cat-file", "-e", f"{ORB_COMMIT}:{SCRIPT}"],
                          capture_output=True)
    return None if done.returncode == 0 else f"{orb_clone()} does not hold commit {ORB_COMMIT}"


def script() -> str:
    return subprocess.run(["git", "-C", str(orb_clone()), "show", f"{ORB_COMMIT}:{SCRIPT}"], check=True,
                          capture_output=True, text=True).stdout


def ci_checkout(origin: Path, branch: str, sha: str, where: Path) -> Path:
    """What CircleCI's ``checkout`` step leaves: a clone of the remote, ``branch`` checked out at ``sha``."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(origin), str(where)], check=True)
    subprocess.run(["git", "checkout", "-q", "-B", branch, sha], cwd=where, check=True)
    return where


def run_orb(origin: Path, branch: str, sha: str, work: Path) -> dict:
    """The pipeline parameters the orb's script writes for a push of ``branch`` at ``sha`` to ``origin``.

    The mapping and base revision are those of the setup config committed at ``sha``, as CircleCI passes them.
    The script runs unchanged but for its two scratch files, moved from /tmp into ``work``.
    """
    work.mkdir(parents=True, exist_ok=True)
    checkout = ci_checkout(origin, branch, sha, work / "checkout")
    config = yaml.safe_load(subprocess.run(["git", "show", f"{sha}:.circleci/config.yml"], cwd=checkout,
                                           check=True, capture_output=True).stdout)
    [job] = [job["path-filtering/filter"] for workflow in config["workflows"].values() for job in workflow["jobs"]
             if isinstance(job, dict) and "path-filtering/filter" in job]
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "circleci").write_text(_CIRCLECI)
    (bin_dir / "circleci").chmod(0o755)
    output = work / "pipeline-parameters.json"
    text = script().replace("/tmp/filtered-config-list", str(work / "filtered-config-list")).replace(
        "/tmp/files-changed-list", str(work / "files-changed-list"))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LC_ALL": LOCALE,
           "BASE_REVISION": job.get("base-revision", "main"), "MAPPING": job.get("mapping", ""),
           "EXCLUDE": job.get("exclude", ""), "OUTPUT_PATH": str(output),
           "CONFIG_PATH": job.get("config-path", ".circleci/continue_config.yml"), "SAME_BASE_RUN": "true",
           "CIRCLE_SHA1": sha, "CIRCLE_BRANCH": branch}
    # CircleCI runs a step's command with `/bin/bash -eo pipefail`.
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", text], cwd=checkout, env=env, capture_output=True)
    if done.returncode != 0:
        raise AssertionError(f"the orb's script failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return json.loads(output.read_text())
