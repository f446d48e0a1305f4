"""Data preparation on the real files, and the data errors a config or a drifting file produce."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from modelops.config import load_model_config
from modelops.data.prepare import features_and_target, prepare_data, prepare_frame, read_raw, split_frame
from modelops.errors import DataError
from tests.support.paths import ROOT, SHARED_DATA

ABALONE = load_model_config(ROOT / "abalone_model")
CHURN = load_model_config(ROOT / "churn_model")


def prepared(config, path):
    return prepare_frame(read_raw(path, config.data), config)


def test_abalone_preparation_matches_the_tutorial():
    frame = prepared(ABALONE, SHARED_DATA / "abalone" / "abalone.data")
    assert frame.shape == (4177, 11)
    assert frame.columns[0] == "rings"
    assert list(frame.columns[-3:]) == ["sex_F", "sex_I", "sex_M"]
    assert frame[["sex_F", "sex_I", "sex_M"]].sum().to_dict() == {"sex_F": 1307, "sex_I": 1342, "sex_M": 1528}
    assert frame["rings"].between(1, 29).all()
    assert frame.dtypes.map(lambda d: d.kind in "fiu").all()


def test_churn_preparation_matches_the_tutorial():
    frame = prepared(CHURN, SHARED_DATA / "churn" / "churn.txt")
    assert frame.shape == (5000, 100)  # target + 99 features, as in the tutorial's get_dummies
    assert frame.columns[0] == "Churn?"
    assert int(frame["Churn?"].sum()) == 2498
    for dropped in ("Phone", "Day Charge", "Eve Charge", "Night Charge", "Intl Charge"):
        assert dropped not in frame.columns
    assert sum(c.startswith("Area Code_") for c in frame.columns) == 33  # a category, not a number
    assert "Area Code" not in frame.columns


def test_split_is_deterministic_and_follows_ratios():
    frame = prepared(ABALONE, SHARED_DATA / "abalone" / "abalone.data")
    first = split_frame(frame, ABALONE.split)
    again = split_frame(frame, ABALONE.split)
    other = split_frame(frame, ABALONE.split, seed=7)
    assert {k: len(v) for k, v in first.items()} == {"train": 2924, "validation": 835, "test": 418}
    assert all(first[k].equals(again[k]) for k in first)
    assert not first["test"].equals(other["test"])
    X, y = features_and_target(first["train"])
    assert X.shape == (2924, 10) and y.shape == (2924,)
    assert np.array_equal(y, first["train"]["rings"].to_numpy())


def test_an_empty_data_file_is_refused(tmp_path):
    path = tmp_path / "abalone.data"
    path.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_raw(path, ABALONE.data)


def test_extra_column_is_schema_drift(tmp_path):
    path = tmp_path / "abalone.data"
    lines = (SHARED_DATA / "abalone" / "abalone.data").read_text().splitlines()[:20]
    path.write_text("\n".join(line + ",1" for line in lines) + "\n")
    with pytest.raises(DataError, match=r"has 10 columns but data\.columns in model\.yml lists 9"):
        read_raw(path, ABALONE.data)


def test_missing_column_with_header_is_schema_drift(tmp_path):
    source = SHARED_DATA / "churn" / "churn.txt"
    import pandas as pd

    pd.read_csv(source, nrows=50).drop(columns=["Eve Calls"]).assign(Extra=1).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match=r"missing: \['Eve Calls'\], unexpected: \['Extra'\]"):
        read_raw(tmp_path / "c.csv", CHURN.data)


def test_non_numeric_value_names_column_and_row(tmp_path):
    path = tmp_path / "abalone.data"
    lines = (SHARED_DATA / "abalone" / "abalone.data").read_text().splitlines()[:20]
    lines[4] = lines[4].replace("0.", "abc", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'length' must be numeric but data row 5 holds 'abc"):
        prepared(ABALONE, path)


def test_a_target_column_missing_from_the_data_is_refused():
    config = dataclasses.replace(ABALONE, data=dataclasses.replace(ABALONE.data, target="age", columns=()))
    raw = read_raw(SHARED_DATA / "abalone" / "abalone.data", ABALONE.data)
    with pytest.raises(DataError, match=r"target column 'age'.*is not in the data"):
        prepare_frame(raw, config)


def test_a_binary_target_with_a_single_class_is_refused(tmp_path):
    import pandas as pd

    frame = pd.read_csv(SHARED_DATA / "churn" / "churn.txt", nrows=200)
    frame["Churn?"] = "False."
    frame.to_csv(tmp_path / "churn.txt", index=False)
    with pytest.raises(DataError, match=r"single class.*positive_label 'True\.'"):
        prepared(CHURN, tmp_path / "churn.txt")


def test_rows_with_an_empty_target_are_left_out_and_counted(tmp_path):
    path = tmp_path / "abalone.data"
    lines = (SHARED_DATA / "abalone" / "abalone.data").read_text().splitlines()[:10]
    lines[2] = lines[2].rsplit(",", 1)[0] + ","
    lines[5] = lines[5].rsplit(",", 1)[0] + ",NA"
    path.write_text("\n".join(lines) + "\n")
    data = prepare_data(read_raw(path, ABALONE.data), ABALONE)
    assert (data.rows_read, data.rows_without_target, len(data.frame)) == (10, 2, 8)
    expected = [float(line.rsplit(",", 1)[1]) for i, line in enumerate(lines) if i not in (2, 5)]
    assert data.frame["rings"].tolist() == expected
    assert "2 rows without a target left out" in data._repr_markdown_()
    lines = [line.rsplit(",", 1)[0] + "," for line in lines]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"target 'rings' is empty in every row"):
        prepared(ABALONE, path)


def test_too_little_data_for_a_split_is_refused():
    frame = prepared(ABALONE, SHARED_DATA / "abalone" / "abalone.data").head(3)
    with pytest.raises(DataError, match="split is empty"):
        split_frame(frame, ABALONE.split)
