"""Which model folders changed: the decision of CircleCI's path-filtering orb (v2.x), made locally.

The orb (``src/scripts/create-parameters.sh``) diffs ``git merge-base BASE HEAD`` against HEAD; when that
merge base is HEAD itself (a build on the base branch) it compares the first parent ``HEAD~1`` instead, and
with no parent the empty tree. Each mapping line ``REGEX PARAM VALUE`` is tried, in order, against the
changed paths as ``^REGEX$``; a matching path that an ``exclude`` pattern also matches is skipped; the first
path that counts sets PARAM to VALUE (parsed as JSON when it is JSON, else a string), and a later line setting
the same PARAM wins. Deleted files count; a renamed file counts under its new name only (``git diff
--name-only`` with git's default rename detection). The orb loops over ``for i in $FILES_CHANGED``, so a path
with whitespace is split into words: reproduced here, so the answer stays the orb's.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.models import model_names
from ci.pathfilter import (
    ALL_MODELS_PARAMETER,
    SETUP_CONFIG,
    FilterSettings,
    MappingLine,
    generated_settings,
    model_parameters,
    settings_from_config,
)
from modelops.errors import ChangeDetectionError
from modelops.lineage import git
from modelops.settings import MODEL_CONFIG_FILE as CONFIG_FILE

#: What ``git hash-object -t tree /dev/null`` prints: the orb diffs a first commit against it.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True)
class FileChange:
    """One entry of ``git diff --name-status``: A, M, D, T, R (renamed: ``old_path`` set) ..."""

    status: str
    path: str
    old_path: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """What the orb would compare and decide for HEAD, and what that means for the model folders."""

    base: str  # the base revision asked for (the orb's base-revision)
    head: str
    compared: str  # the commit (or empty tree) diffed against HEAD
    how: str  # "merge-base" | "first-parent" | "empty-tree"
    files: list[str]  # the orb's changed-file list (after word splitting)
    parameters: dict[str, Any]  # the pipeline parameters the orb passes to the continuation
    models: list[str]  # existing model folders selected by those parameters: what CI trains or deploys
    removed: list[str] = field(default_factory=list)  # model folders deleted (no model.yml at HEAD any more)
    renamed: dict[str, str] = field(default_factory=dict)  # old model folder -> new one
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def parameter_value(raw: str) -> Any:
    """A mapping value as the orb passes it: JSON when it parses as JSON (``true``, ``3``), else the string."""
    try:
        return json.loads(raw, parse_constant=_not_json)  # NaN/Infinity are Python's extension, not JSON (jq)
    except ValueError:
        return raw


def _not_json(constant: str):
    raise ValueError(constant)


def orb_parameters(files: list[str], mapping: list[MappingLine], exclude: list[str] = ()) -> dict[str, Any]:
    """The pipeline parameters the orb derives from the changed files (its loop, line by line)."""
    # The orb builds "^$PATTERN$" by plain concatenation and greps with -P: no grouping is added, so
    # "a|b" means "^a" or "b$" there too. Python's re agrees with PCRE on the patterns used here.
    excluded = [re.compile(f"^{pattern}$") for pattern in exclude if pattern.strip()]
    counted = [path for path in files if not any(ex.search(path) for ex in excluded)]
    matched: dict[str, bool] = {}  # a pattern may set several parameters: decided once
    parameters: dict[str, Any] = {}
    for line in mapping:
        if line.pattern not in matched:
            matched[line.pattern] = _matches_any(line.pattern, counted)
        if matched[line.pattern]:
            parameters[line.parameter] = parameter_value(line.value)
    return parameters


#: A pattern ``FOLDER/.*`` whose folder part has no regex syntax: decided by a prefix test, with no regex
#: compiled (a mapping for 1,000 models has over 1,000 such lines, and compiling them cost more than the diff).
_LITERAL_FOLDER = re.compile(r"^([A-Za-z0-9_/-]+/)\.\*$")


def _matches_any(pattern: str, paths: list[str]) -> bool:
    literal = _LITERAL_FOLDER.match(pattern)
    if literal:  # "^prefix.*$": the prefix, then anything but a newline ('.' does not match one)
        prefix = literal.group(1)
        return any(path.startswith(prefix) and "\n" not in path for path in paths)
    regex = re.compile(f"^{pattern}$")
    return any(regex.search(path) for path in paths)


def compared_revision(root: Path, base: str, head: str) -> tuple[str, str]:
    """The revision the orb diffs HEAD against, and how it was chosen.

    Raises:
        ChangeDetectionError: BASE does not resolve, or it shares no history with HEAD.
    """
    merge_base = git("merge-base", base, head, cwd=root, check=False)
    if not merge_base:  # said why only now: checking BASE up front would cost every run a git call
        if not git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", cwd=root, check=False):
            raise ChangeDetectionError(
                f"base revision {base!r} does not exist in {root}. Fix: fetch it (`git fetch origin {base}:{base}`) "
                f"or pass --base origin/{base}.")
        raise ChangeDetectionError(f"{base} and HEAD share no history, so there is no merge base to compare with.")
    if merge_base != head:
        return merge_base, "merge-base"
    parent = git("rev-parse", "--verify", "--quiet", "HEAD~1", cwd=root, check=False)
    return (parent, "first-parent") if parent else (EMPTY_TREE, "empty-tree")


def head_and_branch(root: Path) -> tuple[str, str | None]:
    """HEAD's commit and the branch checked out (None when HEAD is detached), in one git call.

    Raises:
        ChangeDetectionError: the repository has no commit yet.
    """
    lines = git("rev-parse", "HEAD", "--abbrev-ref", "HEAD", cwd=root, check=False).splitlines()
    if len(lines) != 2:
        raise ChangeDetectionError(f"{root} has no commit yet. Fix: commit first; CI builds commits.")
    return lines[0], None if lines[1] == "HEAD" else lines[1]


def diff(root: Path, old: str, new: str) -> list[FileChange]:
    """Every file that differs between two revisions, in one git call (renames as git detects them)."""
    out = git("-c", "core.quotepath=false", "diff", "--name-status", "-z", old, new, cwd=root)
    tokens = out.split("\0")
    changes, i = [], 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i]
        if status[0] in "RC":
            changes.append(FileChange(status[0], tokens[i + 2], old_path=tokens[i + 1]))
            i += 3
        else:
            changes.append(FileChange(status[0], tokens[i + 1]))
            i += 2
    return changes


def orb_files(changes: list[FileChange]) -> list[str]:
    """The orb's view of the diff: ``--name-only`` paths (new names for renames), word-split by bash."""
    return [word for change in changes for word in change.path.split()]


def removed_and_renamed(changes: list[FileChange]) -> tuple[list[str], dict[str, str]]:
    """Model folders whose model.yml the diff deletes or moves away, and where the moved ones went."""
    config = re.compile(rf"^([^/]+)/{re.escape(CONFIG_FILE)}$")

    def folder(path: str | None) -> str | None:
        match = config.match(path or "")
        return match.group(1) if match else None

    present = {folder(c.path) for c in changes if c.status != "D"} - {None}  # a model.yml at HEAD
    gone, renamed = set(), {}
    for change in changes:
        old = folder(change.old_path if change.status == "R" else change.path if change.status == "D" else None)
        if old is None or old in present:
            continue
        gone.add(old)
        if change.status == "R" and folder(change.path):
            renamed[old] = folder(change.path)
    return sorted(gone), renamed


def current_branch(root: Path) -> str | None:
    """The branch checked out (None when HEAD is detached)."""
    branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=root, check=False)
    return None if branch in ("", "HEAD") else branch


def detect_changes(root: Path, base: str, mapping: list[MappingLine], *, exclude: list[str] = (),
                   model_parameters: dict[str, str], all_models_parameter: str | None = None,
                   branch: str | None = None, since: str | None = None) -> ChangeSet:
    """What the orb decides for HEAD against ``base``, and the traps it falls into here.

    Args:
        root: the repository.
        base: the orb's base-revision (``main``).
        mapping: the orb's mapping lines.
        exclude: the orb's exclude patterns.
        model_parameters: model folder -> the pipeline parameter that selects it.
        all_models_parameter: the pipeline parameter that selects every model (set by shared paths).
        branch: the branch being built (default: ``$CIRCLE_BRANCH``, else the one checked out).
        since: the last commit CI built on this branch (CircleCI's ``pipeline.git.base_revision``); default,
            on the base branch, its upstream (``@{upstream}``): the commits after it are the ones being pushed.

    Returns:
        The change set; ``warnings`` say when the orb's answer misses changes.

    Raises:
        ChangeDetectionError: a revision does not resolve, or git fails.
    """
    root = Path(root)
    head, checked_out = head_and_branch(root)
    branch = branch or os.environ.get("CIRCLE_BRANCH") or checked_out
    # Building the base branch itself, CircleCI's base revision is the pushed commit: HEAD. Locally,
    # origin/main may still lag behind a local main that is about to be pushed.
    on_base = branch is not None and branch == base.removeprefix("origin/")
    compared, how = compared_revision(root, head if on_base else base, head)
    changes = diff(root, compared, head)
    files = orb_files(changes)
    parameters = orb_parameters(files, mapping, exclude)
    removed, renamed = removed_and_renamed(changes)
    models = selected_models(parameters, model_parameters, all_models_parameter)
    warnings = _mapping_warnings(mapping, model_parameters, all_models_parameter)
    if how != "merge-base":
        warnings += _same_base_warnings(root, base, branch, head, how, since, models, mapping, exclude,
                                        model_parameters, all_models_parameter)
    return ChangeSet(base=base, head=head, compared=compared, how=how, files=files, parameters=parameters,
                     models=models, removed=removed, renamed=renamed, warnings=warnings)


def selected_models(parameters: dict[str, Any], model_parameters: dict[str, str],
                    all_models_parameter: str | None = None) -> list[str]:
    """The model folders whose workflow runs: its own parameter or the all-models one is ``true``."""
    every = all_models_parameter is not None and parameters.get(all_models_parameter) is True
    return sorted(model for model, parameter in model_parameters.items()
                  if every or parameters.get(parameter) is True)


def _mapping_warnings(mapping: list[MappingLine], model_parameters: dict[str, str],
                      all_models_parameter: str | None) -> list[str]:
    named = {line.parameter for line in mapping}
    warnings = [f"model folder {model}/ has no line in the mapping, so CircleCI never selects it. Fix: python -m ci "
                f"circleci generate" for model, parameter in model_parameters.items() if parameter not in named]
    stale = sorted(named - set(model_parameters.values()) - {all_models_parameter})
    warnings += [f"the mapping still names {parameter}, but no model folder uses it (was it deleted or renamed?); "
                 f"CircleCI fails a continuation given an undeclared parameter. Fix: python -m ci circleci generate"
                 for parameter in stale]
    return warnings


def _same_base_warnings(root: Path, base: str, branch: str | None, head: str, how: str, since: str | None,
                        selected: list[str], mapping, exclude, model_parameters, all_models_parameter) -> list[str]:
    """The orb's traps when HEAD is already on the base revision (merge base == HEAD)."""
    short_base = base.removeprefix("origin/")
    if how == "empty-tree":
        return ["HEAD is the first commit: every file counts as changed (compared with the empty tree)."]
    if branch and branch != short_base:
        return [f"branch {branch} has no commits of its own (it is at a commit of {base}): the orb compares HEAD~1, "
                f"so it selects what {base}'s last commit changed, not what this branch will change. Commit on the "
                f"branch before pushing it, or expect that selection."]
    warnings = [f"HEAD is on the base revision {base}: like the orb, only the last commit (HEAD~1..HEAD) is compared. "
                f"If several commits reach {short_base} in one push, the changes of the earlier ones are not seen."]
    since = since or git("rev-parse", "--verify", "--quiet", "@{upstream}", cwd=root, check=False) or None
    if not since:
        return warnings
    # First parents only: a merge commit brings its branch's commits, and HEAD~1..HEAD covers all of them.
    pending = git("rev-list", "--count", "--first-parent", f"{since}..{head}", cwd=root, check=False)
    if pending and int(pending) > 1:
        missed = orb_parameters(orb_files(diff(root, since, f"{head}~1")), mapping, exclude)
        skipped = [m for m in selected_models(missed, model_parameters, all_models_parameter) if m not in selected]
        warnings.append(
            f"{pending} commits since {since[:12]} are built at once, but only the last is compared"
            + (f": the changes to {', '.join(skipped)} in the earlier ones are missed. Fix: push them one at a time, "
               f"or run those models' pipelines by hand" if skipped else "") + ".")
    return warnings


def project_changes(root: Path, base: str | None = None, *, branch: str | None = None,
                    since: str | None = None) -> ChangeSet:
    """What CircleCI's setup workflow decides for this checkout, with the mapping it will read.

    The mapping comes from the checked-in ``.circleci/config.yml`` (what CircleCI runs), or, without one, from
    what ``python -m ci circleci generate`` would write; ``base`` defaults to its base-revision.
    """
    names = model_names(Path(root))
    settings = filter_settings(root, names)
    return detect_changes(root, base or settings.base_revision, settings.mapping, exclude=settings.exclude,
                          model_parameters=model_parameters(names), all_models_parameter=ALL_MODELS_PARAMETER,
                          branch=branch, since=since)


def filter_settings(root: Path, names: list[str]) -> FilterSettings:
    """The orb's settings from the checked-in setup config, else the generated one.

    Raises:
        ConfigError: the setup config has no path-filtering/filter job.
    """
    path = Path(root) / SETUP_CONFIG
    if not path.is_file():
        return generated_settings(names)
    import yaml  # only to read one: the generated config needs no YAML, and the import costs ~10 ms

    # libyaml's loader when present: the setup config of a large monorepo holds a thousand mapping lines.
    return settings_from_config(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)),
                                str(path))
