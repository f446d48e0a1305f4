"""Every table shape a user brings: all numeric, missing values, numeric codes, odd headers, three or more classes."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from ci.scaffold import new_model, profile_data
from modelops.config import load_model_config, parse_model_config
from modelops.data.encoding import safe_name
from modelops.data.prepare import encode_rows, prepare_data, read_raw, read_table
from modelops.errors import ConfigError, DataError
from modelops.review.evaluation import null_predictions
from modelops.scores import class_confusion_matrix, metrics_for, multiclass_metrics
from modelops.serving.protocol import CSV, JSON, read_predictions, render
from tests.support import tables
from tests.support.gitrepo import make_project
from tests.support.paths import ROOT


def config_for(tmp_path, source, **settings):
    """A model folder (model.yml only) for ``source``; ``settings`` override top-level keys and data keys."""
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    for regression_only in ("tuning", "review"):  # abalone's search and verdict rules name regression metrics
        raw.pop(regression_only, None)
    raw["data"] = {"source": str(source), "header": True, **settings.pop("data")}
    raw.update(settings)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.yml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    return load_model_config(folder)


def multiclass(**data):
    return {"problem_type": "multiclass", "quality": {"accuracy": {"min": 0.4}},
            "training": {"container_version": "3.2-0",
                         "hyperparameters": {"objective": "multi:softprob", "num_round": 10}},
            "data": {"target": "species", "classes": list(tables.SPECIES), **data}}


def test_all_numeric_table_prepares_without_one_hot_columns(tmp_path):
    path = tables.numeric_regression(tmp_path / "wear.csv", rows=60)
    config = config_for(tmp_path, path, data={"target": "wear"}, quality={"r2": {"min": 0.1}})
    prepared = prepare_data(read_raw(path, config.data), config)  # was: ValueError: No objects to concatenate
    assert list(prepared.frame.columns) == ["wear", "width", "depth", "load", "speed"]
    assert prepared.encoding.categorical == () and prepared.frame.dtypes.eq(np.float64).all()


def test_missing_values_are_missing_in_training_and_serving(tmp_path):
    path, gaps = tables.numeric_binary_with_gaps(tmp_path / "failures.csv")
    config = config_for(tmp_path, path, problem_type="binary", quality={"auc": {"min": 0.6}},
                        training={"container_version": "3.2-0",
                                  "hyperparameters": {"objective": "binary:logistic", "num_round": 5}},
                        data={"target": "failed", "positive_label": 1})
    prepared = prepare_data(read_raw(path, config.data), config)
    assert prepared.rows_without_target == gaps["target"] and len(prepared.frame) == 500 - gaps["target"]
    raw = read_table(path)
    labelled = raw[raw["failed"] != ""]
    markers = labelled[["pressure", "temperature", "humidity"]].isin(["", "NA", "?"]).to_numpy()
    assert markers.sum() > 0 and np.array_equal(np.isnan(prepared.frame.iloc[:, 1:].to_numpy()), markers)
    records = encode_rows(config, raw.drop(columns=["failed"]).head(20), prepared.encoding)
    assert np.isnan(records.to_numpy()).sum() == raw.head(20)[["pressure", "temperature", "humidity"]].isin(
        ["", "NA", "?"]).to_numpy().sum()


@pytest.mark.filterwarnings("ignore:.*Text file input has been deprecated")  # what the 3.2 container calls
def test_the_containers_csv_reader_sees_the_same_missing_values_as_local_training(tmp_path):
    """Training files keep a missing value as an empty cell. The SageMaker container reads a training channel with
    xgboost's own CSV parser (sagemaker_xgboost_container/data_utils.py: ``DMatrix(path + "?format=csv&
    label_column=0")``), the local trainer with pandas; a model must see the same data either way."""
    xgboost = pytest.importorskip("xgboost")
    from modelops.data.prepare import split_frame

    path, _ = tables.numeric_binary_with_gaps(tmp_path / "failures.csv")
    config = config_for(tmp_path, path, problem_type="binary", quality={"auc": {"min": 0.6}},
                        training={"container_version": "3.2-0",
                                  "hyperparameters": {"objective": "binary:logistic", "num_round": 5}},
                        data={"target": "failed", "positive_label": 1})
    train = split_frame(prepare_data(read_raw(path, config.data), config).frame, config.split)["train"]
    file = tmp_path / "train.csv"
    file.write_text(train.to_csv(header=False, index=False, lineterminator="\n"))  # as datasets.write_dataset does
    assert ",," in file.read_text() or ",\n" in file.read_text()
    container = xgboost.DMatrix(f"{file}?format=csv&label_column=0")
    local = pd.read_csv(file, header=None, dtype="float64").to_numpy()
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            xgboost.DMatrix(local[:, 1:], label=local[:, 0]), num_boost_round=10)
    assert container.num_row() == len(local) and np.array_equal(container.get_label(), local[:, 0])
    # Read as 0 instead of missing, the rows with gaps would be scored differently.
    assert np.array_equal(booster.predict(container), booster.inplace_predict(local[:, 1:]))
    assert container.num_nonmissing() == np.count_nonzero(~np.isnan(local[:, 1:]))


def test_odd_headers_are_read_trimmed_unique_and_features_named_csv_safe(tmp_path):
    path = tables.multiclass_odd_headers(tmp_path / "species.csv", rows=60)
    assert list(read_table(path).columns) == tables.ODD_HEADER_READ
    config = config_for(tmp_path, path, **multiclass(categorical=["region", "colour"]))
    prepared = prepare_data(read_raw(path, config.data), config)
    names = prepared.encoding.feature_names
    assert len(set(names)) == len(names) and all(name == safe_name(name) for name in names)
    assert all(not set(name) & set(',"\n\r\t') and name == name.strip() for name in names)
    assert names[:7] == ("Length (cm)", "say _cheese_", "weight_ kg", "größe", "dup", "dup.1", "region_1")
    assert dict(prepared.encoding.categorical)["colour"] == ('blue "navy"', "grün", "red, dark")
    header = ",".join(names)  # a header of the feature names reads back as the same names
    assert list(pd.read_csv(pd.io.common.StringIO(header + "\n" + ",".join("0" * len(names))))) == list(names)


def test_a_bom_and_empty_or_repeated_header_names_are_read_cleanly(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffa,,a, a ,b\n1,2,3,4,5\n".encode())
    assert list(read_table(path).columns) == ["a", "column_2", "a.1", "a.2", "b"]
    path.write_bytes("a,b\n1,\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text.*Fix: save the file as UTF-8"):
        read_table(path)


def test_colliding_one_hot_names_stay_distinct(tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{x},{['b_c', 'd'][x % 2]},{['c', 'e'][x % 3 % 2]},{x % 2}" for x in range(30)]
    path.write_text("a,a,a_b,y\n" + "\n".join(rows) + "\n")
    config = config_for(tmp_path, path, data={"target": "y", "categorical": ["a.1", "a_b"]},
                        quality={"r2": {"min": 0.1}})
    encoding = prepare_data(read_raw(path, config.data), config).encoding
    assert encoding.feature_names == ("a", "a.1_b_c", "a.1_d", "a_b_c", "a_b_e")
    config = config_for(tmp_path, path, data={"target": "y", "categorical": ["a", "a_b"]},
                        quality={"r2": {"min": 0.1}})
    path.write_text("a,a_b,y\n" + "\n".join(f"{['b_c', 'x'][i % 2]},{['c', 'y'][i % 2]},{i}" for i in range(30)))
    encoding = prepare_data(read_raw(path, config.data), config).encoding
    assert encoding.feature_names == ("a_b_c", "a_x", "a_b_c.1", "a_b_y")  # (a, b_c) and (a_b, c) both 'a_b_c'
    assert encoding.categorical == (("a", ("b_c", "x")), ("a_b", ("c", "y")))


def test_numeric_codes_are_labels_and_missing_categories_set_no_column(tmp_path):
    path = tables.multiclass_odd_headers(tmp_path / "species.csv", rows=80)
    config = config_for(tmp_path, path, **multiclass(categorical=["region", "colour"]))
    raw = read_raw(path, config.data)
    prepared = prepare_data(raw, config)
    one_hot = [f"region_{code}" for code in (1, 2, 3, 4)]
    assert prepared.frame[one_hot].sum(axis=1).eq(1).all()
    colours = [name for name in prepared.frame.columns if name.startswith("colour_")]
    empty = (raw["colour"] == "").to_numpy()
    assert empty.any() and prepared.frame.loc[empty, colours].to_numpy().sum() == 0
    as_floats = raw.head(5).drop(columns=["species"]).assign(region=raw["region"].head(5).astype(float))
    assert encode_rows(config, as_floats, prepared.encoding).equals(
        encode_rows(config, raw.head(5), prepared.encoding))  # 2.0 is the code 2


def test_multiclass_target_is_encoded_in_the_order_of_data_classes(tmp_path):
    path = tables.multiclass_odd_headers(tmp_path / "species.csv", rows=90)
    reversed_classes = multiclass(categorical=["colour"])
    reversed_classes["data"]["classes"] = list(reversed(tables.SPECIES))
    config = config_for(tmp_path, path, **reversed_classes)
    prepared = prepare_data(read_raw(path, config.data), config)
    truth = read_table(path)["species"].map({"virginica": 0, "versicolor": 1, "setosa": 2})
    assert prepared.frame["species"].tolist() == truth.tolist()
    assert config.hyperparameters["num_class"] == 3 and "num_class" not in config.training.hyperparameters
    two = multiclass(categorical=["colour"])
    two["data"]["classes"] = ["setosa", "versicolor"]
    with pytest.raises(ConfigError, match=r"lists 2 classes; a multiclass model needs at least 3.*binary"):
        config_for(tmp_path, path, **two)
    two["data"]["classes"] = ["setosa", "versicolor", "virginica", "setosa "]
    with pytest.raises(ConfigError, match=r"names \['setosa'\] twice"):
        config_for(tmp_path, path, **two)
    two["data"]["classes"] = ["setosa", "versicolor"] + ["other"]
    config = config_for(tmp_path, path, **two)
    with pytest.raises(DataError, match=r"target 'species' holds \['virginica'\].*not in data.classes"):
        prepare_data(read_raw(path, config.data), config)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["data"].pop("classes"), r"'data.classes' is missing"),
    (lambda r: r["training"]["hyperparameters"].update(num_class=4), r"num_class' is 4 but data.classes lists 3"),
    (lambda r: r["training"]["hyperparameters"].update(objective="multi:softmax"), r"use one of \['multi:softprob'\]"),
    (lambda r: r.update(quality={"auc": {"min": 0.5}}), r"'quality.auc' is not a metric of a multiclass model"),
    (lambda r: r.update(problem_type="binary"), r"'data.classes' is for multiclass models, not binary"),
])
def test_a_wrong_multiclass_section_names_the_key_and_the_fix(change, message):
    raw = {"name": "species", "problem_type": "multiclass", "data": {"source": "s.csv", "target": "species",
                                                                      "classes": ["a", "b", "c"]},
           "split": {"train": 0.7, "validation": 0.2, "test": 0.1, "seed": 1},
           "training": {"container_version": "3.2-0",
                        "hyperparameters": {"objective": "multi:softprob", "num_round": 10}},
           "quality": {"accuracy": {"min": 0.5}}}
    parse_model_config(copy.deepcopy(raw))
    change(raw)
    with pytest.raises(ConfigError, match=message):
        parse_model_config(raw)


def test_multiclass_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 1.5 * np.eye(4)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ours = multiclass_metrics(y, probabilities)
    predicted = probabilities.argmax(axis=1)
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert ours["f1_macro"] == pytest.approx(metrics.f1_score(y, predicted, average="macro"))
    assert ours["logloss"] == pytest.approx(metrics.log_loss(y, probabilities))
    never = multiclass_metrics(np.array([0, 0, 1]), np.array([[0.9, 0.1, 0], [0.8, 0.2, 0], [0.4, 0.6, 0]]))
    assert never["f1_macro"] == pytest.approx(1.0)  # class 2: neither true nor predicted, so not averaged
    table = class_confusion_matrix(y, probabilities, ["a", "b", "c", "d"])
    assert table.to_numpy().tolist() == metrics.confusion_matrix(y, predicted).tolist()
    assert list(table.index) == ["actual a", "actual b", "actual c", "actual d"]


def test_multiclass_null_model_predicts_the_class_shares():
    base = null_predictions("multiclass", np.array([0, 2, 2, 2, 1, 2]), 4, 4)
    assert base.shape == (4, 4) and base[0].tolist() == pytest.approx([1 / 6, 1 / 6, 4 / 6, 0])
    scores = metrics_for("multiclass", np.array([2, 2, 0, 1]), base)
    assert scores["accuracy"] == 0.5 and scores["logloss"] == pytest.approx(-np.mean(np.log([4 / 6] * 2 + [1 / 6] * 2)))


def test_class_probability_rows_round_trip_through_the_score_formats():
    rows = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], dtype=np.float32)
    for kind in (CSV, JSON):
        assert np.array_equal(read_predictions(render(rows, kind), kind).astype(np.float32), rows)
    assert read_predictions(render(rows[:1], CSV), CSV).shape == (1, 3)  # one record: still a row of classes
    assert read_predictions(render(np.array([0.5, 0.25], dtype=np.float32), CSV)).tolist() == [0.5, 0.25]


@pytest.mark.parametrize("problem, target, message", [
    ("binary", "species", r"3 distinct values.*needs exactly 2\. Fix: pass --problem multiclass"),
    ("regression", "species", r"not numeric.*Fix: pass --problem multiclass for a target of 3 classes"),
    ("multiclass", "weight, kg", r"more than 50 classes look like a quantity.*Fix: pass --problem regression"),
])
def test_the_scaffold_suggests_the_problem_type_that_fits(tmp_path, problem, target, message):
    path = tables.multiclass_odd_headers(tmp_path / "species.csv", rows=120)
    with pytest.raises(DataError, match=message):
        profile_data(path, target=target, problem=problem)


def test_the_scaffold_reads_classes_codes_and_cleaned_names(tmp_path):
    path = tables.multiclass_odd_headers(tmp_path / "species.csv", rows=120)
    profile = profile_data(path, target="species", problem="multiclass")
    assert profile.columns == tables.ODD_HEADER_READ and profile.classes == list(tables.SPECIES)
    assert profile.categorical == ["colour"] and profile.codes == ("region",)
    assert ("dup ", "dup.1") in profile.renamed  # (its leading space goes with the separator, as pandas reads it)
    numbers = tmp_path / "codes.csv"
    numbers.write_text("x,grade\n" + "\n".join(f"{i},{[10, 2, 1][i % 3]}" for i in range(30)) + "\n")
    assert profile_data(numbers, target="grade", problem="multiclass").classes == [1, 2, 10]  # numeric order
    two = tmp_path / "two.csv"
    two.write_text("size,label\n" + "\n".join(f"{i},{'ab'[i % 2]}" for i in range(30)) + "\n")
    with pytest.raises(DataError, match=r"2 distinct values.*at least 3\. Fix: pass --problem binary"):
        profile_data(two, target="label", problem="multiclass")


def test_new_model_writes_a_multiclass_config_and_a_features_stub(tmp_path):
    repo = make_project(tmp_path / "p", models=())
    path = tables.multiclass_odd_headers(tmp_path / "species.csv")
    folder = new_model(repo.path, "species", problem="multiclass", source=str(path), target="species")
    text = (folder / "model.yml").read_text()
    assert max(map(len, text.splitlines())) <= 120
    config = load_model_config(folder)
    assert config.problem_type == "multiclass" and config.data.classes == tables.SPECIES
    assert config.hyperparameters["objective"] == "multi:softprob" and config.hyperparameters["num_class"] == 3
    assert [t.metric for t in config.quality] == ["accuracy"]
    assert 0.3 < config.quality[0].min < 0.5  # a tenth of the way from the majority class's share to 1
    assert "Numeric columns of few whole numbers: ['region']" in text and "'dup.1'" in text
    stub = (folder / "features.py").read_text()
    assert "def prepare(frame: pd.DataFrame) -> pd.DataFrame:" in stub and "data.derived" in stub
    prepared = prepare_data(read_raw(path, config.data), config)  # the stub runs, as a no-op
    assert len(prepared.frame) == 450


def test_class_codes_keep_the_text_that_matches_the_data(tmp_path):
    repo = make_project(tmp_path / "p", models=())
    path = tmp_path / "grades.csv"
    codes = ["01", "02", "10", "7"]
    path.write_text("score,grade\n" + "\n".join(f"{i},{codes[i % 4]}" for i in range(40)) + "\n")
    folder = new_model(repo.path, "grades", problem="multiclass", source=str(path), target="grade")
    config = load_model_config(folder)
    assert config.data.classes == ("01", "02", 7, 10)  # in numeric order; 7 reads back as itself, 01 would not
    prepared = prepare_data(read_raw(path, config.data), config)
    assert prepared.frame["grade"].tolist()[:4] == [0, 1, 3, 2]
