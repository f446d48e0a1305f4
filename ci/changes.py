"""Which model folders changed: the decision of CircleCI's path-filtering orb v2.1.0, made as its checkout sees it.

What the orb's ``src/scripts/create-parameters.sh`` (tag v2.1.0, commit a0040264a55a) does, as reproduced here;
``tests/test_changes.py`` checks each point on real repositories against that script's own answers:

- Base: CircleCI's checkout holds the remote's branches, and the script runs ``git checkout main``, so it
  compares with the remote's ``main``: ``origin/main`` here when this clone has one (as of the last fetch; a
  warning says when the local ``main`` differs from it), else the local ``main``. It diffs ``git merge-base
  main HEAD`` against HEAD; when that merge base is HEAD itself (a build on ``main``, or a branch with no
  commits of its own) it compares HEAD's first parent, and with no parent the empty tree.
- Changed files: ``git -c core.quotepath=false diff --name-only``: deleted files count, a renamed file under
  its new name only. Git quotes a name that holds ``"``, ``\\`` or a control character (a tab, a newline):
  ``"a\\"b"``, and the script matches that quoted text.
- ``for i in $FILES_CHANGED``: bash splits the list at spaces, tabs and newlines (a non-breaking space is
  not one), then expands a word holding ``*``, ``?`` or ``[...]`` as a file pattern against the checkout (a
  file named ``*`` becomes every top-level name). Reproduced against HEAD's tree plus ``.git`` (what the
  checkout holds); a pattern with a POSIX class (``[[:alpha:]]``) or one reaching into ``.git``, a symbolic
  link or outside the checkout is not, and a warning says so.
- ``echo "$i" | grep -P "^REGEX$"``: echo reads a word like ``-n`` or ``-e`` as its option; grep, in the
  default executor's UTF-8 locale (``cimg/base``: ``en_US.UTF-8``), matches no line that holds a byte that is
  not UTF-8 against a pattern anchored at both ends. Patterns are matched with Python's ``re``, which agrees
  with PCRE on what the generated mapping uses (literal names, ``\\.``, ``\\-``, ``.*``), not on all of PCRE.
- Mapping: lines ``REGEX PARAM VALUE`` in order; a matching file that an exclude line also matches is skipped;
  the first one that counts sets PARAM to VALUE (JSON when it is JSON, else a string; another value jq would
  read is refused), and a later line setting the same PARAM wins.

A name that makes the orb's answer differ from what the files changed is named in a warning.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ci.models import model_names
from ci.orb.decision import decide, orb_parameters
from ci.orb.mapping import (
    ALL_MODELS_PARAMETER,
    BASE_REVISION,
    DYNAMIC_CONFIG,
    SETUP_CONFIG,
    FilterSettings,
    MappingLine,
    folder_of,
    generated_settings,
    model_parameters,
    settings_from_config,
)
from ci.orb.words import FileChange, not_utf8, orb_words, unquote
from modelops.errors import ChangeDetectionError, ConfigError
from modelops.settings import MODEL_CONFIG_FILE as CONFIG_FILE

#: What ``git hash-object -t tree /dev/null`` prints: the orb diffs a first commit against it.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#: The remote CircleCI clones: its branches are the ones the setup job's checkout has.
REMOTE = "origin"
FIX_CONFIG = "Fix: python -m ci circleci generate, then commit .circleci/."


@dataclass(frozen=True)
class ChangeSet:
    """What the orb would compare and decide for HEAD, and what that means for the model folders."""

    base: str  # the base revision asked for (the orb's base-revision)
    base_ref: str  # what stands for it here: the remote's copy when this clone has one (origin/main)
    head: str
    compared: str  # the commit (or empty tree) diffed against HEAD
    how: str  # "merge-base" | "first-parent" | "empty-tree"
    paths: list[str]  # the changed files (renamed ones under their new name), as git names them
    files: list[str]  # the words the orb matches: names as git lists them, split by bash, patterns expanded
    parameters: dict[str, Any]  # the pipeline parameters the orb passes to the continuation
    models: list[str]  # existing model folders selected by those parameters: what CI trains or deploys
    removed: list[str] = field(default_factory=list)  # model folders deleted (no model.yml at HEAD any more)
    renamed: dict[str, str] = field(default_factory=dict)  # old model folder -> new one
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _git(root: Path, *args: str, check: bool = True) -> str | None:
    """git's stdout, bytes that are not UTF-8 kept as surrogate escapes (a file name may hold any byte).

    Returns:
        The output, or None when git failed and ``check`` is False.

    Raises:
        ChangeDetectionError: git is missing, or it failed and ``check`` is True.
    """
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True)
    except FileNotFoundError as exc:
        raise ChangeDetectionError("git is not installed. Fix: install git.") from exc
    if done.returncode != 0:
        if check:
            raise ChangeDetectionError(f"git {' '.join(args)} failed in {root}: "
                                       f"{done.stderr.decode(errors='replace').strip()}")
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def _objects(root: Path, names: list[str]) -> list[tuple[str, bytes] | None]:
    """Several objects in one git call (``git cat-file --batch``): each one's id and content, None when missing."""
    try:
        done = subprocess.run(["git", "cat-file", "--batch"], cwd=root, capture_output=True,
                              input="".join(f"{name}\n" for name in names).encode("utf-8", "surrogateescape"))
    except FileNotFoundError as exc:
        raise ChangeDetectionError("git is not installed. Fix: install git.") from exc
    found, out, at = [], done.stdout, 0
    for _ in names:
        end = out.find(b"\n", at)
        header = out[at:end].split(b" ") if end >= 0 else []
        if len(header) != 3 or not header[2].isdigit():  # "<name> missing" (or ambiguous)
            found.append(None)
            at = end + 1
            continue
        size = int(header[2])
        found.append((header[0].decode(), out[end + 1:end + 1 + size]))
        at = end + 2 + size
    return found


def compared_revision(root: Path, base: str, head: str) -> tuple[str, str]:
    """The revision the orb diffs HEAD against, and how it was chosen.

    Raises:
        ChangeDetectionError: BASE does not resolve, or it shares no history with HEAD.
    """
    merge_base = (_git(root, "merge-base", base, head, check=False) or "").strip()
    if not merge_base:  # said why only now: checking BASE up front would cost every run a git call
        if not _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False):
            raise ChangeDetectionError(
                f"base revision {base!r} does not exist in {root}. Fix: fetch it (`git fetch origin {base}:{base}`) "
                f"or pass --base origin/{base}.")
        raise ChangeDetectionError(f"{base} and HEAD share no history, so there is no merge base to compare with "
                                   f"(the orb's setup job fails on it too).")
    if merge_base != head:
        return merge_base, "merge-base"
    parent = (_git(root, "rev-parse", "--verify", "--quiet", "HEAD~1", check=False) or "").strip()
    return (parent, "first-parent") if parent else (EMPTY_TREE, "empty-tree")


def head_and_branch(root: Path) -> tuple[str, str | None]:
    """HEAD's commit and the branch checked out (None when HEAD is detached), in one git call.

    Raises:
        ChangeDetectionError: the repository has no commit yet.
    """
    lines = (_git(root, "rev-parse", "HEAD", "--abbrev-ref", "HEAD", check=False) or "").splitlines()
    if len(lines) != 2:
        raise ChangeDetectionError(f"{root} has no commit yet. Fix: commit first; CI builds commits.")
    return lines[0], None if lines[1] == "HEAD" else lines[1]


def current_branch(root: Path) -> str | None:
    """The branch checked out (None when HEAD is detached)."""
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD", check=False) or "").strip()
    return None if branch in ("", "HEAD") else branch


def base_refs(base: str) -> tuple[str, str]:
    """The local branch and the remote's copy of it that may stand for ``base``."""
    return f"refs/heads/{base}", f"refs/remotes/{REMOTE}/{base}"


def ci_base(root: Path, base: str, refs: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """What stands here for the base branch of CircleCI's checkout: ``origin/BASE`` when this clone has it.

    Args:
        root: the repository.
        base: the base revision asked for.
        refs: ``base_refs(base)`` that exist -> their commit, when the caller has read them already.

    Returns:
        The revision to compare with, and a warning when the local branch differs from the remote's.
    """
    local, remote = base_refs(base)
    if refs is None:
        out = _git(root, "for-each-ref", "--format=%(refname) %(objectname)", local, remote, check=False) or ""
        refs = dict(line.split(" ", 1) for line in out.splitlines())
    if remote not in refs:
        return base, []  # no remote, or BASE is not a branch name: as given
    if refs.get(local, refs[remote]) == refs[remote]:
        return f"{REMOTE}/{base}", []
    counts = _git(root, "rev-list", "--left-right", "--count", f"{local}...{remote}", check=False) or "0 0"
    ahead, behind = (int(n) for n in counts.split())
    state = ", ".join(part for part, n in ((f"{behind} commit(s) of {REMOTE}/{base} not pulled", behind),
                                           (f"{ahead} commit(s) of {base} not pushed", ahead)) if n)
    warning = (f"your local {base} and {REMOTE}/{base} differ ({state}): compared with {REMOTE}/{base} as of your "
               f"last `git fetch`, as CircleCI's checkout will be")
    if ahead:
        warning += (f"; the {ahead} commit(s) of {base} not pushed count as this branch's changes until {base} is "
                    f"pushed")
    return f"{REMOTE}/{base}", [warning + "."]


def diff(root: Path, old: str, new: str) -> list[FileChange]:
    """Every file that differs between two revisions, as the orb's ``git diff`` lists it, in one git call."""
    # quotepath as the orb sets it; renames on as in git's default config (a user's diff.renames could differ).
    out = _git(root, "-c", "core.quotepath=false", "-c", "diff.renames=true", "diff", "--name-status", old, new)
    changes = []
    for line in out.splitlines():  # a name holding a newline or a tab is quoted: splitting here is safe
        status, *names = line.split("\t")
        paths = [unquote(name) for name in names]
        changes.append(FileChange(status[0], paths[-1], old_path=paths[0] if len(paths) == 2 else None,
                                  listed=names[-1]))
    return changes


def checkout_tree(root: Path, head: str) -> dict[str, dict[str, str]]:
    """Folder -> {name: kind} of what CircleCI's checkout of HEAD holds: HEAD's tree, and ``.git`` at the root.

    Kinds: ``tree`` and ``commit`` (a submodule, an empty folder) are folders; ``blob``, ``link`` (a symbolic
    link), ``git`` (the ``.git`` folder, whose content is unknown here).
    """
    tree: dict[str, dict[str, str]] = {"": {".git": "git"}}
    for entry in _git(root, "ls-tree", "-r", "-t", "-z", "--full-tree", head).split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, _ = meta.split(" ")
        parent, _, name = path.rpartition("/")
        tree.setdefault(parent, {})[name] = "link" if mode == "120000" else kind
        if kind in ("tree", "commit"):
            tree.setdefault(path, {})
    return tree


def removed_and_renamed(changes: list[FileChange]) -> tuple[list[str], dict[str, str]]:
    """Model folders whose model.yml the diff deletes or moves away, and where the moved ones went."""
    config = re.compile(rf"([^/]+)/{re.escape(CONFIG_FILE)}")

    def folder(path: str | None) -> str | None:
        match = config.fullmatch(path or "")
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


def detect_changes(root: Path, base: str, mapping: list[MappingLine], *, exclude: list[str] = ("",),
                   model_parameters: dict[str, str], all_models_parameter: str | None = None,
                   branch: str | None = None, since: str | None = None,
                   refs: dict[str, str] | None = None) -> ChangeSet:
    """What the orb decides for HEAD against ``base``, and the traps it falls into here.

    Args:
        root: the repository.
        base: the orb's base-revision (``main``): ``origin/main`` stands for it when this clone has one.
        mapping: the orb's mapping lines.
        exclude: the orb's exclude lines (an empty setting is one empty line).
        model_parameters: model folder -> the pipeline parameter that selects it.
        all_models_parameter: the pipeline parameter that selects every model (set by shared paths).
        branch: the branch being built (default: ``$CIRCLE_BRANCH``, else the one checked out).
        since: the last commit CI built on this branch (CircleCI's ``pipeline.git.base_revision``); default,
            on the base branch, its upstream (``@{upstream}``): the commits after it are the ones being pushed.
        refs: ``base_refs(base)`` that exist -> their commit, when the caller has read them already.

    Returns:
        The change set; ``warnings`` say when the orb's answer misses changes or cannot be reproduced.

    Raises:
        ChangeDetectionError: a revision does not resolve, or git fails.
    """
    root = Path(root)
    head, checked_out = head_and_branch(root)
    branch = branch or os.environ.get("CIRCLE_BRANCH") or checked_out
    # Building the base branch itself, CircleCI's checkout of it is the pushed commit: HEAD. Locally,
    # origin/main may still lag behind a local main that is about to be pushed.
    on_base = branch is not None and branch == base.removeprefix(f"{REMOTE}/")
    base_ref, warnings = (base, []) if on_base else ci_base(root, base, refs)
    compared, how = compared_revision(root, head if on_base else base_ref, head)
    changes = diff(root, compared, head)
    files, notes, unknown = orb_words(changes, functools.cache(lambda: checkout_tree(root, head)))
    if any(map(not_utf8, files)) and any("|" in p for p in [*(line.pattern for line in mapping), *exclude]):
        # grep -P can match part of a line around a byte that is not UTF-8 when "^a|b$" has two branches;
        # which part depends on PCRE2's optimisations: not reproduced.
        notes.append("a mapping or exclude pattern holds '|', and which of its branches grep -P matches on a line "
                     "that is not UTF-8 is not reproduced here")
        unknown = True
    parameters = orb_parameters(files, mapping, exclude)
    removed, renamed = removed_and_renamed(changes)
    named = {line.parameter for line in mapping}
    # A model folder without a line in the committed mapping has no workflow in the committed continuation
    # either (both are generated together): run-all-models does not run it.
    mapped = {model: parameter for model, parameter in model_parameters.items() if parameter in named}
    models = selected_models(parameters, mapped, all_models_parameter)
    if notes:
        warnings += _names_warning(notes, unknown, parameters, decide([[c.path] for c in changes], mapping, exclude),
                                   mapped, all_models_parameter)
    warnings += _mapping_warnings(root, named, model_parameters, all_models_parameter, parameters, branch)
    if how != "merge-base":
        warnings += _same_base_warnings(root, base_ref, branch, head, how, since, models, mapping, exclude, mapped,
                                        all_models_parameter, on_base)
    return ChangeSet(base=base, base_ref=base_ref, head=head, compared=compared, how=how,
                     paths=[change.path for change in changes], files=files,
                     parameters=parameters, models=models, removed=removed, renamed=renamed, warnings=warnings)


def selected_models(parameters: dict[str, Any], model_parameters: dict[str, str],
                    all_models_parameter: str | None = None) -> list[str]:
    """The model folders whose workflow runs: its own parameter or the all-models one is ``true``."""
    every = all_models_parameter is not None and parameters.get(all_models_parameter) is True
    return sorted(model for model, parameter in model_parameters.items()
                  if every or parameters.get(parameter) is True)


def _names(models: list[str]) -> str:
    return ", ".join(models) or "no model"


def _names_warning(notes: list[str], unknown: bool, parameters: dict, intended: dict, mapped: dict[str, str],
                   all_models_parameter: str | None) -> list[str]:
    """A warning when file names make the orb decide otherwise than the files changed (or that is not known)."""
    if parameters == intended and not unknown:
        return []
    orb, files = (selected_models(p, mapped, all_models_parameter) for p in (parameters, intended))
    if unknown:
        effect = (f"so CircleCI's selection may differ from the one shown ({_names(orb)}; the changed files select "
                  f"{_names(files)})")
    elif orb != files:
        effect = f"so CircleCI selects {_names(orb)} where the changed files select {_names(files)}"
    else:
        effect = f"so the orb passes {json.dumps(parameters)} where the changed files give {json.dumps(intended)}"
    return [f"the orb reads these changed files' names otherwise than git wrote them: {' | '.join(notes)}; "
            f"{effect}. Fix: rename them (no quote, backslash, blank, control or glob character, and UTF-8)."]


def _mapping_warnings(root: Path, named: set[str], model_parameters: dict[str, str], all_models_parameter: str | None,
                      parameters: dict[str, Any], branch: str | None) -> list[str]:
    warnings = [f"model folder {model}/ has no line in the committed mapping, so CircleCI never selects it. "
                f"{FIX_CONFIG}" for model, parameter in model_parameters.items() if parameter not in named]
    # A parameter named like a model folder's with no such folder; other parameters are the mapping's own affair.
    stale = sorted(p for p in named - set(model_parameters.values()) - {all_models_parameter} if folder_of(p))
    if not stale:
        return warnings
    declared, workflows = _continuation(root)
    for parameter in stale:
        folder = folder_of(parameter)
        jobs = _jobs_on(workflows.get(folder), branch)
        if parameter not in parameters:
            warnings.append(f"the committed mapping still names {parameter}, but there is no model folder {folder}/ "
                            f"(deleted or renamed?). {FIX_CONFIG}")
        elif parameter not in declared:
            warnings.append(f"this push sets {parameter}, which the committed {DYNAMIC_CONFIG} does not declare: "
                            f"CircleCI fails the continuation. {FIX_CONFIG}")
        elif jobs:
            warnings.append(
                f"{folder}/ is gone, but the committed .circleci/ still maps and runs it: this push sets {parameter} "
                f"(its deleted files are changes), so the continuation runs the {folder} workflow, whose "
                f"{', '.join(jobs)} run on a folder that no longer exists, and {jobs[0]} fails. {FIX_CONFIG}")
        else:
            warnings.append(f"this push sets {parameter}, which no workflow of the committed {DYNAMIC_CONFIG} runs "
                            f"on this branch; there is no model folder {folder}/. {FIX_CONFIG}")
    return warnings


def _continuation(root: Path) -> tuple[set[str], dict[str, Any]]:
    """The parameters and workflows the continuation config committed at HEAD declares (read only when needed)."""
    text = _git(root, "cat-file", "blob", f"HEAD:{DYNAMIC_CONFIG.as_posix()}", check=False)
    config = _yaml(text, f"HEAD:{DYNAMIC_CONFIG}") if text is not None else None
    if not isinstance(config, dict):
        return set(), {}
    return set(config.get("parameters") or {}), dict(config.get("workflows") or {})


def _jobs_on(workflow: Any, branch: str | None) -> list[str]:
    """The names of a workflow's jobs whose branch filters let ``branch`` through (exact names only)."""
    names = []
    for job in (workflow or {}).get("jobs", []) if isinstance(workflow, dict) else []:
        kind, settings = next(iter(job.items())) if isinstance(job, dict) else (job, {})
        branches = ((settings or {}).get("filters") or {}).get("branches") or {}
        only, ignore = ([v] if isinstance(v, str) else list(v or []) for v in (branches.get("only"),
                                                                               branches.get("ignore")))
        if (not only or branch in only) and branch not in ignore:
            names.append((settings or {}).get("name", kind))
    return names


def _same_base_warnings(root: Path, base_ref: str, branch: str | None, head: str, how: str, since: str | None,
                        selected: list[str], mapping, exclude, mapped, all_models_parameter, on_base) -> list[str]:
    """The orb's traps when HEAD is already on the base revision (merge base == HEAD)."""
    if how == "empty-tree":
        return ["HEAD is the first commit: every file counts as changed (compared with the empty tree)."]
    if not on_base:
        return [f"branch {branch} has no commits of its own (HEAD {head[:12]} is already in {base_ref}): the orb "
                f"compares HEAD with its first parent, so it selects what the branch tip's own commit changed "
                f"({_names(selected)}), not what this branch will change. Commit on the branch before pushing it, or "
                f"expect that selection."]
    short_base = base_ref.removeprefix(f"{REMOTE}/")
    warnings = [f"HEAD is on the base revision {short_base}: like the orb, only the last commit (HEAD~1..HEAD) is "
                f"compared. If several commits reach {short_base} in one push, the changes of the earlier ones are "
                f"not seen."]
    since = since or (_git(root, "rev-parse", "--verify", "--quiet", "@{upstream}", check=False) or "").strip()
    if not since:
        return warnings
    # First parents only: a merge commit brings its branch's commits, and HEAD~1..HEAD covers all of them.
    pending = (_git(root, "rev-list", "--count", "--first-parent", f"{since}..{head}", check=False) or "").strip()
    if pending and int(pending) > 1:
        missed = decide([[c.path] for c in diff(root, since, f"{head}~1")], mapping, exclude)
        skipped = [m for m in selected_models(missed, mapped, all_models_parameter) if m not in selected]
        warnings.append(
            f"{pending} commits since {since[:12]} are built at once, but only the last is compared"
            + (f": the changes to {', '.join(skipped)} in the earlier ones are missed. Fix: push them one at a time, "
               f"or run those models' pipelines by hand" if skipped else "") + ".")
    return warnings


def _yaml(text: str, source: str) -> Any:
    import yaml  # only to read a config: `ci changed` without one does not pay for the import

    try:
        # libyaml's loader when present: the setup config of a large monorepo holds a thousand mapping lines.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML ({exc}). {FIX_CONFIG}") from exc


def setup_settings(root: Path, names: list[str], committed: str | None) -> tuple[
        FilterSettings, FilterSettings | None, list[str]]:
    """The orb's settings as CircleCI reads them: from the setup config committed at HEAD.

    Args:
        root: the repository.
        names: its model folders.
        committed: the text of the setup config committed at HEAD (None: there is none).

    Returns:
        The committed settings (without a committed config, what ``ci circleci generate`` would write), the
        working copy's when its config differs from the committed one, and warnings.

    Raises:
        ConfigError: the committed config is not YAML or has no path-filtering job.
    """
    path = root / SETUP_CONFIG
    working = path.read_bytes().decode("utf-8", "surrogateescape") if path.is_file() else None
    if committed is None:
        where = " (the working copy has one: commit it)" if working is not None else ""
        return generated_settings(names), None, [
            f"HEAD has no {SETUP_CONFIG}{where}: CircleCI finds no config for this commit and runs nothing. Shown: "
            f"what the generated config would select. {FIX_CONFIG}"]
    settings = settings_from_config(_yaml(committed, f"HEAD:{SETUP_CONFIG}"), f"HEAD:{SETUP_CONFIG}")
    if working == committed:
        return settings, None, []
    if working is None:
        return settings, None, [f"{SETUP_CONFIG} is deleted in the working copy but not in HEAD: CircleCI reads "
                                f"HEAD's, used here."]
    try:
        return settings, settings_from_config(_yaml(working, str(path)), str(path)), []
    except (ConfigError, ChangeDetectionError) as exc:
        return settings, None, [f"the working copy's {SETUP_CONFIG} differs from HEAD's and cannot be read ({exc}); "
                                f"CircleCI reads HEAD's, used here."]


def project_changes(root: Path, base: str | None = None, *, branch: str | None = None,
                    since: str | None = None) -> ChangeSet:
    """What CircleCI's setup workflow decides for this checkout, with the mapping it will read.

    The mapping comes from the ``.circleci/config.yml`` committed at HEAD (what CircleCI reads; a warning says
    when the working copy's differs, and what it would select); ``base`` defaults to its base-revision.

    Raises:
        ChangeDetectionError: a revision does not resolve, or git fails.
        ConfigError: the committed setup config cannot be read.
    """
    root = Path(root)
    names = model_names(root)
    # One git call for the committed config and the branches that may stand for the base: the config's own
    # base-revision is known only once it is read, and is BASE_REVISION unless the config was edited by hand.
    asked = base or BASE_REVISION
    wanted = base_refs(asked) if not re.search(r"\s", asked) else ()
    config, *refs = _objects(root, [f"HEAD:{SETUP_CONFIG.as_posix()}", *wanted])
    committed = config[1].decode("utf-8", "surrogateescape") if config else None
    settings, working, warnings = setup_settings(root, names, committed)
    parameters = model_parameters(names)
    base = base or settings.base_revision
    found = detect_changes(root, base, settings.mapping, exclude=settings.exclude, model_parameters=parameters,
                           all_models_parameter=ALL_MODELS_PARAMETER, branch=branch, since=since,
                           refs={ref: obj[0] for ref, obj in zip(wanted, refs) if obj}
                           if wanted and base == asked else None)
    if working is not None:
        named = {line.parameter for line in working.mapping}
        other = orb_parameters(found.files, working.mapping, working.exclude)
        other_models = selected_models(other, {m: p for m, p in parameters.items() if p in named},
                                       ALL_MODELS_PARAMETER)
        effect = (f": with the working copy's, it would select {_names(other_models)} instead of "
                  f"{_names(found.models)}" if other_models != found.models else "")
        warnings.append(f"the working copy's {SETUP_CONFIG} differs from HEAD's; CircleCI reads HEAD's, used here"
                        f"{effect}. Fix: commit it.")
    return replace(found, warnings=warnings + found.warnings)
