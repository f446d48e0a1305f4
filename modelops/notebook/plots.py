"""Figures for reviewers. Each function returns a matplotlib Figure built without pyplot's global state."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def target_distribution(splits: dict[str, pd.DataFrame | pd.Series], problem_type: str, target: str,
                        classes=()) -> Figure:
    """Per split: the target's histogram (regression) or class balance (binary, multiclass: named by ``classes``).

    ``splits`` maps each split to its prepared frame (target first) or to its target alone.
    """
    targets = {name: split.iloc[:, 0] if isinstance(split, pd.DataFrame) else split for name, split in splits.items()}
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    if problem_type in ("binary", "multiclass"):
        rates = pd.DataFrame({name: values.value_counts(normalize=True).sort_index()
                              for name, values in targets.items()}).T.fillna(0.0)
        names = [str(c) for c in classes] if problem_type == "multiclass" and classes else None
        rates.columns = [f"{target} = {names[int(c)] if names else int(c)}" for c in rates.columns]
        colors = ["#4c72b0", "#dd8452"] if problem_type == "binary" else None
        rates.plot.bar(stacked=True, ax=ax, rot=0, color=colors)
        ax.set_ylabel("share of rows")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        everything = np.concatenate([values.to_numpy(dtype=np.float64) for values in targets.values()])
        distinct = len(np.unique(everything[:1_000_000]))  # a histogram's bins need no more rows than that
        bins = np.histogram_bin_edges(everything, bins=min(30, max(5, distinct)))
        for name, values in targets.items():
            ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{name} ({len(values)})")
        ax.set_xlabel(target)
        ax.set_ylabel("density")
        ax.legend()
    ax.set_title(f"{target} by split")
    return figure


def target_correlation(frame: pd.DataFrame, top: int = 15, note: str | None = None) -> Figure:
    """The features most correlated with the target (first column), signed.

    Args:
        frame: prepared rows, target first (for a large table, a sample of them).
        note: what the rows are (``"sample of 50,000 of 1,000,000 rows"``), shown in the title.
    """
    target = frame.columns[0]
    y = frame.iloc[:, 0].to_numpy(np.float64)
    blocks = [_pearson(frame.iloc[:, start:start + 32].to_numpy(dtype=np.float64), y)  # 32 columns at a time
              for start in range(1, frame.shape[1], 32)]
    corr = pd.Series(np.concatenate(blocks) if blocks else [], index=frame.columns[1:], dtype=np.float64).dropna()
    corr = corr.reindex(corr.abs().sort_values(ascending=True).index)[-top:]
    figure = Figure(figsize=(7, 0.28 * len(corr) + 1.0), layout="constrained")
    ax = figure.subplots()
    ax.barh(corr.index.astype(str), corr.values, color=np.where(corr.values >= 0, "#4c72b0", "#c44e52"))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Pearson correlation with {target}")
    ax.set_title(f"Top {len(corr)} features by |correlation|" + (f" ({note})" if note else ""))
    return figure


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each column of ``x``'s Pearson correlation with ``y`` over the rows where both are present (pandas'
    corrwith, in a few array operations instead of one pass per column); NaN for a column that does not vary."""
    present = ~np.isnan(x) & ~np.isnan(y)[:, None]
    count = present.sum(axis=0)
    xs, ys = np.where(present, x, 0.0), np.where(present, np.nan_to_num(y)[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(present, xs - xs.sum(axis=0) / count, 0.0)
        dy = np.where(present, ys - ys.sum(axis=0) / count, 0.0)
        spread = np.sqrt((dx * dx).sum(axis=0) * (dy * dy).sum(axis=0))
        result = (dx * dy).sum(axis=0) / spread
    varies = np.where(present, x, -np.inf).max(axis=0) > np.where(present, x, np.inf).min(axis=0)
    return np.where(varies & (spread > 0), result, np.nan)


def validation_curve(training) -> Figure:
    """The eval metric per boosting round on train and validation (where overfitting shows)."""
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    for name, values in training.curves.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    if training.best_iteration is not None:
        ax.axvline(training.best_iteration + 1, color="grey", linestyle="--", label="best round")
    ax.set_xlabel("boosting round")
    ax.set_ylabel(training.eval_metric)
    if training.curves:
        ax.set_title(f"{training.eval_metric} per round")
        ax.legend()
    else:  # a SageMaker job whose log could not be read
        ax.set_title("no per-round metrics in the training job's log")
    return figure


def evaluation_figures(evaluation) -> dict[str, Figure]:
    """The figures a reviewer needs for this problem type, by scrap name."""
    if evaluation.problem_type == "binary":
        figures = {"roc_curve": roc(evaluation), "precision_recall_curve": precision_recall(evaluation),
                   "confusion_matrix": confusion(evaluation)}
    elif evaluation.problem_type == "multiclass":
        figures = {"confusion_matrix": confusion(evaluation), "class_scores": class_scores(evaluation)}
    else:
        figures = {"predicted_vs_actual": predicted_vs_actual(evaluation), "residuals": residuals(evaluation)}
    figures["feature_importance"] = feature_importance(evaluation.feature_importance)
    return figures


#: Points a scatter draws at most: past this it only gets slower to draw and to load, not more telling.
SCATTER_POINTS = 20_000


def scatter_rows(n: int, limit: int = SCATTER_POINTS) -> tuple[np.ndarray, str]:
    """The rows a scatter of ``n`` rows draws (all, or a seeded sample of ``limit``) and what to call them."""
    if n <= limit:
        return np.arange(n), f"{n:,} rows"
    return np.sort(np.random.default_rng(0).choice(n, size=limit, replace=False)), f"sample of {limit:,} of {n:,} rows"


def predicted_vs_actual(evaluation) -> Figure:
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.subplots()
    shown, rows = scatter_rows(len(evaluation.y_true))
    ax.scatter(evaluation.y_true[shown], evaluation.prediction[shown], s=10, alpha=0.5, label=rows)
    low = float(min(evaluation.y_true.min(), evaluation.prediction.min()))
    high = float(max(evaluation.y_true.max(), evaluation.prediction.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="perfect")
    ax.axhline(float(evaluation.null_prediction[0]), color="#c44e52", linestyle="--", label="null model (mean)")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"Test split: RMSE {evaluation.metrics['rmse']:.3f} "
                 f"(null model {evaluation.null_metrics['rmse']:.3f})")
    ax.legend()
    return figure


def residuals(evaluation) -> Figure:
    figure = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    error = evaluation.prediction - evaluation.y_true
    shown, rows = scatter_rows(len(error))
    left.scatter(evaluation.prediction[shown], error[shown], s=10, alpha=0.5)
    left.set_title(rows, fontsize="small")
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel("predicted")
    left.set_ylabel("residual (predicted - actual)")
    right.hist(error, bins=30)
    right.set_xlabel("residual")
    right.set_ylabel("rows")
    figure.suptitle(f"Residuals on the test split (MAE {evaluation.metrics['mae']:.3f})")
    return figure


def roc(evaluation) -> Figure:
    from modelops.scores import roc_curve

    fpr, tpr = roc_curve(evaluation.y_true, evaluation.prediction)
    figure = Figure(figsize=(4.8, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(fpr, tpr, label=f"model (AUC {evaluation.metrics['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance / null model (AUC 0.5)")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve, test split")
    ax.legend(loc="lower right")
    return figure


def precision_recall(evaluation) -> Figure:
    from modelops.scores import precision_recall_curve

    precision, recall = precision_recall_curve(evaluation.y_true, evaluation.prediction)
    figure = Figure(figsize=(4.8, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(recall, precision, label="model")
    ax.axhline(float(evaluation.y_true.mean()), color="grey", linestyle="--", label="positive rate")
    ax.scatter([evaluation.metrics["recall"]], [evaluation.metrics["precision"]], color="#c44e52", zorder=3,
               label=f"threshold {evaluation.threshold:g}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall curve, test split")
    ax.legend(loc="lower left")
    return figure


def confusion(evaluation) -> Figure:
    """Actual against predicted class on the test split (binary: at the decision threshold)."""
    table = evaluation.confusion_matrix()
    k = len(table)
    size = max(4.2, 0.7 * k + 2.4)
    figure = Figure(figsize=(size, size * 0.86), layout="constrained")
    ax = figure.subplots()
    ax.imshow(table.to_numpy(), cmap="Blues")
    dark = table.to_numpy().max() / 2
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=12 if k <= 6 else 8,
                color="white" if value > dark else "black")
    columns = [str(c).removeprefix("predicted ") for c in table.columns]
    tilted = k > 2 and max(map(len, columns)) > 6
    ax.set_xticks(range(k), columns, rotation=30 if tilted else 0, ha="right" if tilted else "center")
    ax.set_yticks(range(k), [str(i).removeprefix("actual ") for i in table.index])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix, test split" if evaluation.problem_type == "multiclass"
                 else f"Confusion matrix at {evaluation.threshold:g}")
    return figure


def class_scores(evaluation) -> Figure:
    """Per class: precision, recall and F1 of the most probable class, with each class's share of the test rows."""
    table = evaluation.confusion_matrix().to_numpy()
    predicted, actual, hits = table.sum(axis=0), table.sum(axis=1), np.diag(table)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(actual > 0, hits / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    names = [f"{c}\n({n} rows)" for c, n in zip(evaluation.classes, actual)]
    scores = pd.DataFrame({"precision": precision, "recall": recall, "F1": f1}, index=names)
    figure = Figure(figsize=(max(6.0, 1.1 * len(names) + 2), 3.4), layout="constrained")
    ax = figure.subplots()
    scores.plot.bar(ax=ax, rot=0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"Per class, test split (macro F1 {evaluation.metrics['f1_macro']:.3f}, accuracy "
                 f"{evaluation.metrics['accuracy']:.3f})")
    ax.legend(loc="lower right")
    return figure


def feature_importance(importance: pd.Series, top: int = 15) -> Figure:
    shown = importance.head(top)[::-1]
    figure = Figure(figsize=(7, 0.28 * len(shown) + 1.0), layout="constrained")
    ax = figure.subplots()
    ax.barh(shown.index.astype(str), shown.to_numpy())
    ax.set_xlabel(f"importance ({importance.name})")
    ax.set_title(f"Top {len(shown)} features")
    return figure


def latency(measured) -> Figure:
    """Single-row request latency through the endpoint: distribution with p50 and p99."""
    figure = Figure(figsize=(7, 3.0), layout="constrained")
    ax = figure.subplots()
    ax.hist(measured.samples_ms, bins=40)
    for value, label in ((measured.p50_ms, "p50"), (measured.p99_ms, "p99")):
        ax.axvline(value, color="#c44e52", linestyle="--")
        ax.annotate(f"{label} {value:.2f} ms", (value, ax.get_ylim()[1] * 0.9), rotation=90, ha="right")
    ax.set_xlabel("ms per single-row request")
    ax.set_ylabel("requests")
    ax.set_title(f"{measured.calls} single-row calls; batch of {measured.batch_rows:,} rows at "
                 f"{measured.rows_per_second:,.0f} rows/s")
    return figure


def gate_latency(gate) -> Figure:
    """The promotion gate's request latencies against the SLO (``gate``: a modelops.release.gate.GateResult)."""
    figure = Figure(figsize=(7, 3.0), layout="constrained")
    ax = figure.subplots()
    # A log axis: the requests (a few ms) and an SLO (hundreds of ms) both stay readable.
    shown = [v for v in (*gate.latencies_ms, gate.slo.p50_ms, gate.slo.p99_ms) if v]
    low, high = (min(shown), max(shown)) if shown else (0.1, 1.0)
    ax.hist(gate.latencies_ms, bins=np.geomspace(low * 0.9, high * 1.1, 50), color="#4c72b0")
    ax.set_xscale("log")
    for value, label, style in ((gate.p50_ms, "p50", "--"), (gate.p99_ms, "p99", "--"),
                                (gate.slo.p50_ms, "SLO p50", ":"), (gate.slo.p99_ms, "SLO p99", ":")):
        if value is not None:
            color = "#c44e52" if label.startswith("SLO") else "#333333"
            ax.axvline(value, color=color, linestyle=style)
            ax.annotate(f"{label} {value:.1f} ms", (value, ax.get_ylim()[1] * 0.9), rotation=90, ha="right",
                        color=color)
    ax.set_xlabel("ms per single-row request through staging")
    ax.set_ylabel("requests")
    verdict = "passed" if gate.passed else "FAILED"
    sample = f"{len(gate.latencies_ms):,} single-row requests" if gate.latency_requests else "requests"
    ax.set_title(f"Promotion gate {verdict}: {gate.rows:,} rows replayed, {gate.error_count} errors\nlatency of "
                 f"{sample}")
    return figure


def review_metrics(review) -> Figure:
    """Each metric: the challenger beside the champion's and the null model's values (left), and the improvement over
    the champion with its 95% interval (right; positive is better, the dashed band is the minimum change asked for).
    ``review``: a modelops Review."""
    rows = list(review.record.comparison)
    figure = Figure(figsize=(10, 0.95 * max(1, len(rows)) + 1.3), layout="constrained")
    grid = figure.subplots(len(rows) or 1, 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    rules = {r.metric: r for r in review_rules(review)}
    for (ax, interval_ax), row in zip(grid, rows):
        bars = {f"challenger{f' v{review.challenger.version}' if review.challenger.version else ''}": row.challenger}
        if row.champion is not None:
            bars[f"champion v{review.champion.version}"] = row.champion
        if review.challenger.null_metrics.get(row.metric) is not None:
            bars["null model"] = review.challenger.null_metrics[row.metric]
        colors = ["#4c72b0", "#8c8c8c", "#dddddd"][: len(bars)]
        ax.barh(list(bars)[::-1], list(bars.values())[::-1], color=colors[::-1])
        for y, value in enumerate(list(bars.values())[::-1]):
            ax.annotate(f"{value:.4g}", (value, y), xytext=(3, 0), textcoords="offset points", va="center")
        reading = "" if row.improvement is None else f" (challenger {row.change}: {row.improvement:+.4g})"
        ax.set_title(f"{row.metric}{' *' if row.gated else ''}{reading}", loc="left", fontsize=10)
        _interval(interval_ax, row, rules.get(row.metric))
    if not rows:
        grid[0][0].set_title("no metrics to compare")
    figure.suptitle(f"Verdict {review.verdict}: test metrics (* watched); right: improvement over the champion, "
                    f"95% interval")
    return figure


def review_rules(review) -> list:
    """The minimum-change rules of the metrics the verdict decides on (empty when the review has no config)."""
    config = getattr(review, "config", None)
    return list(config.review.decided_on(config.problem_type)) if config is not None else []


def _interval(ax, row, rule) -> None:
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks([])
    if row.ci95 is None:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no interval (no champion on the same rows)", ha="center", va="center",
                transform=ax.transAxes, color="#666666", fontsize=8)
        return
    low, high = row.ci95
    color = {"better": "#1a7f37", "worse": "#cf222e"}.get(row.change, "#777777")
    if rule is not None and rule.min_absolute_change:
        ax.axvspan(0, rule.min_absolute_change, color="#eeeeee", zorder=0)
    ax.plot([low, high], [0, 0], color=color, linewidth=4, solid_capstyle="butt")
    ax.plot([row.improvement], [0], "o", color="black", markersize=5)
    reach = max(abs(low), abs(high), abs(row.improvement), 1e-12) * 1.3
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-1, 1)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"[{low:+.3g}, {high:+.3g}]", loc="left", fontsize=9, color=color)


def optimisation_history(tuning) -> Figure:
    """Each trial's objective on the validation split, the best so far, and the current configuration's score."""
    figure = Figure(figsize=(8, 3.4), layout="constrained")
    ax = figure.subplots()
    trials = sorted(tuning.result.trials, key=lambda t: t.number)
    colors = {"COMPLETE": "#4c72b0", "PRUNED": "#bbbbbb", "FAIL": "#cf222e"}
    for state, color in colors.items():
        shown = [t for t in trials if t.state == state and t.value is not None]
        if shown:
            ax.scatter([t.number for t in shown], [t.value for t in shown], s=14, color=color,
                       label=f"{state.lower()} ({len(shown)})", zorder=3)
    best, line = None, []
    for t in trials:
        if t.state == "COMPLETE" and t.value is not None:
            if best is None or (t.value > best if tuning.spec.maximize else t.value < best):
                best = t.value
        line.append(best)
    ax.step([t.number for t in trials], line, where="post", color="#1a7f37", label="best so far")
    current = tuning.record.current_value
    if current is not None:
        ax.axhline(current, color="#c44e52", linestyle="--", label=f"current model.yml ({current:.4g})")
    ax.set_xlabel("trial")
    ax.set_ylabel(tuning.spec.objective)
    ax.set_title(f"Optimisation history: {len(trials)} trials, best {tuning.result.best.value:.5g}"
                 if tuning.result.best else "Optimisation history")
    ax.legend(fontsize=8)
    return figure


def parameter_importances(tuning) -> Figure:
    """Each searched parameter's share of the objective's variance (Optuna's fANOVA over the completed trials)."""
    importances = pd.Series(tuning.importances, dtype=float).sort_values()
    figure = Figure(figsize=(7, 0.3 * max(1, len(importances)) + 1.2), layout="constrained")
    ax = figure.subplots()
    if importances.empty:
        ax.set_title("Parameter importances: too few completed trials to tell")
        return figure
    ax.barh(importances.index.astype(str), importances.to_numpy(), color="#4c72b0")
    for y, value in enumerate(importances.to_numpy()):
        ax.annotate(f"{value:.2f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("importance (share of the objective's variance, fANOVA)")
    ax.set_title("Parameter importances")
    return figure


def drift_figures(report) -> dict[str, Figure]:
    """The monitor's figures (``report``: a MonitorReport): every compared feature's distance against its threshold,
    then one figure for each drifting feature, baseline against live."""
    compared = [c for c in report.checks if c.drift is not None]
    figures = {"drift_overview": drift_overview(compared)} if compared else {}
    for check in report.checks:
        if check.drifted:
            figures[f"drift_{_scrap_name(check.feature.name)}"] = feature_drift(check)
    return figures


def drift_overview(checks) -> Figure:
    """Each feature's drift distance as a share of its threshold (beyond 1 and significant: drift)."""
    figure = Figure(figsize=(7, 0.24 * len(checks) + 1.2), layout="constrained")
    ax = figure.subplots()
    ratios = [c.drift.distance / c.drift.threshold if c.drift.threshold else 0.0 for c in checks]
    colors = ["#c44e52" if c.drifted else "#dd8452" if r > 1 else "#4c72b0" for c, r in zip(checks, ratios)]
    labels = [f"{c.feature.name} ({c.drift.test})" for c in checks]
    ax.barh(labels[::-1], ratios[::-1], color=colors[::-1])
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("distance / threshold (red: drift; orange: above, not significant)")
    ax.set_title("Drift against the baseline, per feature")
    return figure


def feature_drift(check) -> Figure:
    """One feature, training baseline against the live window: histograms (numbers) or category shares."""
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    drift = check.drift
    baseline = "training" if check.part == "data" else "validation"  # the predictions' baseline: validation rows
    if check.feature.kind == "numeric":
        (values, weights), live = check.baseline_values, np.asarray(check.live_values)
        both = np.concatenate([values, live]) if len(live) else values
        bins = np.histogram_bin_edges(both, bins=30)
        ax.hist(values, bins=bins, weights=weights, density=True, alpha=0.5,
                label=f"{baseline} ({drift.baseline_rows})")
        ax.hist(live, bins=bins, density=True, alpha=0.5, label=f"live ({drift.live_rows})")
        ax.set_xlabel(check.feature.name)
        ax.set_ylabel("density")
    else:
        base, live = check.baseline_values, check.live_values
        base_total, live_total = max(sum(base.values()), 1), max(sum(live.values()), 1)
        categories = sorted(set(base) | set(live),
                            key=lambda c: -abs(live.get(c, 0) / live_total - base.get(c, 0) / base_total))[:15]
        positions = np.arange(len(categories))
        ax.barh(positions - 0.2, [base.get(c, 0) / base_total for c in categories], height=0.4,
                label=f"{baseline} ({drift.baseline_rows})")
        ax.barh(positions + 0.2, [live.get(c, 0) / live_total for c in categories], height=0.4,
                label=f"live ({drift.live_rows})")
        ax.set_yticks(positions, [str(c) for c in categories])
        ax.invert_yaxis()
        ax.set_xlabel("share of rows (the categories that moved most)")
    ax.legend()
    ax.set_title(f"{check.feature.name}: {drift.test} {drift.distance:.3g} (threshold {drift.threshold:g})")
    return figure


def _scrap_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "feature"
