"""Model config loading: the shipped configs load, and every malformed file names the file, key and fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from modelops.config import load_model_config, parse_model_config
from modelops.errors import ConfigError
from tests.support.paths import ROOT


@pytest.fixture
def abalone_raw() -> dict:
    return yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())


def write(tmp_path, raw) -> str:
    path = tmp_path / "model.yml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return str(tmp_path)


def test_shipped_configs_load_with_their_tuned_values():
    abalone = load_model_config(ROOT / "abalone_model")
    churn = load_model_config(ROOT / "churn_model")
    assert abalone.name == "abalone-model" and abalone.problem_type == "regression"
    assert abalone.training.hyperparameters == {
        "objective": "reg:squarederror", "max_depth": 6, "eta": 0.03025, "gamma": 3.495, "min_child_weight": 10.38,
        "subsample": 0.6732, "num_round": 289, "eval_metric": "rmse", "alpha": 0.1711, "colsample_bytree": 0.9482,
        "lambda": 15.04}
    assert churn.training.hyperparameters["subsample"] == 0.7362
    assert churn.training.hyperparameters["num_round"] == 197
    assert churn.data.positive_label == "True."
    assert (abalone.split.train, abalone.split.validation, abalone.split.test, abalone.split.seed) == (
        0.7, 0.2, 0.1, 1729)
    assert abalone.folder == (ROOT / "abalone_model").resolve()
    assert abalone.xgboost_version == "3.2"
    assert {t.metric for t in churn.quality} == {"auc", "accuracy"}


def test_missing_config_file_names_the_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"no model config found.*new-model"):
        load_model_config(tmp_path)


def test_yaml_syntax_error_names_the_file(tmp_path):
    folder = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"model\.yml: not valid YAML"):
        load_model_config(folder)


def test_a_model_yml_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_model_config(write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["data"].pop("target"), r"key 'data\.target' is missing\. Fix: add it"),
        (lambda r: r.pop("quality"), r"key 'quality' is missing"),
        (lambda r: r["training"]["hyperparameters"].update(max_depth="five"),
         r"key 'training\.hyperparameters\.max_depth' must be integer, got a string 'five'"),
        (lambda r: r.update(problem_type="ranking"), r"key 'problem_type' is 'ranking', which is not one of"),
        (lambda r: r["data"].update(tagret="rings"), r"unknown key 'data\.tagret' \(did you mean 'target'\?\)"),
        (lambda r: r.update(name="abalone_model"), r"key 'name' is 'abalone_model', not a valid SageMaker name"),
        (lambda r: r.update(name="a" * 41), r"not a valid SageMaker name"),
        (lambda r: r["training"]["hyperparameters"].update(max_dept=5),
         r"'training\.hyperparameters\.max_dept' is not a SageMaker XGBoost hyperparameter \(did you mean "
         r"'max_depth'\?\)"),
        (lambda r: r["training"]["hyperparameters"].update(objective="binary:logistic"),
         r"objective' is 'binary:logistic', which does not fit problem_type 'regression'"),
        (lambda r: r["quality"].update(auc={"min": 0.9}), r"key 'quality\.auc' is not a metric of a regression model"),
        (lambda r: r["quality"].update(rmse={"min": 3, "max": 2}), r"min 3 above max 2"),
        (lambda r: r["split"].update(test=0.2), r"ratios add up to 1\.1, not 1"),
        (lambda r: r["data"].update(target="age"), r"'data\.target' is 'age', which is not in data\.columns"),
        (lambda r: r["data"].update(sha256="abc"), r"not a 64-character lowercase hex sha256"),
        (lambda r: r["training"].update(container_version="latest"), r"not a SageMaker XGBoost container version"),
        (lambda r: r["data"].update(drop=["rings"]), r"drops the target"),
        (lambda r: r.update(quality={}), r"no thresholds, so every model would pass"),
    ],
)
def test_malformed_config_names_key_and_fix(tmp_path, abalone_raw, mutate, message):
    raw = copy.deepcopy(abalone_raw)
    mutate(raw)
    with pytest.raises(ConfigError, match=message) as error:
        load_model_config(write(tmp_path, raw))
    assert str(tmp_path / "model.yml") in str(error.value)
    assert "Fix:" in str(error.value)


def test_binary_model_needs_positive_label():
    raw = yaml.safe_load((ROOT / "churn_model" / "model.yml").read_text())
    del raw["data"]["positive_label"]
    with pytest.raises(ConfigError, match=r"'data\.positive_label' is missing"):
        parse_model_config(raw)


def test_container_version_must_match_installed_xgboost(tmp_path, abalone_raw):
    abalone_raw["training"]["container_version"] = "1.7-1"
    expected = r"'1\.7-1' \(xgboost 1\.7\) but xgboost 3\.2\.\d+ is installed.*predicts wrongly"
    with pytest.raises(ConfigError, match=expected):
        load_model_config(write(tmp_path, abalone_raw))
    # The check can be skipped by tools that only read the config (e.g. CircleCI config generation).
    assert load_model_config(tmp_path, check_xgboost=False).training.container_version == "1.7-1"


def test_threshold_passes():
    config = load_model_config(ROOT / "abalone_model")
    rmse = next(t for t in config.quality if t.metric == "rmse")
    assert rmse.passes(2.2) and not rmse.passes(3.2) and not rmse.passes(float("nan"))
    assert rmse.describe() == "<= 2.3"


@pytest.mark.slow
def test_xgboost_version_is_read_without_importing_xgboost():
    import subprocess
    import sys

    code = ("import sys; from modelops.config import installed_xgboost_version as v; found = v(); "
            "assert 'xgboost' not in sys.modules, 'xgboost was imported'; "
            "import xgboost; assert found == xgboost.__version__, (found, xgboost.__version__)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serving_sets_the_containers_environment():
    raw = yaml.safe_load((ROOT / "churn_model" / "model.yml").read_text())
    assert parse_model_config(raw).serving.environment == {}  # the container's defaults: scores, text/csv
    raw["serving"] = {"inference_output": ["predicted_label", "probability"], "default_accept": "application/json"}
    config = parse_model_config(raw)
    assert config.serving.inference_output == ("predicted_label", "probability")
    assert config.serving.environment == {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability",
                                          "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}
    assert "SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability" in config.summary().to_string()


@pytest.mark.parametrize(("serving", "message"), [
    ({"inference_output": ["probabilty"]}, r"'serving\.inference_output\.0' is 'probabilty', which is not one of"),
    ({"inference_output": []}, r"serving\.inference_output"),
    ({"inference_output": ["predicted_score", "predicted_score"]}, r"non-unique"),
    ({"default_accept": "text/html"}, r"'serving\.default_accept' is 'text/html', which is not one of"),
    ({"outputs": ["predicted_score"]}, r"unknown key 'serving\.outputs'"),
    # Values the container takes but answers badly:
    ({"inference_output": ["predicted_label"]}, r"asks for \['predicted_label'\], which objective reg:squarederror "
                                                 r"does not answer \(the container writes NaN"),
    ({"default_accept": "application/jsonlines"}, r"only answer with serving\.inference_output set"),
])
def test_serving_values_the_container_would_answer_badly_are_refused(tmp_path, abalone_raw, serving, message):
    abalone_raw["serving"] = serving
    with pytest.raises(ConfigError, match=message) as error:
        load_model_config(write(tmp_path, abalone_raw))
    assert "Fix:" in str(error.value)


def test_selectable_output_needs_an_objective_that_has_one(abalone_raw):
    abalone_raw["training"]["hyperparameters"]["objective"] = "count:poisson"
    abalone_raw["serving"] = {"inference_output": ["predicted_score"]}
    with pytest.raises(ConfigError, match=r"no selectable output for objective 'count:poisson' \(it answers every "
                                          r"request with a 500\)"):
        parse_model_config(abalone_raw)


def test_each_model_has_a_staging_and_a_production_endpoint_and_a_promotion_slo():
    from modelops.config import PRODUCTION, SLO, STAGING, endpoint_owner

    abalone = load_model_config(ROOT / "abalone_model")
    staging, production = abalone.deploy_environment(STAGING), abalone.deploy_environment(PRODUCTION)
    assert (staging.endpoint, production.endpoint) == ("abalone-model-staging", "abalone-model")
    assert (production.instance_type, production.instance_count) == ("ml.m5.large", 1)
    assert abalone.slo == SLO(p50_ms=100, p99_ms=500, error_rate=0) and staging.slo is None
    assert endpoint_owner("abalone-model-staging") == ("abalone-model", STAGING)
    assert endpoint_owner("abalone-model") == ("abalone-model", PRODUCTION)
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'\. Fix: use one of \['staging', 'production'\]"):
        abalone.deploy_environment("prod")


def test_without_environments_both_get_defaults_and_the_gate_only_holds_errors(abalone_raw):
    from modelops.config import SLO

    raw = {k: v for k, v in abalone_raw.items() if k != "environments"}
    config = parse_model_config(raw)
    assert config.deploy_environment("staging").endpoint == "abalone-model-staging"
    assert config.deploy_environment("production").instance_count == 1
    assert config.slo == SLO(error_rate=0.0) and config.slo.describe() == "error_rate <= 0"


def test_the_gate_times_1000_single_row_requests_unless_the_slo_says_how_many(abalone_raw):
    assert parse_model_config(abalone_raw).slo.latency_requests == 1000
    raw = copy.deepcopy(abalone_raw)
    raw["environments"]["production"]["slo"]["latency_requests"] = 200
    slo = parse_model_config(raw).slo
    assert (slo.latency_requests, slo.p99_ms) == (200, 500)
    assert slo.describe() == "p50_ms <= 100, p99_ms <= 500, error_rate <= 0 (latency on 200 single-row requests)"


def test_production_has_a_guarded_rollout_held_to_its_slo_and_autoscaling(abalone_raw):
    from modelops.config import SLO, Autoscaling, Rollout

    raw = copy.deepcopy(abalone_raw)
    raw["environments"]["production"].update(
        instance_count=2, rollout={"strategy": "canary", "traffic_percent": 10, "interval_seconds": 300,
                                   "bake_seconds": 600},
        autoscaling={"min_instances": 2, "max_instances": 4, "target_invocations_per_instance": 1000})
    production = parse_model_config(raw).deploy_environment("production")
    # The alarms' thresholds are production's SLO, carried by the rollout (one home: environments.production.slo).
    assert production.rollout == Rollout("canary", 10, 300, 600, slo=SLO(p50_ms=100, p99_ms=500, error_rate=0))
    assert production.rollout.slo is production.slo
    assert (production.rollout.alarm_p99_ms, production.rollout.alarm_error_rate) == (500, 0)
    raw["environments"]["production"].pop("slo")
    bare = parse_model_config(raw).deploy_environment("production").rollout
    assert bare == Rollout("canary", 10, 300, 600) and (bare.alarm_p99_ms, bare.alarm_error_rate) == (None, 0.0)
    assert production.autoscaling == Autoscaling(2, 4, 1000)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(endpoint={"instance_type": "ml.m5.large"}),
     r"key 'endpoint' is replaced by 'environments'.*Fix: move its instance_type and instance_count under "
     r"environments\.staging and environments\.production"),
    (lambda r: r.update(name="fraud-staging"),
     r"ends with '-staging'.*staging endpoint.*Fix: choose a name that does not end with '-staging'"),
    (lambda r: r["environments"]["staging"].update(slo={"p99_ms": 10}),
     r"environments\.staging\.slo': the promotion gate holds staging to production's SLOs.*Fix: move it to "
     r"environments\.production\.slo"),
    (lambda r: r["environments"]["staging"].update(autoscaling={"min_instances": 1, "max_instances": 2}),
     r"environments\.staging\.autoscaling'.*Fix: move it to environments\.production\.autoscaling"),
    (lambda r: r["environments"]["production"].update(slo={"p50_ms": 50, "p99_ms": 10}),
     r"p50_ms 50 above p99_ms 10, which no endpoint can meet\. Fix: swap or correct them"),
    (lambda r: r["environments"]["production"].update(slo={"error_rate": 2}),
     r"key 'environments\.production\.slo\.error_rate': 2 is greater than the maximum of 1"),
    (lambda r: r["environments"]["production"].update(slo={"latency_requests": 0}),
     r"key 'environments\.production\.slo\.latency_requests': 0 is less than the minimum of 1"),
    (lambda r: r["environments"]["production"].update(slo={"p99": 10}),
     r"unknown key 'environments\.production\.slo\.p99' \(did you mean 'p99_ms'\?\)"),
    (lambda r: r["environments"]["production"].update(autoscaling={"min_instances": 4, "max_instances": 2}),
     r"min_instances 4 above max_instances 2\. Fix: swap or correct them"),
    (lambda r: r["environments"]["production"].update(instance_count=5,
                                                      autoscaling={"min_instances": 1, "max_instances": 2}),
     r"instance_count' is 5, outside autoscaling's 1-2.*Fix: set it within them"),
    (lambda r: r["environments"]["production"].update(rollout={"strategy": "linear"}),
     r"rollout\.traffic_percent' is missing: a linear rollout.*Fix: add e\.g\. traffic_percent: 10"),
    (lambda r: r["environments"]["production"].update(rollout={"strategy": "canary", "traffic_percent": 60}),
     r"traffic_percent' is 60, but a canary is at most 50% of the new fleet \(SageMaker's limit\)\. Fix: lower it, "
     r"or use strategy linear"),
    (lambda r: r["environments"]["production"].update(rollout={"strategy": "linear", "traffic_percent": 12.5}),
     r"traffic_percent' is 12\.5: SageMaker sizes traffic steps in whole percents of capacity\. Fix: use a whole "
     r"number, e\.g\. 12"),
    (lambda r: r["environments"]["production"].update(autoscaling={"min_instances": 1, "max_instances": 2}),
     r"target_invocations_per_instance' is missing: without a target nothing moves the instance count.*Fix: add "
     r"e\.g\. target_invocations_per_instance: 1000"),
    (lambda r: r["environments"]["production"].update(rollout={"strategy": "blue-green"}),
     r"rollout\.strategy' is 'blue-green', which is not one of \['all_at_once', 'canary', 'linear'\]"),
    (lambda r: r["environments"].update(qa={"instance_count": 1}),
     r"unknown key 'environments\.qa'.*allowed: \['staging', 'production'\]"),
])
def test_malformed_environments_name_key_and_fix(abalone_raw, mutate, message):
    raw = copy.deepcopy(abalone_raw)
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_model_config(raw)


@pytest.mark.parametrize("key", ["data", "split", "training", "environments", "evaluation", "quality", "monitoring",
                                 "serving", "tuning", "review"])
def test_each_section_is_one_module_owning_its_schema_and_parser(key):
    import importlib

    from modelops.config import SCHEMA

    section = importlib.import_module(f"modelops.config.{key}")
    assert SCHEMA["properties"][key] is section.SCHEMA
    assert callable(section.parse)
