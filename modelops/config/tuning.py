"""model.yml ``tuning``: the hyperparameter search's space, objective and budget (modelops/training/tuning.py runs
it)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from modelops.config.schema import NUMBER, given
from modelops.config.training import SAGEMAKER_XGBOOST_HYPERPARAMETERS
from modelops.metrics import DEFAULT_TUNING_OBJECTIVE, TUNING_OBJECTIVES

#: Rounds a trial stops after without improving, unless tuning or training.hyperparameters sets it.
DEFAULT_EARLY_STOPPING_ROUNDS = 30
DEFAULT_MAX_ROUNDS = 1000

#: Hyperparameters a search may not vary: the search sets them itself (num_round through early stopping on the
#: validation split, eval_metric to the objective), or they are not the model's to choose.
UNSEARCHABLE = frozenset({"num_round", "early_stopping_rounds", "eval_metric", "objective", "num_class", "nthread",
                          "seed", "verbosity", "csv_weights"})
_SEARCH_KINDS = ("int", "float", "categorical")

_RANGE = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}
#: One searched hyperparameter: ``{int: [2, 10]}``, ``{float: [0.01, 0.3], log: true}`` or ``{categorical: [a, b]}``.
_SEARCH_PARAMETER = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"int": _RANGE, "float": _RANGE, "log": {"type": "boolean"},
                   "categorical": {"type": "array", "minItems": 1,
                                   "items": {"type": ["string", "number", "boolean"]}}},
}
_AT_LEAST_ONE = {"type": "integer", "minimum": 1}

SCHEMA = {
    "type": "object",
    "required": ["parameters"],
    "additionalProperties": False,
    "properties": {
        "objective": {"type": "string"},
        "parameters": {"type": "object", "minProperties": 1, "additionalProperties": _SEARCH_PARAMETER},
        "budget": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"trials": _AT_LEAST_ONE, "seconds": _AT_LEAST_ONE, "parallel": _AT_LEAST_ONE},
        },
        "seed": {"type": "integer", "minimum": 0},
        "max_rounds": {"type": "integer", "minimum": 2},
        "early_stopping_rounds": _AT_LEAST_ONE,
    },
}


@dataclass(frozen=True)
class SearchParameter:
    """One hyperparameter a search varies: an int or float range (log-scaled or not), or categorical values."""

    name: str
    kind: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple = ()

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"one of {list(self.values)}"
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{' (log scale)' if self.log else ''}"

    def problems(self, key: str) -> list[str]:
        """What no search can do with this range (model.yml's check, and both tuners before they start)."""
        if self.kind == "categorical":
            return [] if self.values else [f"key '{key}' lists no values. Fix: list at least one"]
        if self.low >= self.high:
            return [f"key '{key}' has low {self.low:g} not below high {self.high:g}. Fix: order them [low, high]"]
        if self.log and self.low <= 0:
            return [f"key '{key}' is log-scaled, so its low must be above 0 (it is {self.low:g}). Fix: raise it or "
                    f"drop log"]
        return []

    @classmethod
    def parse(cls, name: str, spec: dict) -> SearchParameter:
        """One entry of ``tuning.parameters`` (already checked: exactly one kind)."""
        kind = next(k for k in _SEARCH_KINDS if k in spec)
        if kind == "categorical":
            return cls(name, kind, values=tuple(spec[kind]))
        low, high = spec[kind]
        cast = int if kind == "int" else float
        return cls(name, kind, cast(low), cast(high), bool(spec.get("log", False)))


@dataclass(frozen=True)
class TuningConfig:
    """The hyperparameter search (``tuning:`` in model.yml): the space, the objective and the budget.

    Every trial trains on the train split with up to ``max_rounds`` rounds, stops early when the objective on the
    validation split has not improved for ``early_stopping_rounds`` rounds, and is scored on the validation split.
    The test split is never read.
    """

    parameters: tuple[SearchParameter, ...]
    objective: str  # the validation metric, as the SageMaker container names it: "validation:rmse"
    trials: int = 50
    seconds: int | None = None  # wall-clock budget besides the trial budget (None: trials only)
    parallel: int = 1  # SageMaker: training jobs at once (local trials run one at a time, reproducibly)
    seed: int = 0
    max_rounds: int = DEFAULT_MAX_ROUNDS
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS

    @property
    def metric(self) -> str:
        """The XGBoost eval metric the objective names (``rmse`` for ``validation:rmse``)."""
        return self.objective.split(":", 1)[1]

    @property
    def maximize(self) -> bool:
        return next(higher for table in TUNING_OBJECTIVES.values() for name, higher in table.items()
                    if name == self.metric)

    @property
    def direction(self) -> str:
        """``Maximize`` or ``Minimize``, as SageMaker's tuning objective says it."""
        return "Maximize" if self.maximize else "Minimize"


def parse(raw: dict) -> TuningConfig | None:
    """The search, or None when model.yml has no ``tuning:`` section."""
    tuning = raw.get("tuning")
    if tuning is None:
        return None
    return TuningConfig(**{
        **given(tuning, TuningConfig), **(tuning.get("budget") or {}),
        "parameters": tuple(SearchParameter.parse(name, spec) for name, spec in tuning["parameters"].items()),
        "objective": _objective(raw), "seed": tuning.get("seed", raw["split"]["seed"]),
        "early_stopping_rounds": _early_stopping_rounds(raw)})


def _objective(raw: dict) -> str:
    """model.yml's objective; else the training eval_metric when a search can optimise it; else the default."""
    configured = raw["tuning"].get("objective")
    if configured:
        return configured
    eval_metric = raw["training"]["hyperparameters"].get("eval_metric")
    choices = TUNING_OBJECTIVES[raw["problem_type"]]
    return f"validation:{eval_metric if eval_metric in choices else DEFAULT_TUNING_OBJECTIVE[raw['problem_type']]}"


def _early_stopping_rounds(raw: dict) -> int:
    """tuning's early_stopping_rounds; else training's; else the default."""
    hyper = raw["training"]["hyperparameters"]
    return raw["tuning"].get("early_stopping_rounds",
                             hyper.get("early_stopping_rounds", DEFAULT_EARLY_STOPPING_ROUNDS))


def problems(raw: dict) -> list[str]:
    """An objective the problem type cannot optimise, parameters that cannot be searched or have no valid range."""
    tuning = raw.get("tuning")
    if tuning is None:
        return []
    problems = []
    choices = TUNING_OBJECTIVES[raw["problem_type"]]
    objective = tuning.get("objective")
    if objective is not None and (not objective.startswith("validation:") or objective[11:] not in choices):
        problems.append(f"key 'tuning.objective' is {objective!r}, not a validation metric a {raw['problem_type']} "
                        f"search can optimise. Fix: use one of {[f'validation:{m}' for m in choices]}")
    for name, spec in tuning["parameters"].items():
        problems += _parameter_problems(name, spec)
    rounds = tuning.get("max_rounds", DEFAULT_MAX_ROUNDS)
    stopping = _early_stopping_rounds(raw)
    if stopping >= rounds:
        problems.append(f"key 'tuning.early_stopping_rounds' ({stopping}) is not below tuning.max_rounds ({rounds}), "
                        f"so no trial would stop early. Fix: lower it or raise max_rounds")
    return problems


def _parameter_problems(name: str, spec: dict) -> list[str]:
    key = f"tuning.parameters.{name}"
    kinds = [k for k in _SEARCH_KINDS if k in spec]
    problems = []
    if name in UNSEARCHABLE:
        why = ("the search sets it itself (num_round by early stopping on the validation split: see "
               "tuning.max_rounds)" if name in ("num_round", "early_stopping_rounds", "eval_metric")
               else "it is not a modelling choice")
        problems.append(f"key '{key}' cannot be searched: {why}. Fix: remove it")
    elif name not in SAGEMAKER_XGBOOST_HYPERPARAMETERS:
        close = difflib.get_close_matches(name, SAGEMAKER_XGBOOST_HYPERPARAMETERS, n=1)
        problems.append(f"key '{key}' is not a SageMaker XGBoost hyperparameter"
                        f"{f' (did you mean {close[0]!r}?)' if close else ''}. Fix: correct the spelling")
    if len(kinds) != 1:
        problems.append(f"key '{key}' must give exactly one of int: [low, high], float: [low, high] or "
                        f"categorical: [values]. Fix: e.g. {{float: [0.01, 0.3], log: true}}")
        return problems
    kind = kinds[0]
    if kind == "categorical":
        if "log" in spec:
            problems.append(f"key '{key}' is categorical, so log does not apply. Fix: remove log")
        return problems
    low, high = spec[kind]
    if kind == "int" and (int(low) != low or int(high) != high):
        return [*problems, f"key '{key}' is an int range, but [{low}, {high}] holds a fraction. Fix: use whole "
                           f"numbers, or float:"]
    return problems + SearchParameter.parse(name, spec).problems(key)
