"""The training baseline in Model Monitor's formats, and the quantile sketch it keeps of each number.

The formats are checked against SageMaker Model Monitor's own schema pages (model-monitor-byoc-statistics,
-constraints, -interpreting-violations) and the sample files of aws/sagemaker-python-sdk
(tests/data/monitor/statistics.json, constraints.json, constraint_violations.json), whose keys are copied here
as the expected sets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.data.encoding import FeatureEncoding
from modelops.errors import StoreError
from modelops.monitoring.baseline import (
    CATEGORICAL,
    KLL_K,
    Violation,
    decode,
    kll_levels,
    monitored_features,
    quality_constraints,
    quality_statistics,
    read_baseline,
    sketch_sample,
    violations_json,
)
from tests.support import monitoring as tiny

#: The keys of Model Monitor's files (its schema pages and the SDK's sample files).
NUMERIC_STATISTICS = {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
STRING_STATISTICS = {"common", "distinct_count", "distribution"}
MONITORING_CONFIG = {"evaluate_constraints", "emit_metrics", "datatype_check_threshold", "domain_content_threshold",
                     "distribution_constraints"}
DISTRIBUTION_CONSTRAINTS = {"perform_comparison", "comparison_threshold", "comparison_method",
                            "categorical_comparison_threshold"}


@pytest.mark.parametrize("n", [10, KLL_K, 2924, 20_000])
def test_the_kll_sketch_keeps_every_value_once_weighted_and_its_ranks_close(n):
    values = np.random.default_rng(n).gamma(2.0, 3.0, n)
    levels = kll_levels(values)
    weights = np.concatenate([np.full(len(level), 2.0 ** h) for h, level in enumerate(levels)])
    assert weights.sum() == n
    if n <= KLL_K:
        assert len(levels) == 1 and np.array_equal(levels[0], np.sort(values))
    retained = np.concatenate(levels)
    order = np.argsort(retained)
    estimated = np.cumsum(weights[order]) / n
    exact = np.searchsorted(np.sort(values), retained[order], side="right") / n
    assert np.max(np.abs(estimated - exact)) < 4 / KLL_K * max(1, np.log2(n / KLL_K) + 1)
    assert sum(map(len, levels)) <= 2 * KLL_K


def test_statistics_and_constraints_have_model_monitors_shape():
    files = tiny.baseline()
    statistics, constraints = files["data_statistics"], files["data_constraints"]
    assert statistics["version"] == 0.0 and statistics["dataset"] == {"item_count": 3000}
    size, count, colour = statistics["features"]
    assert (size["name"], size["inferred_type"], count["inferred_type"]) == ("size", "Fractional", "Integral")
    assert set(size["numerical_statistics"]) == NUMERIC_STATISTICS
    assert size["numerical_statistics"]["common"] == {"num_present": 3000, "num_missing": 0}
    kll = size["numerical_statistics"]["distribution"]["kll"]
    assert len(kll["buckets"]) == 10 and set(kll["buckets"][0]) == {"lower_bound", "upper_bound", "count"}
    assert sum(b["count"] for b in kll["buckets"]) == 3000
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert sketch_sample(size)[1].sum() == 3000
    assert (colour["name"], colour["inferred_type"]) == ("colour", "String")
    assert set(colour["string_statistics"]) == STRING_STATISTICS
    buckets = colour["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert [b["value"] for b in buckets] == ["blue", "green", "red"] and sum(b["count"] for b in buckets) == 3000
    assert constraints["version"] == 0.0 and set(constraints["monitoring_config"]) == MONITORING_CONFIG
    assert set(constraints["monitoring_config"]["distribution_constraints"]) == DISTRIBUTION_CONSTRAINTS
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["count"] == {"name": "count", "inferred_type": "Integral", "completeness": 1.0,
                                "num_constraints": {"is_non_negative": True}}
    assert by_name["size"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["colour"]["string_constraints"] == {"domains": ["blue", "green", "red"]}
    json.dumps(files, allow_nan=False)  # strict JSON: what Model Monitor's reader (and any other) accepts


def test_model_yml_settings_become_constraints_and_feature_overrides():
    cfg = tiny.config({"drift": {"categorical_test": "linf", "numeric_threshold": 0.2, "comparison_method": "simple",
                                 "features": {"size": {"threshold": 0.3}, "count": {"ignore": True}}},
                       "domain_content_threshold": 0.05})
    constraints = tiny.baseline(cfg)["data_constraints"]
    config = constraints["monitoring_config"]
    assert config["domain_content_threshold"] == 0.05
    assert config["distribution_constraints"] == {"perform_comparison": "Enabled", "comparison_threshold": 0.2,
                                                  "comparison_method": "Simple",
                                                  "categorical_comparison_threshold": 0.1,
                                                  "categorical_drift_method": "LInfinity"}
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["size"]["monitoring_config_overrides"] == {"distribution_constraints": {"comparison_threshold": 0.3}}
    assert by_name["count"]["monitoring_config_overrides"] == {"evaluate_constraints": "Disabled"}


def test_one_hot_groups_read_back_as_one_categorical():
    encoding = FeatureEncoding(("a", "c"), ("a",), (("c", ("x", "y")),), ("a", "c_x", "c_y"))
    features = monitored_features(encoding)
    assert [(f.name, f.kind, f.columns) for f in features] == [("a", "numeric", (0,)), ("c", CATEGORICAL, (1, 2))]
    rows = np.array([[1.0, 1, 0], [2.0, 0, 1], [3.0, 0, 0], [4.0, 1, 1], [5.0, 0.5, 0]])
    colour = decode(rows, features)["c"]
    assert colour.values.tolist() == ["x", "y", None, None, None]
    assert colour.invalid.tolist() == [False, False, False, True, True]
    assert colour.present.tolist() == [True, True, False, False, False]


def test_one_hot_groups_decode_slice_by_slice_as_row_by_row(monkeypatch):
    """Large tables are decoded in slices of rows, with the group's columns read in place or picked out."""
    from modelops.monitoring import baseline

    rng = np.random.default_rng(3)
    rows = np.zeros((103, 6))
    rows[np.arange(103), 1 + rng.integers(0, 4, 103)] = 1.0  # columns 1-4: one group, one 1 per row
    rows[:, 0], rows[:, 5] = rng.normal(size=103), rng.integers(0, 2, 103)
    rows[5, 1:5] = 0.0  # none of them
    rows[9, 2] = rows[9, 3] = 1.0  # two 1s
    rows[17, 4] = np.nan  # an empty cell
    rows[30, 3] = 0.5  # not 0 or 1
    encoding = FeatureEncoding(("a", "c", "d"), ("a",), (("c", ("p", "q", "r", "s")), ("d", ("u",))),
                               ("a", "c_p", "c_q", "c_r", "c_s", "d_u"))
    features = monitored_features(encoding)
    scattered = [*features[:1], baseline.MonitoredFeature("c", CATEGORICAL, (4, 1, 3, 2), ("s", "p", "r", "q"))]
    monkeypatch.setattr(baseline, "DECODE_ROWS", 10)
    for chosen in (features, scattered):
        colour = decode(rows, chosen)["c"]
        for i, row in enumerate(rows[:, list(chosen[1].columns)]):
            binary = all(v in (0.0, 1.0) for v in row)
            single = binary and list(row).count(1.0) == 1
            assert colour.values[i] == (chosen[1].categories[list(row).index(1.0)] if single else None), i
            assert colour.invalid[i] == (not binary or list(row).count(1.0) > 1), i
    assert decode(rows, features)["d"].values.tolist() == [("u" if v else None) for v in rows[:, 5]]


def test_an_unseen_category_encoded_as_zeros_reads_back_as_none_of_the_categories():
    """What encode_rows(..., unseen="zeros") (and `ci invoke --raw --unseen zeros`) sends is what decode reads."""
    import pandas as pd

    from modelops.data.prepare import encode_rows

    config = tiny.config()
    encoding = FeatureEncoding(("length", "sex", "rings"), ("length",), (("sex", ("F", "I", "M")),),
                               ("length", "sex_F", "sex_I", "sex_M"))
    sent = encode_rows(config, pd.DataFrame({"length": ["0.5", "0.4"], "sex": ["M", "X"]}), encoding, unseen="zeros")
    sex = decode(sent.to_numpy(), monitored_features(encoding))["sex"]
    assert sex.values.tolist() == ["M", None] and not sex.invalid.any()


def test_the_quality_baseline_is_model_monitors_model_quality_files():
    cfg = tiny.config()
    y = np.arange(100, dtype=float)
    statistics = quality_statistics(cfg, y, y + 1)
    assert statistics["dataset"]["item_count"] == 100 and statistics["dataset"]["evaluation_time"].endswith("Z")
    rmse = statistics["regression_metrics"]["rmse"]
    assert rmse["value"] == pytest.approx(1.0) and set(rmse) == {"value", "standard_deviation"}
    assert quality_constraints(cfg) == {"version": 0.0, "regression_constraints": {
        "rmse": {"threshold": 2.3, "comparison_operator": "GreaterThanThreshold"},
        "r2": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}}


def test_violations_are_model_monitors_constraint_violations_json():
    document = violations_json([Violation("size", "baseline_drift_check", "too far"),
                                Violation("", "LessThanThreshold", "Metric auc ...", metric_name="auc")])
    assert document == {"violations": [
        {"feature_name": "size", "constraint_check_type": "baseline_drift_check", "description": "too far"},
        {"metric_name": "auc", "constraint_check_type": "LessThanThreshold", "description": "Metric auc ..."}]}


def test_a_package_without_a_baseline_says_how_to_get_one(tmp_path):
    from modelops.backends.local import LocalBackend

    store = LocalBackend(tmp_path).store
    with pytest.raises(StoreError, match=r"records no baseline .*trained before baselines were written\. Fix: "
                                         r"train and deploy a new version"):
        read_baseline(store, {})
    uris = {f"{p}_{f}": store.uri("m", f"{p}_{f}.json") for p in ("data", "prediction", "quality")
            for f in ("statistics", "constraints")}
    for uri in uris.values():
        store.put_bytes(uri, b"{}")
    store.put_bytes(uris["data_statistics"], b"{not json")
    with pytest.raises(StoreError, match=r"data/statistics\.json|data_statistics\.json is not JSON"):
        read_baseline(store, uris)


def test_a_split_read_block_by_block_gives_the_statistics_and_scores_of_the_whole_matrix(tmp_path, monkeypatch):
    """The baseline reads a stored split in blocks and keeps only the decoded features: the same statistics.json
    as decoding the whole matrix at once, and the booster's scores of every row in order."""
    import xgboost

    from modelops.monitoring import baseline
    from modelops.monitoring.baseline import decoded_split, statistics
    from modelops.training import channels

    rng = np.random.default_rng(8)
    n = 2_000
    rows = np.zeros((n, 7))
    rows[:, 0] = rng.integers(0, 2, n)  # the target
    rows[:, 1] = np.round(rng.normal(size=n), 3)
    rows[rng.random(n) < 0.1, 1] = np.nan
    rows[np.arange(n), 2 + rng.integers(0, 4, n)] = 1.0  # one group of four
    rows[:, 6] = rng.integers(0, 2, n)
    rows[7, 2:6] = 0.0  # no category
    path = tmp_path / "train.csv"
    path.write_text("\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows) + "\n")
    store = type("Store", (), {"path": lambda self, uri: path})()
    encoding = FeatureEncoding(("a", "c", "d"), ("a",), (("c", ("p", "q", "r", "s")), ("d", ("u",))),
                               ("a", "c_p", "c_q", "c_r", "c_s", "d_u"))
    features = monitored_features(encoding)
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(rows[:, 1:], label=rows[:, 0]), 3)
    monkeypatch.setattr(channels, "BLOCK_BYTES", 4 << 10)  # about 25 blocks
    monkeypatch.setattr(baseline, "DECODE_ROWS", 64)
    decoded, count, labels, scores = decoded_split(store, "file:///train.csv", features, booster)
    assert count == n
    assert statistics(decoded, count) == statistics(decode(rows[:, 1:], features), n)
    np.testing.assert_array_equal(labels, rows[:, 0])
    np.testing.assert_array_equal(scores, booster.inplace_predict(rows[:, 1:]))
