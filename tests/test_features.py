"""A model folder's features.py: loaded by path, checked, part of the lineage; and encode_rows for inference."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops.config import ModelConfig, load_model_config
from modelops.data.datasets import dataset_id
from modelops.data.features import STUB
from modelops.data.prepare import encode_rows, prepare_data, read_raw
from modelops.errors import ConfigError, DataError, FeaturesError
from modelops.review.lineage import working_tree_hash
from tests.support.gitrepo import make_project
from tests.support.paths import ROOT, SHARED_DATA

ABALONE_DATA = SHARED_DATA / "abalone" / "abalone.data"
CHURN_DATA = SHARED_DATA / "churn" / "churn.txt"
VOLUME = '''import pandas as pd


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    frame["volume"] = frame["length"] * frame["diameter"] * frame["height"]
    return frame
'''


def abalone_folder(tmp_path, features: str | None = None, **data) -> ModelConfig:
    """A copy of abalone_model (model.yml only) with the given features.py and data settings."""
    folder = tmp_path / "abalone_model"
    folder.mkdir(parents=True)
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    raw["data"].update(data)
    (folder / "model.yml").write_text(yaml.safe_dump(raw))
    if features is not None:
        (folder / "features.py").write_text(features)
    return load_model_config(folder)


@pytest.fixture(scope="module")
def abalone_raw() -> pd.DataFrame:
    return read_raw(ABALONE_DATA, load_model_config(ROOT / "abalone_model").data)


def test_the_scaffold_stub_is_a_working_no_op(tmp_path, abalone_raw):
    plain = prepare_data(abalone_raw, load_model_config(ROOT / "abalone_model"))
    stubbed = prepare_data(abalone_raw, abalone_folder(tmp_path, STUB))
    assert stubbed.frame.equals(plain.frame) and stubbed.encoding == plain.encoding


def test_a_derived_column_is_one_more_feature_computed_from_numbers(tmp_path, abalone_raw):
    config = abalone_folder(tmp_path, VOLUME, derived=["volume"])
    prepared = prepare_data(abalone_raw, config)
    plain = prepare_data(abalone_raw, load_model_config(ROOT / "abalone_model"))
    assert len(prepared.encoding.feature_names) == len(plain.encoding.feature_names) + 1
    assert prepared.encoding.numeric[-1] == "volume"  # after the raw numeric columns, before the one-hot ones
    expected = plain.frame["length"] * plain.frame["diameter"] * plain.frame["height"]
    assert np.allclose(prepared.frame["volume"], expected)
    assert not list(tmp_path.rglob("__pycache__"))  # nothing written into the model folder (its tree is lineage)
    assert str(config.folder) not in sys.path and "features" not in sys.modules


def test_raw_records_encode_to_the_rows_the_model_was_trained_on(tmp_path, abalone_raw):
    config = abalone_folder(tmp_path, VOLUME, derived=["volume"])
    prepared = prepare_data(abalone_raw, config)
    records = abalone_raw.drop(columns=["rings"]).iloc[::-7, ::-1]  # no target, rows and columns shuffled
    encoded = encode_rows(config, records, prepared.encoding)
    trained = prepared.frame.iloc[records.index, 1:]
    assert list(encoded.columns) == list(prepared.encoding.feature_names)
    assert np.array_equal(encoded.to_numpy(), trained.to_numpy())
    numbers = records.assign(length=records["length"].astype(float), extra="ignored")  # typed cells, a spare column
    assert encode_rows(config, numbers, prepared.encoding).equals(encoded)


def test_churn_records_encode_with_its_33_area_codes_in_training_order():
    config = load_model_config(ROOT / "churn_model")
    raw = read_raw(CHURN_DATA, config.data)
    prepared = prepare_data(raw, config)
    encoded = encode_rows(config, raw.head(50), prepared.encoding)
    assert np.array_equal(encoded.to_numpy(), prepared.frame.iloc[:50, 1:].to_numpy())
    codes = raw.head(3).assign(**{"Area Code": [f"{c}.0" for c in raw["Area Code"].head(3)]})  # as a float column
    assert encode_rows(config, codes, prepared.encoding).equals(encoded.head(3))


def test_unseen_category_is_an_error_or_no_category(tmp_path, abalone_raw):
    config = load_model_config(ROOT / "abalone_model")
    encoding = prepare_data(abalone_raw, config).encoding
    records = abalone_raw.head(3).assign(sex=["M", "X", ""])
    with pytest.raises(DataError, match=r"column 'sex' holds \['X'\] \(first in row 2, 1 row\).*never saw.*"
                                        r"known: \['F', 'I', 'M'\].*unseen='zeros'"):
        encode_rows(config, records, encoding)
    zeros = encode_rows(config, records, encoding, unseen="zeros")
    assert zeros[["sex_F", "sex_I", "sex_M"]].to_numpy().tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_records_missing_a_column_are_refused(abalone_raw):
    config = load_model_config(ROOT / "abalone_model")
    encoding = prepare_data(abalone_raw, config).encoding
    with pytest.raises(DataError, match=r"lack the columns \['height'\].*target may be left out"):
        encode_rows(config, abalone_raw.drop(columns=["height", "rings"]), encoding)
    with pytest.raises(DataError, match=r"column 'length' must be numeric but data row 2 holds 'long'"):
        encode_rows(config, abalone_raw.head(2).assign(length=["0.4", "long"]), encoding)


@pytest.mark.parametrize("code, message", [
    ("def prepare(frame):\n    frame['x'] = frame['lenght']\n    return frame\n",
     r"features\.py, line 2, in prepare: prepare\(\) raised KeyError: 'lenght'\. Fix: correct features\.py at that "
     r"line; the table it received has columns \['sex', 'length'"),
    ("def prepare(frame):\n    return helper(frame)\n\n\ndef helper(frame):\n    return frame / 0 + 'a'\n",
     r"features\.py, line 6, in helper: prepare\(\) raised"),
    ("def prepare(frame)\n    return frame\n", r"features\.py, line 1: SyntaxError"),
    ("import no_such_module\n", r"features\.py, line 1, in <module>: importing features\.py raised "
                                r"ModuleNotFoundError"),
    ("def transform(frame):\n    return frame\n", r"defines no function prepare\(frame\)"),
    ("def prepare(frame):\n    frame['x'] = 1\n", r"returned None\. Fix: end it with `return frame`"),
    ("def prepare(frame):\n    return frame.values\n", r"returned ndarray, not a pandas DataFrame"),
    ("def prepare(frame):\n    return frame.head(10)\n", r"returned 10 rows for 4177, or reordered them"),
    ("def prepare(frame):\n    return frame.sort_values('length')\n", r"reordered them"),
    ("def prepare(frame):\n    return frame.drop(columns=['rings'])\n", r"dropped the target column 'rings'"),
    ("def prepare(frame):\n    frame['ratio'] = 1.0\n    return frame\n",
     r"added the columns \['ratio'\] but model.yml's data.derived declares \[\] \(not declared: \['ratio'\]\)"),
])
def test_features_py_failures_name_the_file_line_and_fix(tmp_path, abalone_raw, code, message):
    config = abalone_folder(tmp_path, code)
    with pytest.raises(FeaturesError, match=message) as error:
        prepare_data(abalone_raw, config)
    assert str(config.folder / "features.py") in str(error.value) and "Fix:" in str(error.value)


def test_derived_columns_are_declared_in_model_yml(tmp_path, abalone_raw):
    with pytest.raises(ConfigError, match=r"data.derived' lists \['volume'\].*features.py does not exist"):
        abalone_folder(tmp_path / "a", None, derived=["volume"])
    with pytest.raises(ConfigError, match=r"'data.derived' names 'length', which is already in data.columns"):
        abalone_folder(tmp_path / "b", VOLUME, derived=["length"])
    with pytest.raises(ConfigError, match=r"'data.categorical' names 'size', which is not in data.columns or "
                                          r"data.derived"):
        abalone_folder(tmp_path / "c", VOLUME, derived=["volume"], categorical=["sex", "size"])
    config = abalone_folder(tmp_path / "d", VOLUME, derived=["volume", "size"])
    with pytest.raises(FeaturesError, match=r"\(not added: \['size'\]\)"):
        prepare_data(abalone_raw, config)


def test_a_derived_category_is_one_hot_encoded(tmp_path, abalone_raw):
    code = ("import pandas as pd\n\n\ndef prepare(frame):\n"
            "    frame['size'] = pd.cut(frame['length'], [0, 0.4, 0.6, 1], labels=['small', 'mid', 'big'])\n"
            "    return frame\n")
    config = abalone_folder(tmp_path, code, derived=["size"], categorical=["sex", "size"])
    prepared = prepare_data(abalone_raw, config)
    assert prepared.encoding.feature_names[-3:] == ("size_big", "size_mid", "size_small")
    assert prepared.frame[["size_big", "size_mid", "size_small"]].sum(axis=1).eq(1).all()


def test_features_py_is_in_the_lineage_and_the_dataset_identity(tmp_path):
    repo = make_project(tmp_path / "p")
    folder = repo.path / "abalone_model"
    before = working_tree_hash(folder)
    plain = dataset_id(load_model_config(folder), "0" * 64)
    (folder / "features.py").write_text(STUB)
    with_stub = working_tree_hash(folder)
    stub_id = dataset_id(load_model_config(folder), "0" * 64)
    (folder / "features.py").write_text(VOLUME)
    assert len({before, with_stub, working_tree_hash(folder)}) == 3
    assert len({plain, stub_id, dataset_id(load_model_config(folder), "0" * 64)}) == 3
    repo.commit("features")
    assert working_tree_hash(folder) == repo.tree("abalone_model")


def test_encode_rows_reads_the_latest_dataset_when_given_none(tmp_path, home, abalone_raw):
    import modelops
    from modelops.backends import get_backend
    from modelops.data.datasets import fetch_data, write_dataset
    from modelops.data.prepare import split_frame

    folder = tmp_path / "abalone_model"
    shutil.copytree(ROOT / "abalone_model", folder)
    config = load_model_config(folder)
    store = get_backend("local").store
    prepared = prepare_data(abalone_raw, config)
    write_dataset(store, config, fetch_data(config), split_frame(prepared.frame, config.split), prepared=prepared)
    latest = modelops.encode_rows(config, abalone_raw.head(5))  # what a notebook calls: the latest dataset's encoding
    assert latest.equals(encode_rows(config, abalone_raw.head(5), prepared.encoding))


def test_features_py_may_hold_ordinary_module_code(tmp_path, abalone_raw):
    code = ('from __future__ import annotations\n\nfrom dataclasses import dataclass\n\n\n@dataclass(frozen=True)\n'
            'class Scale:\n    factor: float = 2.0\n\n\ndef prepare(frame):\n'
            '    frame["double_length"] = frame["length"] * Scale().factor\n    return frame\n')
    prepared = prepare_data(abalone_raw.head(40), abalone_folder(tmp_path, code, derived=["double_length"]))
    assert np.allclose(prepared.frame["double_length"], 2 * prepared.frame["length"])


def test_raw_records_need_a_deployed_version_to_be_encoded_for(home, abalone_raw):
    from modelops.backends import get_backend
    from modelops.errors import EndpointFailed
    from modelops.release.deploy import encode_request

    config = load_model_config(ROOT / "abalone_model")
    with pytest.raises(EndpointFailed, match=r"'abalone-model' serves no version\. Fix: promote staging's version "
                                             r"\(`python -m ci promote abalone_model --by NAME`\)"):
        encode_request(get_backend("local"), config, abalone_raw.head(2))
    with pytest.raises(EndpointFailed, match=r"'abalone-model-staging' serves no version\. Fix: deploy it "
                                             r"\(`python -m ci deploy abalone_model --env staging`\)"):
        encode_request(get_backend("local"), config, abalone_raw.head(2), env_name="staging")
