"""The repository's own promises: CI runs the README's test command, the README is a front door whose links
resolve, conda and pip agree on packages."""

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


def _heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def test_readme_is_a_front_door_that_links_architecture_first_and_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "the manual belongs in docs/; the README stays a front door"
    assert "(ARCHITECTURE.md)" in "\n".join(readme.splitlines()[:25])
    unlinked = [page.name for page in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{page.name}" not in readme]
    assert unlinked == []


def test_every_relative_link_in_the_documentation_resolves():
    pages = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "benchmarks" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _heading_anchors(linked.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


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
