"""The path-filtering orb's decision for plain file names, written plainly: the baseline of ``benchmarks/changes.py``.

    python -m benchmarks.orb BASE    # in a repository; prints the selected model folders as JSON

A script of its own that imports only what the work needs, as the orb's script would: timed as a subprocess,
its start-up is an interpreter's and not the benchmark harness's (argparse, tempfile, statistics, ...).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

#: ci.orb.mapping.SHARED_PATHS, written out: the baseline imports nothing of ours (a test checks they agree, so both
#: sides decide over the same mapping lines).
SHARED_PATHS = ("modelops/.*", "ci/.*", "notebooks/.*", "share/.*", r"environment\.yml", r"pyproject\.toml")


def orb_changed(repo: str, base: str) -> list[str]:
    """The orb's algorithm: ``git merge-base``, ``git diff --name-only``, one anchored regex per mapping line."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout

    head = git("rev-parse", "HEAD").strip()
    merge_base = git("merge-base", base, head).strip()
    changes = git("diff", "--name-only", merge_base, head).splitlines()
    # The mapping `python -m ci circleci generate` writes: a line per model folder, a line per shared path.
    models = sorted(name for name in os.listdir(repo) if os.path.isfile(os.path.join(repo, name, "model.yml")))
    mapping = [f"{model}/.* run-{model} true" for model in models]
    mapping += [f"{path} run-all-models true" for path in SHARED_PATHS]
    parameters = set()
    for line in mapping:
        path_regex, parameter, _value = line.split()
        regex = re.compile(r"^" + path_regex + r"$")
        if any(regex.match(change) for change in changes):
            parameters.add(parameter)
    return [model for model in models if "run-all-models" in parameters or f"run-{model}" in parameters]


if __name__ == "__main__":
    print(json.dumps(orb_changed(os.getcwd(), sys.argv[1])))
