"""The generated CircleCI files: up to date, valid against CircleCI's schema, following the model folders."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.changes import project_changes, selected_models
from ci.circleci import generate, stale_files
from ci.orb.decision import orb_parameters
from ci.orb.mapping import (
    ALL_MODELS_PARAMETER,
    DYNAMIC_CONFIG,
    SETUP_CONFIG,
    SHARED_PATHS,
    mapping_text,
    model_parameters,
    parse_mapping,
)
from modelops.errors import ConfigError
from tests.support.gitrepo import make_project
from tests.support.paths import ROOT, SHARED_DATA

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def cli(*args, cwd=ROOT, env=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ci", *args], capture_output=True, text=True, cwd=cwd, env=env)


def load(root: Path, relative: Path) -> dict:
    return yaml.safe_load((root / relative).read_text())


def validate(*paths: Path) -> subprocess.CompletedProcess:
    # The builtin schema ships inside check-jsonschema: this works offline.
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.circle-ci", *map(str, paths)],
                          capture_output=True, text=True)


def three_model_project(tmp_path):
    repo = make_project(tmp_path / "project", models=("abalone_model", "churn_model"))
    shutil.copy(ROOT / "README.md", repo.path / "README.md")
    generate(repo.path)
    repo.commit("two models and their CircleCI config")
    return repo


def test_checked_in_files_are_what_generate_writes():
    result = cli("circleci", "check")
    assert result.returncode == 0, result.stderr
    assert stale_files(ROOT) == []


@pytest.mark.slow
def test_check_fails_on_a_hand_edit_and_says_how_to_fix(tmp_path):
    repo = three_model_project(tmp_path)
    assert cli("circleci", "check", cwd=repo.path).returncode == 0
    path = repo.path / DYNAMIC_CONFIG
    path.write_text(path.read_text().replace("--stage train", "--stage all"))
    result = cli("circleci", "check", cwd=repo.path)
    assert result.returncode == 1
    assert ".circleci/dynamic_config.yml" in result.stderr and "Fix: python -m ci circleci generate" in result.stderr
    assert cli("circleci", "generate", cwd=repo.path).stdout.strip() == "wrote .circleci/dynamic_config.yml"
    assert cli("circleci", "check", cwd=repo.path).returncode == 0


@pytest.mark.slow
def test_both_files_validate_against_the_circleci_schema(tmp_path):
    result = validate(ROOT / SETUP_CONFIG, ROOT / DYNAMIC_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    config = load(ROOT, DYNAMIC_CONFIG)
    config["jobs"]["train"]["steps"] = "not a list"
    broken.write_text(yaml.safe_dump(config))
    assert validate(broken).returncode == 1  # the validation can fail


@pytest.mark.slow
def test_a_third_model_folder_appears_in_the_mapping_and_the_workflows(tmp_path):
    repo = three_model_project(tmp_path)
    repo.git("checkout", "-q", "-b", "third")
    shutil.copytree(ROOT / "abalone_model", repo.path / "third_model")
    assert stale_files(repo.path) == [SETUP_CONFIG, DYNAMIC_CONFIG]
    assert generate(repo.path) == [SETUP_CONFIG, DYNAMIC_CONFIG]
    repo.commit("a third model")

    [job] = load(repo.path, SETUP_CONFIG)["workflows"]["select-changed-models"]["jobs"]
    mapping = parse_mapping(job["path-filtering/filter"]["mapping"])
    assert ("third_model/.*", "run-third_model", "true") in [(m.pattern, m.parameter, m.value) for m in mapping]
    # Shared paths set one parameter, not one per model: a line per model folder and a line per shared path.
    assert [m.parameter for m in mapping] == ["run-abalone_model", "run-churn_model", "run-third_model",
                                              *["run-all-models"] * len(SHARED_PATHS)]
    assert ("modelops/.*", "run-all-models", "true") in [(m.pattern, m.parameter, m.value) for m in mapping]
    dynamic = load(repo.path, DYNAMIC_CONFIG)
    # Every parameter the mapping can pass is declared: CircleCI fails the continuation otherwise. So is the one a
    # schedule trigger passes to the setup config (CircleCI carries it into the continuation).
    assert {m.parameter for m in mapping} | {"monitor-models"} == set(dynamic["parameters"]) == {
        "run-abalone_model", "run-churn_model", "run-third_model", "run-all-models", "monitor-models"}
    workflow = dynamic["workflows"]["third_model"]
    assert workflow["when"] == {"and": [{"not": "<< pipeline.parameters.monitor-models >>"},
                                        {"or": ["<< pipeline.parameters.run-third_model >>",
                                                "<< pipeline.parameters.run-all-models >>"]}]}
    assert [j["monitor"]["name"] for j in dynamic["workflows"]["monitor-models"]["jobs"]] == [
        "monitor-abalone_model", "monitor-churn_model", "monitor-third_model"]
    assert [next(iter(job.values())).get("name", next(iter(job))) for job in workflow["jobs"]] == [
        "train-third_model", "request-deployment", "approve-third_model", "deploy-third_model", "request-promotion",
        "promote-third_model"]
    assert validate(repo.path / SETUP_CONFIG, repo.path / DYNAMIC_CONFIG).returncode == 0
    # The branch adding it selects it, and only it.
    assert project_changes(repo.path).models == ["third_model"]


def test_continuation_gates_release_on_an_approval_and_deploys_on_main_only():
    dynamic = load(ROOT, DYNAMIC_CONFIG)
    jobs = {next(iter(j.values())).get("name", next(iter(j))): next(iter(j.values()))
            for j in dynamic["workflows"]["abalone_model"]["jobs"]}
    not_main = {"branches": {"ignore": "main"}}
    assert jobs["train-abalone_model"]["filters"] == not_main
    assert jobs["request-deployment"] == {"type": "approval", "requires": ["train-abalone_model"],
                                          "filters": not_main}
    assert jobs["approve-abalone_model"]["requires"] == ["request-deployment"]
    assert jobs["deploy-abalone_model"]["filters"] == {"branches": {"only": "main"}}
    assert "requires" not in jobs["deploy-abalone_model"]
    assert jobs["approve-abalone_model"]["context"] == jobs["deploy-abalone_model"]["context"] == "modelops-release"
    assert jobs["train-abalone_model"]["context"] == "modelops-train"
    # On main: staging and the gate, then a second approval, then production in a context of its own.
    main = {"branches": {"only": "main"}}
    assert jobs["request-promotion"] == {"type": "approval", "requires": ["deploy-abalone_model"], "filters": main}
    assert jobs["promote-abalone_model"] == {"model": "abalone_model", "context": "modelops-production",
                                             "requires": ["request-promotion"], "filters": main,
                                             "name": "promote-abalone_model"}
    assert len({jobs[j]["context"] for j in ("train-abalone_model", "approve-abalone_model",
                                            "promote-abalone_model")}) == 3

    definitions = dynamic["jobs"]
    commands = {name: [s["run"]["command"] for s in job["steps"] if isinstance(s, dict) and "run" in s]
                for name, job in definitions.items()}
    assert any("-m ci run << parameters.model >> --stage train --backend sagemaker" in c for c in commands["train"])
    assert any("-m ci deploy << parameters.model >> --env staging --backend sagemaker" in c
               for c in commands["deploy"])
    assert any("-m ci promote << parameters.model >> --backend sagemaker --by \"${CIRCLE_USERNAME:?" in c
               for c in commands["promote"])
    for name in ("train", "deploy", "promote"):  # the gate's notebook, and production's deploy notebook
        assert {"store_artifacts": {"path": "artifacts", "destination": "artifacts", "when": "always"}} in (
            definitions[name]["steps"])
    for name in ("train", "approve", "deploy", "promote"):  # AWS through the OIDC role, never keys
        [aws] = [s["aws-cli/setup"] for s in definitions[name]["steps"] if isinstance(s, dict) and "aws-cli/setup" in s]
        assert aws["role_arn"] == "${MODELOPS_AWS_ROLE_ARN}" and not any("KEY" in str(v) for v in aws.values())
    test_steps = definitions["test"]["steps"]
    readme_test = ROOT.joinpath("README.md").read_text().split("```bash\n")[2].split("\n```")[0]
    assert any(readme_test in c and "--junitxml=test-results/" in c for c in commands["test"])
    assert {"store_test_results": {"path": "test-results", "when": "always"}} in test_steps
    assert any("restore_cache" in s for s in test_steps if isinstance(s, dict))


def runs(when, parameters: dict[str, bool]) -> bool:
    """CircleCI's evaluation of a workflow's ``when`` (logic statements over pipeline parameters)."""
    if when is None:
        return True
    if isinstance(when, str):
        return parameters.get(when.removeprefix("<< pipeline.parameters.").removesuffix(" >>"), False)
    [(operator, argument)] = when.items()
    if operator == "not":
        return not runs(argument, parameters)
    return (all if operator == "and" else any)(runs(a, parameters) for a in argument)


def test_a_schedule_trigger_monitors_every_model_and_runs_nothing_else():
    setup, dynamic = load(ROOT, SETUP_CONFIG), load(ROOT, DYNAMIC_CONFIG)
    # A schedule trigger passes monitor-models to the setup config, which must declare it; so must the
    # continuation, where the parameter is carried.
    for config in (setup, dynamic):
        assert config["parameters"]["monitor-models"]["type"] == "boolean"
        assert config["parameters"]["monitor-models"]["default"] is False
    workflows = dynamic["workflows"]

    def running(**parameters):
        return sorted(name for name, workflow in workflows.items() if runs(workflow.get("when"), parameters))

    # On main the orb still compares HEAD with its parent: a scheduled run must not test or deploy again.
    assert running(**{"monitor-models": True, "run-abalone_model": True, "run-all-models": True}) == [
        "monitor-models"]
    assert running(**{"run-abalone_model": True}) == ["abalone_model", "test"]
    assert running() == ["test"]
    jobs = {j["monitor"]["name"]: j["monitor"] for j in workflows["monitor-models"]["jobs"]}
    assert jobs == {f"monitor-{m}": {"name": f"monitor-{m}", "model": m, "context": "modelops-train"}
                    for m in ("abalone_model", "churn_model")}
    steps = dynamic["jobs"]["monitor"]["steps"]
    [command] = [s["run"]["command"] for s in steps if isinstance(s, dict) and "run" in s and "monitor" in s["run"]
                 ["command"]]
    assert command == ".venv/bin/python -m ci monitor << parameters.model >> --backend sagemaker --since 24h"
    assert {"store_artifacts": {"path": "artifacts", "destination": "artifacts", "when": "always"}} in steps
    [aws] = [s["aws-cli/setup"] for s in steps if isinstance(s, dict) and "aws-cli/setup" in s]
    assert aws["role_arn"] == "${MODELOPS_AWS_ROLE_ARN}"


@pytest.mark.slow
def test_approve_job_approves_exactly_the_version_train_wrote(tmp_path, home):
    """The approve job's command, run in a shell as CircleCI would (local backend, a seeded registry)."""
    from ci.artifacts import NotebookRun
    from ci.runner import write_registered_version
    from tests.support.registry import seed

    registry = seed(home, ["0" * 40, "1" * 40])
    workspace = tmp_path / "workspace"
    runs = [NotebookRun(model="abalone_model", notebook="train_register", status="skipped", scraps={"version": 1}),
            NotebookRun(model="abalone_model", notebook="review", status="passed", scraps={"verdict": "APPROVE"})]
    assert write_registered_version(runs, workspace / "versions" / "abalone_model") == 1
    [command] = [s["run"]["command"] for s in load(ROOT, DYNAMIC_CONFIG)["jobs"]["approve"]["steps"]
                 if isinstance(s, dict) and "run" in s and "ci approve" in s["run"]["command"]]
    command = (command.replace("<< parameters.model >>", "abalone_model").replace("/tmp/workspace", str(workspace))
               .replace("--backend sagemaker", "--backend local").replace(".venv/bin/python", sys.executable))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CIRCLE_BUILD_URL": "https://ci/7"}
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "CIRCLE_USERNAME": "alice"})
    assert done.returncode == 0, done.stderr
    assert (registry.get("abalone-model", 1).status, registry.get("abalone-model", 1).status_by) == ("Approved",
                                                                                                     "alice")
    assert registry.get("abalone-model", 1).status_note == "approved in CircleCI: https://ci/7"
    assert registry.get("abalone-model", 2).status == "PendingManualApproval"
    anonymous = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                               env={**env, "CIRCLE_USERNAME": ""})
    assert anonymous.returncode != 0 and "did not say who approved" in anonymous.stderr


def test_version_file_needs_a_train_stage(tmp_path):
    from ci.artifacts import NotebookRun
    from ci.runner import write_registered_version
    from modelops.errors import ConfigError

    with pytest.raises(ConfigError, match="--stage train"):
        write_registered_version([NotebookRun(model="m", notebook="gather_data", status="passed")], tmp_path / "v")
    assert not (tmp_path / "v").exists()


def test_fetch_data_lays_out_the_data_folder_and_refuses_a_wrong_file(tmp_path, home):
    from ci.models import discover_models, fetch_datasets
    from modelops.errors import DataSourceError

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "abalone" / "abalone.data", folder / "abalone.data")
    shutil.copy(SHARED_DATA / "churn" / "churn.txt", folder / "churn.txt")
    paths = fetch_datasets(discover_models(ROOT), folder)
    assert paths == [folder / "abalone" / "abalone.data", folder / "churn" / "churn.txt"]
    assert (folder / "abalone" / "abalone.data").read_bytes() == (SHARED_DATA / "abalone" / "abalone.data").read_bytes()
    (folder / "abalone" / "abalone.data").write_text("1,2,3\n")
    (folder / "abalone.data").unlink()
    with pytest.raises(DataSourceError, match="sha256"):
        fetch_datasets(discover_models(ROOT), folder)


def test_the_mapping_selects_what_one_line_per_model_per_shared_path_selected(tmp_path):
    models = ["abalone_model", "churn_model", "m-1"]
    mapping = parse_mapping(mapping_text(models))
    # The mapping before run-all-models: each shared path repeated once per model, with the model's parameter.
    per_model = parse_mapping("\n".join([f"{m}/.* run-{m} true" for m in models]
                                        + [f"{path} run-{m} true" for path in SHARED_PATHS for m in models]))
    parameters = model_parameters(models)
    for files in (["abalone_model/model.yml"], ["m-1/x", "README.md"], ["docs/a.md", "tests/t.py"],
                  ["modelops/config.py"], ["ci/cli.py", "m-1/x"], ["environment.yml"], ["environmentXyml"],
                  ["pyproject.toml"], ["share/x/y"], ["notebooks/templates/deploy.ipynb"], ["abalone_model"],
                  ["sub/modelops/config.py"], []):
        now = selected_models(orb_parameters(files, mapping), parameters, ALL_MODELS_PARAMETER)
        assert now == selected_models(orb_parameters(files, per_model), parameters), files
    assert selected_models(orb_parameters(["ci/cli.py"], mapping), parameters, ALL_MODELS_PARAMETER) == [
        "abalone_model", "churn_model", "m-1"]


@pytest.mark.parametrize(("folder", "why"), [("all-models", "shared code sets to run every model"),
                                             ("test", "would replace the 'test' workflow"),
                                             ("monitor-models", "would replace the scheduled 'monitor-models'")])
def test_a_model_folder_may_not_take_a_name_the_config_uses(tmp_path, folder, why):
    repo = three_model_project(tmp_path)
    shutil.copytree(ROOT / "abalone_model", repo.path / folder)
    before = {p: p.read_bytes() for p in (repo.path / ".circleci").glob("*.yml")}
    with pytest.raises(ConfigError, match=f"may not be named {folder}/: .*{why}.*Fix: rename the folder"):
        generate(repo.path)
    assert {p: p.read_bytes() for p in (repo.path / ".circleci").glob("*.yml")} == before


def ci_imports() -> dict[str, set[str]]:
    """Module -> the ci modules it imports anywhere, at the top or inside a function."""
    graph = {}
    for path in (ROOT / "ci").rglob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ci."):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("ci.")}
        graph[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = imported
    return graph


def test_change_detection_and_config_generation_share_a_lower_module_and_import_no_cycle():
    graph = ci_imports()
    # The mapping's format and names live below both; neither imports the other, not even lazily.
    assert graph["ci.orb.mapping"] == set() and graph["ci.orb.words"] == set()
    assert graph["ci.orb.decision"] == {"ci.orb.mapping", "ci.orb.words"}
    assert "ci.circleci" not in graph["ci.changes"] and "ci.changes" not in graph["ci.circleci"]
    assert {"ci.orb.mapping", "ci.orb.words", "ci.orb.decision"} <= graph["ci.changes"]
    assert "ci.orb.mapping" in graph["ci.circleci"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    for module in ("ci.changes", "ci.circleci", "ci.orb.mapping", "ci.orb.words"):
        assert not reaches(module, module, {module}), f"{module} imports itself through a cycle"
