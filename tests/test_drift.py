"""The drift tests: each distance against scipy's (or its definition), and the robust comparison against noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelops.monitoring.drift import (
    TESTS,
    categorical_drift,
    jensen_shannon,
    ks_distance,
    linf,
    numeric_drift,
    psi,
    threshold_for,
    wasserstein_distance,
)

RNG = np.random.default_rng(11)
BASE = RNG.normal(0, 1, 3000)
ONES = np.ones(len(BASE))


@pytest.mark.parametrize("live", [RNG.normal(0, 1, 400), RNG.normal(0.3, 1, 400), RNG.normal(0, 2, 50),
                                  np.round(RNG.normal(0, 1, 300), 1)])
def test_ks_distance_is_scipys_two_sample_statistic(live):
    assert ks_distance(BASE, ONES, live) == pytest.approx(stats.ks_2samp(BASE, live).statistic, abs=1e-12)


def test_a_weighted_baseline_is_its_values_repeated():
    values, weights = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])
    repeated = np.repeat(values, weights.astype(int))
    live = np.array([1.5, 2.5, 2.5, 3.5])
    assert ks_distance(values, weights, live) == pytest.approx(stats.ks_2samp(repeated, live).statistic)
    assert wasserstein_distance(values, weights, live) == pytest.approx(
        stats.wasserstein_distance(repeated, live) / repeated.std())


def test_wasserstein_is_in_baseline_standard_deviations():
    assert wasserstein_distance(BASE, ONES, BASE + 0.5) == pytest.approx(0.5 / BASE.std(), rel=1e-9)
    assert wasserstein_distance(np.ones(3), np.ones(3), np.ones(5)) == 0.0
    assert wasserstein_distance(np.ones(3), np.ones(3), np.full(5, 2.0)) == float("inf")


def test_categorical_distances_agree_with_scipy():
    base = {"a": 50.0, "b": 30.0, "c": 20.0}
    live = {"a": 20.0, "b": 30.0, "d": 50.0}
    p, q = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.2, 0.3, 0.0, 0.5])
    assert jensen_shannon(base, live) == pytest.approx(jensenshannon(p, q, base=2))
    assert jensen_shannon(base, base) == 0.0
    assert linf(base, live) == pytest.approx(0.5)
    floor_p, floor_q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert psi(base, live) == pytest.approx(np.sum((floor_q - floor_p) * np.log(floor_q / floor_p)))
    assert psi({"a": 1.0}, {"b": 1.0}) > 10 and jensen_shannon({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)


def test_every_test_has_a_default_threshold_and_the_model_yml_one_wins():
    assert {t.name: (t.kind, t.default_threshold) for t in TESTS.values()} == {
        "ks": ("numeric", 0.1), "wasserstein": ("numeric", 0.2), "jensen_shannon": ("categorical", 0.1),
        "psi": ("categorical", 0.2), "linf": ("categorical", 0.1)}
    assert threshold_for("ks", None) == 0.1 and threshold_for("ks", 0.3) == 0.3


def test_robust_drift_needs_a_distance_and_significance():
    small = RNG.normal(0, 1, 15)
    noisy = numeric_drift("x", "ks", 0.1, BASE, ONES, small, robust=True)
    assert noisy.distance > 0.1 and noisy.p_value > 0.05 and not noisy.drifted
    assert numeric_drift("x", "ks", 0.1, BASE, ONES, small, robust=False).drifted
    shifted = numeric_drift("x", "ks", 0.1, BASE, ONES, RNG.normal(1, 1, 200), robust=True)
    assert shifted.drifted and shifted.p_value < 1e-10 and "200 live rows against 3000" in shifted.describe()
    nan_left_out = numeric_drift("x", "ks", 0.1, BASE, ONES, np.array([np.nan, 0.0]), robust=False)
    assert nan_left_out.live_rows == 1


def test_robust_categorical_drift_uses_the_chi_squared_test():
    base = {c: 100.0 for c in "abcdefghij"}
    few = {"a": 1.0, "d": 1.0, "g": 1.0, "j": 1.0}
    assert jensen_shannon(base, few) > 0.1
    assert not categorical_drift("c", "jensen_shannon", 0.1, base, few, robust=True).drifted
    many = {"a": 300.0, "b": 200.0}
    assert categorical_drift("c", "jensen_shannon", 0.1, base, many, robust=True).drifted


def test_model_yml_refuses_an_unknown_test_and_a_threshold_that_can_never_trip():
    from modelops.errors import ConfigError
    from tests.support import monitoring as tiny

    with pytest.raises(ConfigError, match=r"'monitoring\.drift\.numeric_test' is 'kss', not a numeric drift test\. "
                                          r"Fix: use one of \['ks', 'wasserstein'\]"):
        tiny.config({"drift": {"numeric_test": "kss"}})
    with pytest.raises(ConfigError, match=r"'monitoring\.drift\.categorical_threshold' is 2, but jensen_shannon lies "
                                          r"between 0 and 1"):
        tiny.config({"drift": {"categorical_threshold": 2}})
    with pytest.raises(ConfigError, match=r"unknown key 'monitoring\.data_capture\.sample'"):
        tiny.config({"data_capture": {"sample": 5}})
    assert tiny.config({"drift": {"categorical_test": "psi", "categorical_threshold": 2}}).monitoring.drift \
        .categorical_threshold == 2
