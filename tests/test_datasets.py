"""Datasets written through the local store: layout, manifest, idempotence, read-back."""

from __future__ import annotations

import json

import pytest

from modelops import get_backend
from modelops.config import load_model_config
from modelops.data.datasets import fetch_data, find_dataset, load_dataset, read_split, write_dataset
from modelops.data.prepare import prepare_frame, read_raw, split_frame
from modelops.errors import StoreError
from tests.support.paths import ROOT


def gather(config, store, **options):
    raw = fetch_data(config)
    splits = split_frame(prepare_frame(read_raw(raw.path, config.data), config), config.split)
    return raw, splits, write_dataset(store, config, raw, splits, **options)


def test_a_dataset_is_three_headerless_splits_and_a_manifest(home):
    config = load_model_config(ROOT / "abalone_model")
    store = get_backend("local").store
    raw, splits, dataset = gather(config, store)
    root = home / "store" / "abalone-model" / "datasets" / dataset.dataset_id
    for name in ("train", "validation", "test"):
        path = root / name / f"{name}.csv"
        first = path.read_text().splitlines()[0].split(",")
        assert len(first) == 11  # target first, then 10 features, no header
        assert float(first[0]) == splits[name].iloc[0, 0]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["raw_sha256"] == raw.sha256
    assert manifest["files"]["train"]["rows"] == 2924
    assert dataset.feature_names[:2] == ("length", "diameter")
    assert dataset.channel_uris["train"].endswith("/train/")
    assert dataset.record.to_scraps()["rows_test"] == 418


def test_gathering_twice_rewrites_nothing_and_latest_points_at_it(home):
    config = load_model_config(ROOT / "churn_model")
    store = get_backend("local").store
    raw, splits, first = gather(config, store)
    train = home / "store" / "churn-model" / "datasets" / first.dataset_id / "train" / "train.csv"
    mtime = train.stat().st_mtime_ns
    _, _, second = gather(config, store)
    assert second == first and train.stat().st_mtime_ns == mtime
    assert load_dataset(store, config) == first
    assert find_dataset(store, config, raw.sha256) == first
    assert find_dataset(store, config, raw.sha256, seed=5) is None
    back = read_split(store, first, "validation")
    assert back.equals(splits["validation"].astype("float64"))


def test_other_seed_is_another_dataset(home):
    config = load_model_config(ROOT / "abalone_model")
    store = get_backend("local").store
    _, _, default = gather(config, store)
    _, _, other = gather(config, store, seed=11)
    assert other.dataset_id != default.dataset_id
    assert load_dataset(store, config).dataset_id == other.dataset_id  # latest wins


def test_a_dataset_written_to_another_location_is_still_found(home, tmp_path):
    config = load_model_config(ROOT / "abalone_model")
    store = get_backend("local").store
    _, _, dataset = gather(config, store, output=(tmp_path / "elsewhere").as_uri())
    assert (tmp_path / "elsewhere" / dataset.dataset_id / "manifest.json").is_file()
    assert load_dataset(store, config).manifest_uri == dataset.manifest_uri


def test_loading_before_anything_was_gathered_says_how_to_gather(home):
    config = load_model_config(ROOT / "abalone_model")
    with pytest.raises(StoreError, match=r"no dataset has been gathered for 'abalone-model'.*--stage gather"):
        load_dataset(get_backend("local").store, config)


def test_store_refuses_keys_that_escape_its_root(home):
    store = get_backend("local").store
    for bad in ("..", "a/b", "", "../etc"):
        with pytest.raises(StoreError, match="unsafe store key"):
            store.uri("model", bad)
