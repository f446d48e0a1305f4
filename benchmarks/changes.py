"""Change detection at scale: ``python -m ci changed`` against the path-filtering orb's approach, written plainly.

    python -m benchmarks.changes [--models 1000] [--commits 10000] [--rounds 5] [--quick]

A git repository is generated with ``git fast-import`` (one stream, not a ``git commit`` per commit): N model
folders, each with a ``model.yml`` and a notes file, and M commits on ``main`` each touching one to three
models; then a branch ``feature`` whose three commits touch three models. Checked out on ``feature``:
  - ours: ``python -m ci changed --base main --json`` (a subprocess, run in the generated repository);
    skipped with a message when this checkout has no ``ci changed`` command yet;
  - baseline: what the CircleCI path-filtering orb does, written plainly (``benchmarks/orb.py``, a script that
    imports only what it needs): ``git merge-base``, then ``git diff --name-only``, then for each line of the
    mapping ``ci circleci generate`` writes (one per model, ``model_0001/.* run-model_0001 true``, and one per
    shared path, ``ci/.* run-all-models true``) a regex ``^model_0001/.*$`` matched against every changed path.
    Timed as a subprocess (like ours) and in-process.
Both subprocesses run with Python's bytecode cache on (in the temporary folder), as on a user's machine, even
where ``PYTHONDONTWRITEBYTECODE`` is set: otherwise each run compiles every module of ours from source.
Both answers must be exactly the three models the branch touched. Target: ours < 1 s and never slower than
the baseline.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import PYTHON, ROOT, Report, environment, interleaved, median, timed
from benchmarks.orb import SHARED_PATHS, orb_changed

TOUCHED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.changes", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 folders, 100 commits, 2 rounds (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.commits, args.rounds = 20, 100, 2
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as tmp:
        repo = Path(tmp) / "repo"
        started = time.perf_counter()
        expected = generate(repo, args.models, args.commits)
        print(f"generated {args.models:,} model folders and {args.commits:,} commits in "
              f"{time.perf_counter() - started:.1f} s; feature touches {', '.join(expected)}", flush=True)
        report = measure(repo, expected, args, pycache=Path(tmp) / "pycache")
    report.print()
    return 0


def measure(repo: Path, expected: list[str], args, pycache: Path) -> Report:
    env = environment(PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the first (untimed) run of each side fills the cache
    ours_command = [PYTHON, "-m", "ci", "changed", "--base", "main", "--json"]
    orb_command = [PYTHON, "-m", "benchmarks.orb", "main"]
    runs = {}
    available = ours_available(repo, env)
    if available:
        check(expected, _models_in(timed(ours_command, cwd=repo, env=env)[1]), "ours (ci changed)")
        runs["ours: ci changed"] = lambda: timed(ours_command, cwd=repo, env=env)[0]
        check(expected, ours_in_process(repo), "ours, in-process")
        runs["ours, in-process"] = lambda: _seconds(lambda: ours_in_process(repo))
    check(expected, _models_in(timed(orb_command, cwd=repo, env=env)[1]), "the orb's approach")
    check(expected, orb_changed(str(repo), "main"), "the orb's approach, in-process")
    runs["orb approach, subprocess"] = lambda: timed(orb_command, cwd=repo, env=env)[0]
    runs["orb approach, in-process"] = lambda: _seconds(lambda: orb_changed(str(repo), "main"))
    samples = interleaved(runs, args.rounds, log=lambda line: print(line, flush=True))
    size = f"{args.models:,} models, {args.commits:,} commits, median of {args.rounds}"
    report = Report(f"changes: {size}")
    orb_sub = median(samples["orb approach, subprocess"])
    orb_in = median(samples["orb approach, in-process"])
    if available:
        ours = report.ours(f"python -m ci changed --base main --json ({size})", median(samples["ours: ci changed"]),
                           "s")
    else:
        report.skipped("ours", "python -m ci changed --base main --json",
                       "this checkout has no `ci changed` command yet; run again after the change-detection branch "
                       "is merged")
    report.baseline(f"orb approach as a plain script (merge-base, diff --name-only, "
                    f"{args.models + len(SHARED_PATHS):,} regexes), a subprocess",
                    orb_sub, "s")
    report.baseline("orb approach in-process (no interpreter start)", orb_in, "s")
    if available:
        report.ratio("ours / 1 s", ours, "< 1", ours < 1)
        report.ratio("ours / orb approach (subprocess)", ours / orb_sub, "<= 1", ours <= orb_sub)
        ours_in = report.ours("ci.changes.project_changes in-process (no interpreter start)",
                              median(samples["ours, in-process"]), "s")
        report.ratio("ours / orb approach (in-process)", ours / orb_in)
        report.ratio("ours in-process / orb approach in-process (the algorithms alone)", ours_in / orb_in, "<= 1",
                     ours_in <= orb_in)
    else:
        report.ratio("orb approach subprocess / in-process (interpreter start share)", orb_sub / orb_in)
    return report


def ours_in_process(repo: Path) -> list[str]:
    """What `ci changed` computes, without the interpreter start and imports of a command."""
    from ci.changes import project_changes

    return project_changes(repo, "main", branch="feature").models


def ours_available(repo: Path, env: dict) -> bool:
    done = subprocess.run([PYTHON, "-m", "ci", "changed", "--help"], cwd=repo, env=env, capture_output=True)
    return done.returncode == 0


def check(expected: list[str], found: list[str], who: str) -> None:
    if sorted(found) != sorted(expected):
        raise SystemExit(f"{who} found {sorted(found)}, but the feature branch touched {sorted(expected)}")


def generate(repo: Path, models: int, commits: int, seed: int = 0) -> list[str]:
    """A project with ``models`` model folders and ``commits`` commits on main; returns what feature touches."""
    rng = random.Random(seed)
    names = [f"model_{i:04d}" for i in range(models)]
    template = (ROOT / "abalone_model" / "model.yml").read_text()
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    stream: list[bytes] = []

    def blob(path: str, text: str) -> None:
        data = text.encode()
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))

    def commit(branch: str, mark: int, message: str, when: int, parent: int | None = None) -> None:
        text = message.encode()
        stream.append(b"commit refs/heads/%s\nmark :%d\ncommitter Bench <bench@example.com> %d +0000\n"
                      b"data %d\n%s\n" % (branch.encode(), mark, when, len(text), text))
        if parent is not None:
            stream.append(b"from :%d\n" % parent)

    start = 1_700_000_000
    commit("main", 1, "models", start)
    blob(".gitignore", ".modelops/\nartifacts/\n")
    blob("notebooks/README.md", "shared notebooks\n")
    for name in names:
        blob(f"{name}/model.yml", re.sub(r"(?m)^name: .*$", f"name: {name.replace('_', '-')}", template))
        blob(f"{name}/notes.md", "notes\n")
    for number in range(2, commits + 1):
        commit("main", number, f"change {number}", start + number)
        for name in rng.sample(names, rng.randint(1, min(3, models))):
            blob(f"{name}/notes.md", f"change {number}\n")
    touched = sorted(rng.sample(names, TOUCHED))
    for offset, name in enumerate(touched, 1):
        commit("feature", commits + offset, f"feature {offset}", start + commits + offset,
               parent=commits if offset == 1 else None)
        blob(f"{name}/notes.md", f"feature change {offset}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "feature"], cwd=repo, check=True)
    return touched


def _models_in(output: str) -> list[str]:
    """Model folder names in a command's output, whatever the JSON's shape."""
    return sorted(set(re.findall(r"model_\d{4}", output)))


def _seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
