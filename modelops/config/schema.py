"""What the section modules share: schema building blocks, the schema check's sentences, the keys a mapping sets."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any

from modelops.errors import ConfigError

NUMBER = {"type": "number"}
#: The SageMaker instance keys that training and each environment take.
INSTANCE_TYPE = {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$"}
INSTANCE_COUNT = {"type": "integer", "minimum": 1}
#: The compute a training job or an endpoint gets when model.yml does not say.
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_INSTANCE_COUNT = 1


def given(raw: dict, cls: type) -> dict[str, Any]:
    """The keys of ``raw`` that are fields of the dataclass ``cls``, so that its own defaults fill in the rest."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in raw.items() if key in names}


def check_schema(raw: dict, schema: dict, source: str) -> None:
    """Raise one ConfigError listing every key the JSON schema refuses, each with its fix."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(map(str, e.path)))
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(describe_schema_error(e) for e in errors))


def describe_schema_error(error) -> str:
    """One jsonschema error as a sentence naming the key, what is wrong and the fix."""
    key = ".".join(str(p) for p in error.path) or "(top level)"
    schema_keys = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    if error.validator == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        name = missing.group(1) if missing else error.message
        full = f"{key}.{name}" if error.path else name
        return f"key '{full}' is missing. Fix: add it (see abalone_model/model.yml for an example)"
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        hints = []
        for name in extra:
            close = difflib.get_close_matches(name, schema_keys, n=1)
            full = f"{key}.{name}" if error.path else name
            hints.append(f"'{full}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return f"unknown key {', '.join(hints)}. Fix: remove it or correct the spelling; allowed: {schema_keys}"
    if error.validator == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, str) else " or ".join(expected)
        return f"key '{key}' must be {expected}, got {kind(error.instance)} {error.instance!r}. Fix: change its value"
    if error.validator == "enum":
        return f"key '{key}' is {error.instance!r}, which is not one of {error.validator_value}. Fix: use one of those"
    if error.validator == "pattern" and key.endswith("sha256"):
        return f"key '{key}' is {error.instance!r}, not a 64-character lowercase hex sha256. Fix: paste the digest"
    if error.validator == "pattern":
        return f"key '{key}' is {error.instance!r}, which does not match {error.validator_value}. Fix: correct it"
    return f"key '{key}': {error.message}. Fix: correct the value"


def kind(value: Any) -> str:
    """What a YAML value is, in words: 'a mapping', 'a list', 'nothing (null)', ..."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)
