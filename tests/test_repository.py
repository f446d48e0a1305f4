"""The repository's own promises: CI runs the README's test command, conda and pip agree on packages."""

from __future__ import annotations

import re
import tomllib

from tests.support.paths import ROOT


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    install_and_run, test = readme_commands()
    assert "pip install" in install_and_run and "python -m ci pipeline" in install_and_run
    assert "pip install" in test and "pytest" in test
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test in ci_lines


def test_environment_yml_has_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    environment = (ROOT / "environment.yml").read_text().lower()
    missing = [name for name in names if not re.search(rf"^\s*- {re.escape(name)}\b", environment, re.M)]
    assert missing == []
    assert '-e ".[dev]"' in environment


def test_ruff_is_clean():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
