"""Local tuner: an Optuna study (seeded multivariate TPE, percentile pruning) over in-process XGBoost trials.

The study runs in memory and every finished trial is written to an SQLite study under the backend's home
(``<home>/tuning/<model>.db``), so a search that is interrupted (Ctrl-C, a killed kernel) resumes from its
finished trials. Reporting each round to an SQLite study directly costs more than the trials themselves, since
the pruner reads every trial back at each report (benchmarks/README.md, section 8).
"""

from __future__ import annotations

import time
from pathlib import Path

from modelops.backends.base import Tuner
from modelops.backends.local.store import LocalStore
from modelops.backends.local.trainer import read_channel
from modelops.entities import COMPLETE, FAILED, PRUNED, TuningResult, TuningSpec, TuningTrial
from modelops.errors import TuningFailed

#: Trials between two progress lines (a new best is always logged): the trials table has every one.
LOG_EVERY = 10
#: Rounds between two reports to the pruner (reports at the same rounds in every trial, so they compare).
REPORT_EVERY = 5
#: A trial is pruned when, at the same round, it is worse than this percentile of the trials before it: only the
#: clearly hopeless go. The median (50) pruned 74 of 100 abalone trials and cost the search its best region (slow
#: learning rates look bad early and win late): best validation RMSE 2.143 against 2.138 unpruned.
PRUNER_PERCENTILE = 80.0
#: Trials that always run to the end before any is pruned, and rounds before a trial may be pruned.
PRUNER_STARTUP_TRIALS = 10
PRUNER_WARMUP_ROUNDS = 100


class LocalTuner(Tuner):
    """Trials train in this process on the channel CSVs, as the local trainer does."""

    def __init__(self, store: LocalStore, folder: Path):
        self.store = store
        self.folder = Path(folder)

    def database(self, model: str) -> Path:
        return self.folder / f"{model}.db"

    def tune(self, spec: TuningSpec, *, log=print) -> TuningResult:
        import xgboost

        from modelops.training.train import early_stopping_callback, xgboost_params
        from modelops.training.tuning import import_optuna, suggest

        self.check_space(spec)
        optuna = import_optuna()
        started = time.monotonic()
        X_train, y_train = read_channel(self.store, spec.train_uri, "train")
        X_validation, y_validation = read_channel(self.store, spec.validation_uri, "validation")
        direction = "maximize" if spec.maximize else "minimize"
        stored = self._stored_study(spec, direction)
        finished = [t for t in stored.get_trials(deepcopy=False) if t.state.is_finished()]
        study = optuna.create_study(
            direction=direction, sampler=_sampler(spec.seed),
            pruner=optuna.pruners.PercentilePruner(PRUNER_PERCENTILE, n_startup_trials=PRUNER_STARTUP_TRIALS,
                                                   n_warmup_steps=PRUNER_WARMUP_ROUNDS))
        study.add_trials(finished)
        dtrain = dvalidation = None
        if finished:
            log(f"{spec.job_name}: resuming, {len(finished)} trial(s) already finished ({self.database(spec.model)})")

        def objective(trial) -> float:
            nonlocal dtrain, dvalidation
            sampled = {parameter.name: suggest(trial, parameter) for parameter in spec.parameters}
            params, num_round, stopping = xgboost_params({**spec.static_hyperparameters, **sampled})
            if dtrain is None:
                dtrain = xgboost.DMatrix(X_train, label=y_train, nthread=params["nthread"])
                dvalidation = xgboost.DMatrix(X_validation, label=y_validation, nthread=params["nthread"])
            try:
                booster = xgboost.train(params, dtrain, num_boost_round=num_round,
                                        evals=[(dvalidation, "validation")], verbose_eval=False,
                                        callbacks=[early_stopping_callback(params, stopping or num_round),
                                                   _pruning(trial, spec.metric)])
            except xgboost.core.XGBoostError as exc:
                trial.set_user_attr("error", (str(exc).strip().splitlines() or ["XGBoostError"])[0])
                raise
            trial.set_user_attr("rounds", int(booster.best_iteration) + 1)
            return float(booster.best_score)

        def record(study, trial) -> None:
            stored.add_trial(trial)
            if trial.state.name == "FAIL":
                log(f"trial {trial.number} failed: {trial.user_attrs.get('error', '(no reason)')}")
            elif _is_best(study, trial) or (trial.number + 1) % LOG_EVERY == 0:
                log(_progress(spec, study, trial))

        remaining = spec.max_trials - len(finished)
        if remaining > 0:
            log(f"{spec.job_name}: {remaining} trial(s) to run, optimising {spec.objective} "
                f"({direction}; seed {spec.seed})")
            study.optimize(objective, n_trials=remaining, timeout=spec.max_seconds, callbacks=[record],
                           catch=(xgboost.core.XGBoostError,))
        trials = tuple(_trial(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        result = TuningResult(job_name=spec.job_name, objective=spec.objective, maximize=spec.maximize,
                              trials=trials, duration_seconds=round(time.monotonic() - started, 3),
                              resumed_trials=len(finished), storage=str(self.database(spec.model)))
        if result.best is None:
            raise TuningFailed(f"search {spec.job_name}: no trial completed ({len(trials)} finished: "
                               f"{result.count(PRUNED)} pruned, {result.count(FAILED)} failed). Fix: check "
                               f"tuning.parameters in model.yml (a failed trial's error is in the log above), or "
                               f"raise tuning.budget.")
        return result

    def _stored_study(self, spec: TuningSpec, direction: str):
        from optuna.storages import RDBStorage

        from modelops.training.tuning import import_optuna

        optuna = import_optuna()
        path = self.database(spec.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.create_study(storage=storage, study_name=spec.job_name, direction=direction,
                                   load_if_exists=True)


def _sampler(seed: int):
    """Seeded TPE, multivariate: it models the parameters jointly (learning rate and rounds, depth and child
    weight move together). On abalone, 100 trials: best validation RMSE 2.1358 against 2.1431 independent."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _pruning(trial, metric: str):
    """Report the validation metric every REPORT_EVERY rounds; stop the trial when the pruner says it is hopeless.

    optuna-integration's XGBoostPruningCallback does the same at every round; this one reports less often (the
    pruner reads every trial at each report) and needs no extra package.
    """
    import optuna
    import xgboost

    class Pruning(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
            if (epoch + 1) % REPORT_EVERY:
                return False
            trial.report(float(evals_log["validation"][metric][-1]), step=epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch + 1}")
            return False

    return Pruning()


def _trial(frozen) -> TuningTrial:
    state = {"COMPLETE": COMPLETE, "PRUNED": PRUNED}.get(frozen.state.name, FAILED)
    value = frozen.value
    if value is None and frozen.intermediate_values:
        value = frozen.intermediate_values[max(frozen.intermediate_values)]
    duration = frozen.duration.total_seconds() if frozen.duration else None
    return TuningTrial(number=frozen.number, state=state, value=None if value is None else float(value),
                       hyperparameters=dict(frozen.params), rounds=frozen.user_attrs.get("rounds"),
                       duration_seconds=None if duration is None else round(duration, 3))


def _is_best(study, trial) -> bool:
    try:
        return trial.state.name == "COMPLETE" and study.best_trial.number == trial.number
    except ValueError:
        return False


def _progress(spec: TuningSpec, study, trial) -> str:
    try:
        best = f"best {study.best_value:.5g} (trial {study.best_trial.number})"
    except ValueError:
        best = "no completed trial yet"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    if trial.state.name == "COMPLETE":
        what = f"{spec.metric} {trial.value:.5g} at {trial.user_attrs.get('rounds')} rounds"
    else:
        what = trial.state.name.lower()
    return f"trial {trial.number}: {what} in {seconds:.1f}s; {best}"
