"""What the setup config tells CircleCI's path-filtering orb: the orb's pin, the mapping's format and its names.

``ci.circleci`` writes these into ``.circleci/config.yml``; ``ci.changes`` reads them back to predict the orb's
decision. Both import this module and it imports neither: the two used to import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.errors import ChangeDetectionError, ConfigError

SETUP_CONFIG = Path(".circleci/config.yml")
DYNAMIC_CONFIG = Path(".circleci/dynamic_config.yml")
#: Pinned: a new orb version can change which models a push selects. 2.1.0 is the newest 2.x (2025-10);
#: ``ci.changes`` reproduces the script of this version (tag v2.1.0, commit a0040264a55a).
PATH_FILTERING_ORB = "circleci/path-filtering@2.1.0"
BASE_REVISION = "main"
#: Paths every model's training reads: a change there retrains (and, on main, redeploys) every model.
SHARED_PATHS = ("modelops/.*", "ci/.*", "notebooks/.*", "share/.*", r"environment\.yml", r"pyproject\.toml")
#: The parameter shared paths set: one mapping line per shared path, not one per shared path per model (7,006
#: lines for 1,000 models, against CircleCI's config size limits). No model folder may take it (RESERVED_NAMES).
ALL_MODELS = "all-models"
#: The workflow that runs the test suite, beside one workflow per model folder.
TEST_WORKFLOW = "test"
#: The scheduled workflow that monitors every model's endpoint (ci/circleci.py), and the pipeline parameter a
#: schedule trigger sets to run it.
MONITOR_WORKFLOW = "monitor-models"
#: Names the generated config cannot give a model folder, and why.
RESERVED_NAMES = {ALL_MODELS: f"its parameter run-{ALL_MODELS} is the one shared code sets to run every model",
                  TEST_WORKFLOW: f"its workflow would replace the {TEST_WORKFLOW!r} workflow that runs the test suite",
                  MONITOR_WORKFLOW: f"its workflow would replace the scheduled {MONITOR_WORKFLOW!r} workflow"}
#: The orb's name for its job in the setup config.
FILTER_JOB = "path-filtering/filter"


@dataclass(frozen=True)
class MappingLine:
    """One line of the orb's ``mapping``: ``REGEX PARAM VALUE [CONFIG_FILE]``."""

    pattern: str
    parameter: str
    value: str
    config_file: str | None = None


@dataclass(frozen=True)
class FilterSettings:
    """What the setup config tells the path-filtering orb."""

    base_revision: str
    mapping: list[MappingLine]
    #: The orb's exclude lines as its ``read`` loop sees them: an empty setting is one empty line (``^$``).
    exclude: list[str]


#: A model folder's parameter is this prefix and the folder's name.
PARAMETER_PREFIX = "run-"


def parameter_name(model: str) -> str:
    """The pipeline parameter that selects a model folder."""
    return f"{PARAMETER_PREFIX}{model}"


def folder_of(parameter: str) -> str | None:
    """The model folder a parameter selects (the inverse of ``parameter_name``); None for another parameter."""
    return parameter.removeprefix(PARAMETER_PREFIX) if parameter.startswith(PARAMETER_PREFIX) else None


ALL_MODELS_PARAMETER = parameter_name(ALL_MODELS)


def model_parameters(names: list[str]) -> dict[str, str]:
    """Model folder name -> the parameter that selects it (``run-all-models`` selects them all besides)."""
    return {name: parameter_name(name) for name in names}


def check_names(names: list[str]) -> None:
    """Raises ConfigError naming the first model folder the generated config cannot hold."""
    for name in names:
        if name in RESERVED_NAMES:
            raise ConfigError(f"a model folder may not be named {name}/: {RESERVED_NAMES[name]}. "
                              f"Fix: rename the folder.")


def mapping_text(names: list[str]) -> str:
    """The orb's mapping: each model folder selects itself; shared code selects every model.

    Raises:
        ConfigError: a model folder has a name in RESERVED_NAMES.
    """
    check_names(names)
    lines = ["# A model folder selects its own model."]
    lines += [f"{re.escape(name)}/.* {parameter_name(name)} true" for name in names]
    lines.append("# Shared code that every model's notebooks run selects every model.")
    lines += [f"{path} {ALL_MODELS_PARAMETER} true" for path in SHARED_PATHS]
    return "\n".join(lines) + "\n"


def parse_mapping(text: str) -> list[MappingLine]:
    """The mapping's lines as the orb reads them: blank lines and ``#`` comments skipped, fields split at blanks.

    Raises:
        ChangeDetectionError: a line that is not ``REGEX PARAM VALUE [CONFIG_FILE]``.
    """
    lines = []
    for number, line in enumerate(text.split("\n"), 1):  # bash's `read` ends a line at \n only
        trimmed = line.strip(" \t\r\v\f")  # the orb trims [[:space:]] to find blank and comment lines
        if not trimmed or trimmed.startswith("#"):
            continue
        # bash's `read -ra` splits fields at runs of spaces and tabs (IFS), nothing else. String methods, not a
        # regex: a thousand-model mapping is read on every `ci changed`.
        tokens = [token for token in line.replace("\t", " ").split(" ") if token]
        if len(tokens) not in (3, 4):
            # 1 or 2 fields are the orb's config-file form, which keeps the previous line's parameter: not
            # something to reproduce. 5 or more make the orb's job exit 1.
            raise ChangeDetectionError(
                f"mapping line {number} {trimmed!r} has {len(tokens)} fields; expected 'REGEX PARAM VALUE' "
                f"(optionally a config file). Fix: regenerate it with `python -m ci circleci generate`.")
        lines.append(MappingLine(*tokens))
    return lines


def generated_settings(names: list[str]) -> FilterSettings:
    """What the generated setup config tells the orb for these model folders (no exclude setting)."""
    return FilterSettings(BASE_REVISION, parse_mapping(mapping_text(names)), exclude_lines(""))


def exclude_lines(text: str) -> list[str]:
    """The orb's exclude patterns: ``$(echo "$EXCLUDE" ...)`` drops trailing newlines, ``read`` splits at \\n."""
    return text.rstrip("\n").split("\n")


def settings_from_config(config: Any, source: str) -> FilterSettings:
    """The orb's settings in a parsed setup config.

    Args:
        config: the setup config as YAML loads it.
        source: where it was read, for the error message.

    Raises:
        ConfigError: the config has no path-filtering/filter job.
    """
    workflows = config.get("workflows") if isinstance(config, dict) else None
    for workflow in (workflows or {}).values():
        for job in workflow.get("jobs", []) if isinstance(workflow, dict) else []:
            if isinstance(job, dict) and FILTER_JOB in job:
                settings = job[FILTER_JOB] or {}
                return FilterSettings(str(settings.get("base-revision", "main")),
                                      parse_mapping(str(settings.get("mapping", ""))),
                                      exclude_lines(str(settings.get("exclude", ""))))
    raise ConfigError(f"{source} has no {FILTER_JOB} job. Fix: python -m ci circleci generate.")
