"""The orb's decision: which pipeline parameters its mapping sets for the lines of its changed-file list.

``create-parameters.sh`` loops over the mapping's ``REGEX PARAM VALUE`` lines in order: a line counts when one of the
changed files' lines matches ``^REGEX$`` (``grep -P``) and no exclude pattern matches it; PARAM is set to VALUE
as jq reads it, and a later line setting the same PARAM wins.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ci.orb.mapping import MappingLine
from ci.orb.words import grep_lines
from modelops.errors import ChangeDetectionError


def parameter_value(raw: str) -> Any:
    """A mapping value as the orb passes it on: JSON when it is JSON (``true``, ``3``, ``"a b"``), a word as a string.

    Raises:
        ChangeDetectionError: a value jq reads although it is not JSON (``NaN``, ``01``, ``.5``, ``+1``): the orb
            writes it into the parameters as it stands, which is then not JSON.
    """
    try:
        return json.loads(raw, parse_constant=_not_json)
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z_][\w.-]*", raw) and raw.lower() not in ("nan", "infinity"):
        return raw  # jq -c rejects it, so the orb passes it as a string (jq -R)
    raise ChangeDetectionError(f"mapping value {raw!r} is not JSON, but jq (which the orb asks) may read it as a "
                               f"number and write it into the parameters as it stands. Fix: use JSON (true, 3, "
                               f"\"text\") or a plain word.")


def _not_json(constant: str):
    raise ValueError(constant)


def _anchored(pattern: str) -> re.Pattern:
    try:
        return re.compile(f"^{pattern}$")
    except re.error as exc:
        raise ChangeDetectionError(f"mapping pattern {pattern!r} is not a regular expression Python can read ({exc});"
                                   f" the orb hands it to grep -P. Fix: write it with what PCRE and Python share.")


def orb_parameters(words: list[str], mapping: list[MappingLine], exclude: list[str] = ()) -> dict[str, Any]:
    """The pipeline parameters the orb derives from the words of its changed-file list (its loop, line by line)."""
    return decide([grep_lines(word) for word in words], mapping, exclude)


def decide(items: list[list[str]], mapping: list[MappingLine], exclude: list[str] = ()) -> dict[str, Any]:
    """The orb's loop over the mapping: each item counts when one of its lines matches, and none is excluded."""
    # The orb builds "^$PATTERN$" by plain concatenation: no grouping is added, so "a|b" means "^a" or "b$".
    excluded = [_anchored(pattern) for pattern in exclude]
    lines = [line for item in items if not any(ex.search(text) for ex in excluded for text in item) for line in item]
    matched: dict[str, bool] = {}  # a pattern may set several parameters: decided once
    parameters: dict[str, Any] = {}
    for line in mapping:
        if line.pattern not in matched:
            matched[line.pattern] = _matches_any(line.pattern, lines)
        if matched[line.pattern]:
            parameters[line.parameter] = parameter_value(line.value)
    return parameters


#: A pattern ``FOLDER/.*`` whose folder part has no regex syntax: decided by a prefix test, with no regex
#: compiled (a mapping for 1,000 models has over 1,000 such lines, and compiling them cost more than the diff).
_LITERAL_FOLDER = re.compile(r"^([A-Za-z0-9_/-]+/)\.\*$")


def _matches_any(pattern: str, lines: list[str]) -> bool:
    literal = _LITERAL_FOLDER.match(pattern)
    if literal:  # "^prefix.*$" on lines without a newline: the prefix decides
        return any(line.startswith(literal.group(1)) for line in lines)
    regex = _anchored(pattern)
    return any(regex.search(line) for line in lines)
