"""Drift tests: how far live values are from the training baseline, and the threshold past which that is drift.

Numeric features (the baseline is a weighted sample: its KLL sketch, modelops.monitoring.baseline.sketch_sample):

- ``ks``: the largest distance between the two cumulative distributions, Model Monitor's own
  ``baseline_drift_check`` (its ``linf_simple``); 0 to 1, default threshold 0.1 (Model Monitor's).
- ``wasserstein``: the earth mover's distance, in units of the baseline's standard deviation (so one
  threshold fits every feature); default 0.2.

Categorical features (a one-hot group read back as one column; rows with no known category count as a
category of their own, so a flood of never-seen values shows as drift too):

- ``jensen_shannon``: the Jensen-Shannon distance (base 2), 0 to 1; default 0.1.
- ``psi``: the population stability index; default 0.2 (the usual "significant shift").
- ``linf``: the largest difference in one category's share, Model Monitor's ``LInfinity``; default 0.1.

``comparison_method: robust`` (the default, as in Model Monitor's suggested constraints) also asks that the
difference be statistically significant at 5% (the two-sample Kolmogorov-Smirnov test for numbers, the
chi-squared test of homogeneity for categories), so a window of a few dozen rows does not call drift on
noise; ``simple`` compares the distance with the threshold alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelops.config import DRIFT_TESTS

#: The significance level of the robust comparison.
ALPHA = 0.05
#: The share a category absent on one side is given by PSI (its logarithm is otherwise infinite).
PSI_FLOOR = 1e-4
#: The label of rows with no known category in categorical distributions.
NO_CATEGORY = "(none of the training categories)"


@dataclass(frozen=True)
class DriftTest:
    """One test as model.yml declares it (``modelops.config.DRIFT_TESTS``: kind, default threshold, whether its
    distance lies in [0, 1]), with the distance it computes."""

    name: str
    kind: str  # numeric | categorical
    default_threshold: float
    bounded: bool
    title: str
    distance: Callable


def ks_distance(base_values: np.ndarray, base_weights: np.ndarray, live: np.ndarray) -> float:
    """The largest gap between the weighted baseline's CDF and the live values' CDF (0: same, 1: disjoint)."""
    if len(base_values) == 0 or len(live) == 0:
        return 0.0
    order = np.argsort(base_values, kind="mergesort")
    values, weights = base_values[order], base_weights[order]
    cdf = np.cumsum(weights) / weights.sum()
    live = np.sort(live)
    points = np.union1d(values, live)
    base_at = np.concatenate([[0.0], cdf])[np.searchsorted(values, points, side="right")]
    live_at = np.searchsorted(live, points, side="right") / len(live)
    return float(np.max(np.abs(base_at - live_at)))


def wasserstein_distance(base_values: np.ndarray, base_weights: np.ndarray, live: np.ndarray) -> float:
    """The earth mover's distance between baseline and live values, in baseline standard deviations."""
    from scipy.stats import wasserstein_distance as emd

    if len(base_values) == 0 or len(live) == 0:
        return 0.0
    distance = emd(live, base_values, v_weights=base_weights)
    mean = np.average(base_values, weights=base_weights)
    std = math.sqrt(np.average((base_values - mean) ** 2, weights=base_weights))
    if std > 0:
        return float(distance / std)
    return 0.0 if distance == 0 else math.inf


def _shares(base: dict[str, float], live: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    categories = sorted(set(base) | set(live))
    p = np.array([base.get(c, 0.0) for c in categories], dtype=np.float64)
    q = np.array([live.get(c, 0.0) for c in categories], dtype=np.float64)
    return p / max(p.sum(), 1e-300), q / max(q.sum(), 1e-300)


def jensen_shannon(base: dict[str, float], live: dict[str, float]) -> float:
    """The Jensen-Shannon distance (base 2) between the category shares (0: same, 1: disjoint)."""
    from scipy.spatial.distance import jensenshannon

    if not base or not live:
        return 0.0
    p, q = _shares(base, live)
    return float(jensenshannon(p, q, base=2))


def psi(base: dict[str, float], live: dict[str, float]) -> float:
    """The population stability index: sum of (live - base) * ln(live / base) over the category shares."""
    if not base or not live:
        return 0.0
    p, q = _shares(base, live)
    p, q = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def linf(base: dict[str, float], live: dict[str, float]) -> float:
    """The largest difference in one category's share (Model Monitor's LInfinity)."""
    if not base or not live:
        return 0.0
    p, q = _shares(base, live)
    return float(np.max(np.abs(p - q)))


_DISTANCES = {"ks": ks_distance, "wasserstein": wasserstein_distance, "jensen_shannon": jensen_shannon,
              "psi": psi, "linf": linf}
TESTS: dict[str, DriftTest] = {
    name: DriftTest(name, spec.kind, spec.default_threshold, spec.bounded, spec.title, _DISTANCES[name])
    for name, spec in DRIFT_TESTS.items()}


def threshold_for(test: str, given: float | None) -> float:
    """The threshold model.yml gives, else the test's default."""
    return float(given) if given is not None else TESTS[test].default_threshold


@dataclass(frozen=True)
class DriftResult:
    """One feature's comparison with its baseline."""

    feature: str
    kind: str
    test: str
    distance: float
    threshold: float
    p_value: float | None  # of the significance test (robust comparison); None when simple
    drifted: bool
    baseline_rows: int
    live_rows: int

    def describe(self) -> str:
        significance = f", p = {self.p_value:.2g}" if self.p_value is not None else ""
        return (f"{TESTS[self.test].title} {self.distance:.4g} is above the threshold {self.threshold:g} "
                f"({self.live_rows} live rows against {self.baseline_rows} in the baseline{significance})")


def numeric_drift(feature: str, test: str, threshold: float, base_values: np.ndarray, base_weights: np.ndarray,
                  live: np.ndarray, *, robust: bool) -> DriftResult:
    """Compare live numbers (NaN left out) with a weighted baseline sample."""
    live = np.asarray(live, dtype=np.float64)
    live = live[~np.isnan(live)]
    distance = TESTS[test].distance(base_values, base_weights, live)
    n, m = float(base_weights.sum()), len(live)
    p_value = _ks_p_value(ks_distance(base_values, base_weights, live), n, m) if robust else None
    drifted = distance > threshold and (p_value is None or p_value < ALPHA)
    return DriftResult(feature, "numeric", test, distance, threshold, p_value, bool(drifted), int(n), m)


def categorical_drift(feature: str, test: str, threshold: float, base: dict[str, float], live: dict[str, float], *,
                      robust: bool) -> DriftResult:
    """Compare live category counts with the baseline's (each a mapping category -> count)."""
    distance = TESTS[test].distance(base, live)
    p_value = _chi2_p_value(base, live) if robust else None
    drifted = distance > threshold and (p_value is None or p_value < ALPHA)
    return DriftResult(feature, "categorical", test, distance, threshold, p_value, bool(drifted),
                       int(sum(base.values())), int(sum(live.values())))


def _ks_p_value(distance: float, n: float, m: float) -> float:
    """The asymptotic two-sample KS p-value (Kolmogorov's distribution, as scipy's ks_2samp method 'asymp')."""
    from scipy.stats import kstwobign

    if n <= 0 or m <= 0:
        return 1.0
    return float(kstwobign.sf(distance * math.sqrt(n * m / (n + m))))


def _chi2_p_value(base: dict[str, float], live: dict[str, float]) -> float:
    """The chi-squared test of homogeneity of the two count vectors (categories seen on either side)."""
    from scipy.stats import chi2_contingency

    categories = sorted(c for c in set(base) | set(live) if base.get(c, 0) + live.get(c, 0) > 0)
    if len(categories) < 2 or not sum(base.values()) or not sum(live.values()):
        return 1.0
    table = np.array([[base.get(c, 0.0) for c in categories], [live.get(c, 0.0) for c in categories]])
    return float(chi2_contingency(table)[1])


__all__ = ["NO_CATEGORY", "TESTS", "DriftResult", "DriftTest", "categorical_drift", "jensen_shannon", "ks_distance",
           "linf", "numeric_drift", "psi", "threshold_for", "wasserstein_distance"]
