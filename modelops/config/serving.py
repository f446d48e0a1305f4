"""model.yml ``serving``: the SageMaker XGBoost container's answer switches (modelops/container.py)."""

from __future__ import annotations

from dataclasses import dataclass

from modelops import container

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "inference_output": {"type": "array", "items": {"enum": list(container.ALL_OUTPUT_KEYS)},
                             "minItems": 1, "uniqueItems": True},
        "default_accept": {"enum": list(container.ACCEPTS)},
    },
}


@dataclass(frozen=True)
class ServingConfig:
    """What the endpoint's container answers: SAGEMAKER_INFERENCE_OUTPUT keys and the default Accept."""

    inference_output: tuple[str, ...] = ()  # e.g. ("predicted_label", "probability"); empty: scores only
    default_accept: str | None = None  # the answer format of requests without Accept (the container's: text/csv)

    @property
    def environment(self) -> dict[str, str]:
        """The container environment these settings mean (CreateModel's Environment, the local server's)."""
        return container.environment(self.inference_output, self.default_accept)


def parse(raw: dict) -> ServingConfig:
    serving = raw.get("serving") or {}
    return ServingConfig(**{**serving, "inference_output": tuple(serving.get("inference_output", ()))})


def problems(raw: dict) -> list[str]:
    """Settings the container would take but answer badly: NaN for a key, a 500 for every request or answer."""
    serving = raw.get("serving") or {}
    objective = raw["training"]["hyperparameters"].get("objective")
    keys = serving.get("inference_output", [])
    problems = []
    if keys and objective not in container.OUTPUT_KEYS:
        problems.append(f"key 'serving.inference_output' is set, but the SageMaker XGBoost container has no selectable "
                        f"output for objective {objective!r} (it answers every request with a 500). Fix: remove it; "
                        f"objectives that have one: {list(container.OUTPUT_KEYS)}")
    elif keys:
        unanswered = [k for k in keys if k not in container.OUTPUT_KEYS[objective]]
        if unanswered:
            problems.append(f"key 'serving.inference_output' asks for {unanswered}, which objective {objective} does "
                            f"not answer (the container writes NaN for them). Fix: choose from "
                            f"{list(container.OUTPUT_KEYS[objective])}")
    accept = serving.get("default_accept")
    if accept in container.SELECTABLE_ONLY_ACCEPTS and not keys:
        problems.append(f"key 'serving.default_accept' is {accept!r}, which the container can only answer with "
                        f"serving.inference_output set (every request without Accept would get a 500). Fix: set "
                        f"inference_output too, or use text/csv or application/json")
    return problems
