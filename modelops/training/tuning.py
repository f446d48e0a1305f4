"""Hyperparameter search above the backends: the spec model.yml describes, the report, and applying the best.

A search chooses on the validation split only. Each trial trains on the train split and stops early on the
validation split; the best trial's configuration is then trained once more here (up to ``tuning.max_rounds``,
stopping early as the SageMaker container does) to fix its number of rounds, and that exact configuration
(``num_round`` = its best iteration + 1, floats rounded to 4 significant digits) is what ``--apply`` writes
into model.yml and what the report scores beside the current configuration, both on the validation split.
The test split is read by nothing here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.backends.base import Backend
from modelops.config import ModelConfig, SearchParameter, TuningConfig
from modelops.entities import COMPLETE, FAILED, PRUNED, TuningResult, TuningSpec
from modelops.errors import ConfigError
from modelops.records import TuneRecord

#: Significant digits kept of a searched float when it is written to model.yml.
SIGNIFICANT_DIGITS = 4
#: SageMaker's limit on a tuning job's name.
TUNING_JOB_NAME_LENGTH = 32


def import_optuna():
    """optuna, quiet: its INFO line per trial and tqdm's "IProgress not found" warning in a Jupyter kernel without
    ipywidgets (optuna imports tqdm.auto) would bury the notebook's own output."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def require_tuning(config: ModelConfig) -> TuningConfig:
    """The model's search space.

    Raises:
        ConfigError: model.yml has no ``tuning:`` section.
    """
    if config.tuning is None:
        where = config.folder / "model.yml" if config.folder else "model.yml"
        raise ConfigError(f"{where} has no tuning: section, so there is no search space. Fix: add one, e.g. "
                          f"tuning: {{parameters: {{max_depth: {{int: [2, 10]}}, eta: {{float: [0.01, 0.3], log: "
                          f"true}}}}}} (abalone_model/model.yml has a full example).")
    return config.tuning


def search_space(config: ModelConfig) -> pd.DataFrame:
    """The search as model.yml declares it: each searched parameter, its range and its current value, then the
    objective, budget and early stopping."""
    tuning = require_tuning(config)
    current = config.training.hyperparameters
    rows = [{"setting": p.name, "searched over": p.describe(), "current": current.get(p.name, "(default)")}
            for p in tuning.parameters]
    budget = f"{tuning.trials} trials" + (f" or {tuning.seconds} s" if tuning.seconds else "")
    rows += [{"setting": "objective", "searched over": f"{tuning.objective} ({tuning.direction.lower()})",
              "current": ""},
             {"setting": "budget", "searched over": f"{budget}, {tuning.parallel} at a time (SageMaker)",
              "current": ""},
             {"setting": "rounds", "searched over": f"up to {tuning.max_rounds}, early stopping after "
                                                    f"{tuning.early_stopping_rounds} rounds without improvement",
              "current": current.get("num_round")},
             {"setting": "seed", "searched over": str(tuning.seed), "current": ""}]
    return pd.DataFrame(rows).set_index("setting")


def static_hyperparameters(config: ModelConfig) -> dict[str, Any]:
    """What every trial trains with besides the searched values: model.yml's hyperparameters, with the round cap,
    early stopping and the objective as eval metric set by the search."""
    tuning = require_tuning(config)
    searched = {p.name for p in tuning.parameters}
    static = {k: v for k, v in config.training.hyperparameters.items()
              if k not in searched and k not in ("num_round", "early_stopping_rounds", "eval_metric")}
    static.update(num_round=tuning.max_rounds, early_stopping_rounds=tuning.early_stopping_rounds,
                  eval_metric=tuning.metric)
    return static


def search_key(config: ModelConfig, dataset) -> str:
    """What identifies one search: the same key resumes (locally) or warm-starts (SageMaker) the earlier one.

    The data, the space, the objective, the container and the static hyperparameters; not the budget (a larger
    budget continues the same search), and not the searched parameters' current values in model.yml (so applying
    the result does not start the search over).
    """
    tuning = require_tuning(config)
    key = {"dataset": dataset.dataset_id, "objective": tuning.objective, "container": config.training.container_version,
           "static": static_hyperparameters(config),
           "space": [[p.name, p.kind, p.low, p.high, p.log, list(p.values)] for p in tuning.parameters]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def tuning_job_name(model: str, key: str | None = None) -> str:
    """A name SageMaker accepts for a tuning job (at most 32 characters), beginning with ``tuning_job_prefix``.

    With ``key`` (local studies): the model and the search key, stable, so a rerun finds the study. Without: the
    model and the time, unique per job.
    """
    tail = key[:10] if key else time.strftime("%y%m%d%H%M%S", time.gmtime()) + os.urandom(1).hex()
    return f"{tuning_job_prefix(model)}{tail}"[:TUNING_JOB_NAME_LENGTH]


def tuning_job_prefix(model: str) -> str:
    """What every tuning job name of ``model`` starts with (the model name cut to fit SageMaker's 32 characters)."""
    return model[: TUNING_JOB_NAME_LENGTH - 15].rstrip("-") + "-"


def tuning_spec(ops: Backend, config: ModelConfig, dataset, *, trials: int | None = None,
                seconds: int | None = None) -> TuningSpec:
    """The search model.yml describes, on a gathered dataset's train and validation channels.

    Args:
        trials: the search's total trial budget (default ``tuning.budget.trials``).
        seconds: the wall-clock budget of this run (default ``tuning.budget.seconds``).
    """
    tuning = require_tuning(config)
    key = search_key(config, dataset)
    local = getattr(ops, "name", "") == "local"
    name = tuning_job_name(config.name, key if local else None)
    return TuningSpec(
        model=config.name, job_name=name, container_version=config.training.container_version,
        static_hyperparameters=static_hyperparameters(config), parameters=tuning.parameters,
        objective=tuning.objective, maximize=tuning.maximize, max_trials=int(trials or tuning.trials),
        max_seconds=seconds or tuning.seconds, max_parallel=tuning.parallel, seed=tuning.seed,
        train_uri=dataset.channel_uris["train"], validation_uri=dataset.channel_uris["validation"],
        output_uri=ops.store.uri(config.name, "tuning", name), instance_type=config.training.instance_type,
        instance_count=config.training.instance_count, max_runtime_seconds=config.training.max_runtime_seconds)


def distributions(parameters: tuple[SearchParameter, ...]) -> dict[str, Any]:
    """The search space as Optuna distributions, by parameter name."""
    import_optuna()
    import optuna.distributions as d

    space = {}
    for p in parameters:
        if p.kind == "categorical":
            space[p.name] = d.CategoricalDistribution(list(p.values))
        elif p.kind == "int":
            space[p.name] = d.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            space[p.name] = d.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return space


def suggest(trial, parameter: SearchParameter):
    """One value of ``parameter`` from an Optuna trial."""
    if parameter.kind == "categorical":
        return trial.suggest_categorical(parameter.name, list(parameter.values))
    if parameter.kind == "int":
        return trial.suggest_int(parameter.name, int(parameter.low), int(parameter.high), log=parameter.log)
    return trial.suggest_float(parameter.name, float(parameter.low), float(parameter.high), log=parameter.log)


def parse_value(parameter: SearchParameter, text: Any):
    """A searched value as the tuner reported it (SageMaker: a string) in the parameter's own type."""
    if parameter.kind == "categorical":
        return next((v for v in parameter.values if str(v) == str(text)), text)
    return int(round(float(text))) if parameter.kind == "int" else float(text)


def rounded(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """Floats to ``digits`` significant digits (what a person reads and commits); other values unchanged."""
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def parameter_importances(result: TuningResult, parameters: tuple[SearchParameter, ...],
                          seed: int = 0) -> dict[str, float]:
    """Each searched parameter's share of the objective's variance over the completed trials (Optuna's fANOVA).

    Empty when fewer than two trials completed or nothing varied.
    """
    optuna = import_optuna()
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    space = distributions(parameters)
    done = [t for t in result.trials if t.state == COMPLETE and t.value is not None
            and set(t.hyperparameters) == set(space)]
    if len(done) < 2:
        return {}
    study = optuna.create_study(direction="maximize" if result.maximize else "minimize")
    study.add_trials([optuna.trial.create_trial(params=t.hyperparameters, distributions=space, value=t.value)
                      for t in done])
    try:
        importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError):  # every trial the same value: nothing to apportion
        return {}
    return {name: round(float(value), 4) for name, value in importances.items()}


@dataclass(frozen=True)
class Tuning:
    """A search's outcome as a reviewer reads it: the trials, the best, and best against current on validation."""

    spec: TuningSpec
    result: TuningResult
    problem_type: str
    current: dict[str, Any]  # model.yml's hyperparameters as they are
    tuned: dict[str, Any]  # the best trial's, as --apply writes them (num_round fixed, early stopping removed)
    validation_current: dict[str, float]
    validation_tuned: dict[str, float]
    importances: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changes(self) -> dict[str, Any]:
        """What --apply changes in training.hyperparameters (a None value removes the key)."""
        changed = {k: v for k, v in self.tuned.items() if self.current.get(k) != v}
        changed.update({k: None for k in self.current if k not in self.tuned})
        return changed

    def trials_table(self) -> pd.DataFrame:
        """One row per trial: state, the objective on validation, rounds, time and the searched values."""
        rows = [{"trial": t.number, "state": t.state, self.spec.objective: t.value, "rounds": t.rounds,
                 "seconds": t.duration_seconds, **t.hyperparameters, **({"job": t.job_name} if t.job_name else {})}
                for t in sorted(self.result.trials, key=lambda t: t.number)]
        table = pd.DataFrame(rows).set_index("trial")
        table["rounds"] = table["rounds"].astype("Int64")  # a pruned trial has none
        return table

    def top_trials(self, n: int = 10) -> pd.DataFrame:
        table = self.trials_table()
        done = table[table["state"] == COMPLETE]
        return done.sort_values(self.spec.objective, ascending=not self.spec.maximize).head(n)

    def comparison_table(self) -> pd.DataFrame:
        """Every validation metric of the current and the tuned configuration, and the improvement (positive:
        better)."""
        from modelops.metrics import improvement

        rows = [{"metric": name, "current": value, "tuned": self.validation_tuned.get(name),
                 "improvement": improvement(name, self.validation_tuned.get(name), value)}
                for name, value in self.validation_current.items()]
        return pd.DataFrame(rows).set_index("metric")

    def hyperparameters_table(self) -> pd.DataFrame:
        names = list(dict.fromkeys([*self.current, *self.tuned]))
        rows = [{"hyperparameter": k, "current": self.current.get(k, "-"), "tuned": self.tuned.get(k, "(removed)"),
                 "changed": "yes" if self.current.get(k) != self.tuned.get(k) else ""} for k in names]
        return pd.DataFrame(rows).set_index("hyperparameter")

    @property
    def record(self) -> TuneRecord:
        """What the tune notebook hands on: the best trial against the current configuration."""
        best = self.result.best
        metric = self.spec.metric
        return TuneRecord(
            tuning_job=self.result.job_name, objective=self.spec.objective, maximize=self.spec.maximize,
            best_value=best.value if best else None, best_trial=best.number if best else None,
            current_value=_validation_objective(self.problem_type, metric, self.validation_current),
            tuned_value=_validation_objective(self.problem_type, metric, self.validation_tuned),
            tuned_hyperparameters=self.changes, trials=len(self.result.trials),
            trials_complete=self.result.count(COMPLETE), trials_pruned=self.result.count(PRUNED),
            trials_failed=self.result.count(FAILED), resumed_trials=self.result.resumed_trials,
            seconds=round(self.seconds, 1), importances=self.importances, validation_current=self.validation_current,
            validation_tuned=self.validation_tuned, storage=self.result.storage, parents=self.result.parents)

    def _repr_markdown_(self) -> str:
        best = self.result.best
        resumed = f" ({self.result.resumed_trials} from an earlier run)" if self.result.resumed_trials else ""
        lines = [f"Search `{self.result.job_name}`: **{len(self.result.trials)} trials**{resumed}, "
                 f"{self.result.count(COMPLETE)} complete, {self.result.count(PRUNED)} pruned, "
                 f"{self.result.count(FAILED)} failed, in {self.seconds:.1f} s.",
                 f"Best trial {best.number}: {self.spec.objective} **{best.value:.5g}** at {best.rounds} rounds."
                 if best else "No trial completed."]
        if self.changes:
            lines.append("`python -m ci tune MODEL --apply` writes: "
                         + ", ".join(f"`{k}: {'(removed)' if v is None else v}`" for k, v in self.changes.items()))
        else:
            lines.append("model.yml already holds the best configuration found.")
        return "\n\n".join(lines)


def _validation_objective(problem_type: str, metric: str, values: dict[str, float]) -> float | None:
    """The objective among the report's validation metrics (rmse, mae, auc, logloss; None for one we do not
    report, e.g. aucpr)."""
    return values.get(metric)


def tune_model(ops: Backend, config: ModelConfig, dataset, *, trials: int | None = None, seconds: int | None = None,
               log=print) -> Tuning:
    """Search model.yml's space with the backend's tuner, then score the best against the current configuration
    on the validation split.

    Args:
        ops: the backend (its tuner runs the search; its store holds the dataset).
        config: the model, with a ``tuning:`` section.
        dataset: the gathered dataset (its train and validation splits are read, never its test split).
        trials: the search's total trial budget (default: model.yml's).
        seconds: this run's time budget (default: model.yml's).

    Raises:
        ConfigError: no tuning section, or the search space is rejected.
        TuningFailed: the search failed or no trial completed.
    """
    started = time.monotonic()
    spec = tuning_spec(ops, config, dataset, trials=trials, seconds=seconds)
    result = ops.tuner.tune(spec, log=log)
    current = dict(config.training.hyperparameters)
    tuned, validation_tuned = _tuned(config, dataset, ops.store, result)
    validation_current = validation_metrics(config, ops.store, dataset, current)
    importances = parameter_importances(result, spec.parameters, seed=spec.seed)
    return Tuning(spec, result, config.problem_type, current, tuned, validation_current, validation_tuned,
                  importances, time.monotonic() - started)


def _tuned(config: ModelConfig, dataset, store, result: TuningResult) -> tuple[dict[str, Any], dict[str, float]]:
    """The best trial's configuration as it will be committed, and its validation metrics."""
    tuning = require_tuning(config)
    best = result.best
    values = {p.name: rounded(parse_value(p, best.hyperparameters[p.name])) for p in tuning.parameters}
    tuned = {k: v for k, v in config.training.hyperparameters.items() if k != "early_stopping_rounds"}
    tuned.update(values)
    probe = {**tuned, "num_round": tuning.max_rounds, "early_stopping_rounds": tuning.early_stopping_rounds,
             "eval_metric": tuning.metric}
    fitted, metrics = _fit_and_score(config, store, dataset, probe)
    # Early stopping kept the rounds up to the best iteration (as the container does): training exactly that many
    # rounds, without early stopping, gives the same model.
    tuned["num_round"] = int(fitted.best_iteration) + 1 if fitted.best_iteration is not None else tuning.max_rounds
    return tuned, metrics


def validation_metrics(config: ModelConfig, store, dataset, hyperparameters: dict[str, Any]) -> dict[str, float]:
    """Train ``hyperparameters`` on the train split and score them on the validation split (every metric)."""
    return _fit_and_score(config, store, dataset, hyperparameters)[1]


def _fit_and_score(config: ModelConfig, store, dataset, hyperparameters: dict[str, Any]):
    from modelops.data.datasets import read_split
    from modelops.data.prepare import features_and_target
    from modelops.scores import metrics_for
    from modelops.training.train import fit

    X_train, y_train = features_and_target(read_split(store, dataset, "train"))
    X_validation, y_validation = features_and_target(read_split(store, dataset, "validation"))
    fitted = fit(X_train, y_train, X_validation, y_validation, hyperparameters)
    prediction = fitted.booster.inplace_predict(X_validation)
    return fitted, metrics_for(config.problem_type, y_validation, prediction, config.decision_threshold)


def apply_hyperparameters(path: str | Path, changes: dict[str, Any]) -> str:
    """Write ``changes`` into ``training.hyperparameters`` of a model.yml, changing nothing else in the file.

    Only the lines of the keys that change are touched: a value is replaced in place (its inline comment kept), a
    None value removes the key's line, a new key is added after the last one with the same indentation. ruamel's
    round-trip parser finds the lines; its writer is not used, because it re-wraps untouched flow lists (churn's
    ``columns:``). The result is validated before it replaces the file (atomically).

    Returns:
        The unified diff of the file (empty: nothing changed).

    Raises:
        ConfigError: the file is missing, its hyperparameters are not a block mapping, or the result would not be
            a valid model config.
    """
    import difflib
    import re

    import yaml as pyyaml
    from ruamel.yaml import YAML

    from modelops import atomic
    from modelops.config import parse_model_config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no model config to apply the search's result to. Fix: pass the model folder.")
    before = path.read_text()
    hyperparameters = YAML().load(before)["training"]["hyperparameters"]
    if hyperparameters.fa.flow_style():
        raise ConfigError(f"{path}: training.hyperparameters is written as a flow mapping ({{...}}), which --apply "
                          f"does not edit. Fix: write it as a block mapping, one key per line.")
    lines = before.splitlines(keepends=True)
    rows = {key: hyperparameters.lc.key(key)[0] for key in hyperparameters}
    indent = " " * hyperparameters.lc.key(next(iter(hyperparameters)))[1]
    removed, added = set(), []
    for key, value in changes.items():
        if key not in rows:
            if value is not None:
                added.append(f"{indent}{key}: {_scalar(value)}\n")
            continue
        if value is None:
            removed.add(rows[key])
            continue
        match = re.match(rf"^(\s*{re.escape(key)}\s*:\s*)(.*?)(\s+#.*)?(\r?\n)?$", lines[rows[key]])
        if match is None:
            raise ConfigError(f"{path}: line {rows[key] + 1} does not read `{key}: value`. Fix: put the value on the "
                              f"key's own line.")
        lines[rows[key]] = f"{match.group(1)}{_scalar(value)}{match.group(3) or ''}{match.group(4) or ''}"
    last = max(row for key, row in rows.items() if row not in removed) if set(rows.values()) - removed else None
    if added:
        at = (last if last is not None else hyperparameters.lc.line - 1) + 1
        lines[at:at] = added
        removed = {row + len(added) if row >= at else row for row in removed}
    after = "".join(line for i, line in enumerate(lines) if i not in removed)
    if after == before:
        return ""
    parse_model_config(pyyaml.safe_load(after), source=str(path))
    atomic.write_text(path, after)
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"{path.name} (before)", f"{path.name} (tuned)"))


def _scalar(value: Any) -> str:
    """A value as YAML writes it on one line (0.03025, 6, reg:squarederror, 'yes')."""
    import yaml as pyyaml

    return pyyaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


__all__ = ["Tuning", "apply_hyperparameters", "distributions", "parameter_importances", "search_key", "search_space",
           "suggest", "tune_model", "tuning_spec"]
