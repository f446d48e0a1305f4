"""The streamed gather: the dataset that preparing the whole table at once writes, whatever the chunks."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops.backends.local.store import LocalStore
from modelops.config import load_model_config
from modelops.data.datasets import read_split, split_csv, write_dataset
from modelops.data.encoding import _parse_numbers_exact, all_numbers, category_labels, parse_numbers
from modelops.data.gather import gather_dataset
from modelops.data.prepare import prepare_data, read_raw, split_frame
from modelops.data.sources import fetch_source
from modelops.errors import DataError
from modelops.notebook import plots

ROWS = 2_000
LATE = 1_700  # the data row from which the late category (and the price's dollar sign) appears


def write_table(path: Path, *, rows: int = ROWS, dollars: bool = False, classes: tuple = ("0", "1")) -> Path:
    """n (the row number), x with gaps ("", NA, ?), price, colour (a category first seen at row LATE, and empty
    cells), a text id, the target (some empty)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=rows)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "n", "x", "price", "colour", "target"])
        for i in range(rows):
            cell = ["", "NA", "?"][i % 3] if i % 17 == 0 else f"{x[i]:.4f}"
            price = f"{(i % 50) / 4:.2f}"
            colour = "violet" if i >= LATE and i % 5 == 0 else ["red", "green", "", "blue"][i % 4]
            target = "" if i % 97 == 0 else classes[int(x[i] + rng.normal(scale=0.5) > 0) % len(classes)]
            writer.writerow([f"id-{i}", i, cell, f"${price}" if dollars and i >= LATE else price, colour, target])
    return path


def model(folder: Path, source: Path, *, problem: str = "binary", features: str | None = None, **data) -> object:
    folder.mkdir(parents=True, exist_ok=True)
    described = {"source": str(source), "target": "target", "drop": ["id"], "categorical": ["colour"], **data}
    if problem == "binary":
        described.setdefault("positive_label", 1)
    objective = {"binary": "binary:logistic", "multiclass": "multi:softprob"}[problem]
    quality = {"binary": {"auc": {"min": 0.5}}, "multiclass": {"accuracy": {"min": 0.3}}}[problem]
    (folder / "model.yml").write_text(yaml.safe_dump({
        "name": "streamed", "problem_type": problem, "data": described,
        "split": {"train": 0.7, "validation": 0.2, "test": 0.1, "seed": 1729},
        "training": {"container_version": "3.2-0", "hyperparameters": {"objective": objective, "num_round": 5}},
        "quality": quality}))
    if features:
        (folder / "features.py").write_text(features)
    return load_model_config(folder)


def whole_table(tmp_path: Path, config, raw):
    """The dataset as prepare_data, split_frame and write_dataset make it from the whole table."""
    prepared = prepare_data(read_raw(raw.path, config.data), config)
    splits = split_frame(prepared.frame, config.split)
    return prepared, splits, write_dataset(LocalStore(tmp_path / "whole"), config, raw, splits, prepared=prepared)


def digests(dataset) -> dict[str, str]:
    return {name: f.sha256 for name, f in dataset.files.items()}


def test_a_streamed_gather_writes_the_files_the_whole_table_gives(tmp_path):
    raw = fetch_source(str(write_table(tmp_path / "table.csv")))
    config = model(tmp_path / "m", raw.path)
    prepared, splits, whole = whole_table(tmp_path, config, raw)
    streamed = gather_dataset(LocalStore(tmp_path / "streamed"), config, raw, chunk_bytes=4096, sample_rows=ROWS)
    assert streamed.dataset.dataset_id == whole.dataset_id
    assert digests(streamed.dataset) == digests(whole)
    for name, f in streamed.dataset.files.items():  # the manifest's hash is the file's
        assert hashlib.sha256(Path(f.uri.removeprefix("file://")).read_bytes()).hexdigest() == f.sha256
    assert streamed.dataset.rows == whole.rows and streamed.dataset.target_summary == whole.target_summary
    assert streamed.dataset.encoding == whole.encoding
    assert ("colour", ("blue", "green", "red", "violet")) in streamed.encoding.categorical  # first seen late
    assert streamed.rows_without_target == prepared.rows_without_target == len(range(0, ROWS, 97))
    assert streamed.sample.equals(prepared.frame)  # a sample as large as the table is the table
    assert {name: list(t) for name, t in streamed.targets.items()} == {
        name: list(frame.iloc[:, 0]) for name, frame in splits.items()}


def test_chunk_size_changes_neither_the_split_of_a_row_nor_the_bytes(tmp_path):
    raw = fetch_source(str(write_table(tmp_path / "table.csv")))
    config = model(tmp_path / "m", raw.path)
    small = gather_dataset(LocalStore(tmp_path / "a"), config, raw, chunk_bytes=1500)
    large = gather_dataset(LocalStore(tmp_path / "b"), config, raw, chunk_bytes=2**24)
    assert digests(small.dataset) == digests(large.dataset)


def test_each_split_keeps_table_order_and_the_rows_the_seeded_shuffle_chose(tmp_path):
    raw = fetch_source(str(write_table(tmp_path / "table.csv")))
    config = model(tmp_path / "m", raw.path)
    store = LocalStore(tmp_path / "store")
    dataset = gather_dataset(store, config, raw, chunk_bytes=2048).dataset
    prepared = prepare_data(read_raw(raw.path, config.data), config).frame
    order = np.random.default_rng(1729).permutation(len(prepared))
    cut = [int(round(len(prepared) * 0.7)), int(round(len(prepared) * 0.9))]
    for name, rows in zip(("train", "validation", "test"), np.split(order, cut)):
        numbers = read_split(store, dataset, name)["n"].to_numpy()
        assert list(numbers) == sorted(numbers)
        assert set(numbers) == set(prepared["n"].iloc[rows])


def test_a_column_with_text_only_in_a_late_chunk_reaches_features_py_as_text_in_every_chunk(tmp_path):
    # The whole table's price column holds "$3.25" from row LATE on, so it is text everywhere; features.py strips
    # the dollar with a text method, which would fail on a chunk read as numbers.
    raw = fetch_source(str(write_table(tmp_path / "table.csv", dollars=True)))
    features = 'def prepare(frame):\n    frame["price"] = frame["price"].str.lstrip("$")\n    return frame\n'
    config = model(tmp_path / "m", raw.path, features=features)
    _, _, whole = whole_table(tmp_path, config, raw)
    streamed = gather_dataset(LocalStore(tmp_path / "streamed"), config, raw, chunk_bytes=2048)
    assert digests(streamed.dataset) == digests(whole)


def test_a_file_pyarrow_reads_otherwise_than_pandas_is_gathered_in_memory_alike(tmp_path):
    path = write_table(tmp_path / "table.csv")
    lines = path.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:4])  # a short row: its missing cells are empty
    lines[9] = lines[9].replace(",red,", ', "red",')  # a quoted cell after a space
    path.write_text("\n".join(lines) + "\n")
    raw = fetch_source(str(path))
    config = model(tmp_path / "m", raw.path)
    _, _, whole = whole_table(tmp_path, config, raw)
    streamed = gather_dataset(LocalStore(tmp_path / "streamed"), config, raw, chunk_bytes=2048)
    assert digests(streamed.dataset) == digests(whole)


def test_errors_name_the_row_of_the_whole_file_and_need_every_chunk(tmp_path):
    classes = ("setosa", "versicolor", "virginica")
    path = write_table(tmp_path / "table.csv", classes=classes)
    lines = path.read_text().splitlines()
    lines[1501] = lines[1501].rsplit(",", 1)[0] + ",daisy"  # data row 1501
    path.write_text("\n".join(lines) + "\n")
    raw = fetch_source(str(path))
    config = model(tmp_path / "m", raw.path, problem="multiclass", classes=list(classes))
    with pytest.raises(DataError, match=r"\['daisy'\] \(1 rows, first data row 1501\)"):
        gather_dataset(LocalStore(tmp_path / "s"), config, raw, chunk_bytes=2048)

    # One class in the early chunks is no error; one class in the whole file is.
    one_class = tmp_path / "one.csv"
    one_class.write_text("x,colour,target\n" + "".join(f"{i},red,{int(i >= 1900)}\n" for i in range(2000)))
    raw = fetch_source(str(one_class))
    config = model(tmp_path / "b", raw.path, drop=[])
    assert gather_dataset(LocalStore(tmp_path / "t"), config, raw, chunk_bytes=1024).dataset.target_summary[
        "train"]["positive"] > 0
    one_class.write_text("x,colour,target\n" + "".join(f"{i},red,0\n" for i in range(2000)))
    raw = fetch_source(str(one_class))
    with pytest.raises(DataError, match="has a single class"):
        gather_dataset(LocalStore(tmp_path / "u"), model(tmp_path / "c", raw.path, drop=[]), raw, chunk_bytes=1024)


@pytest.mark.parametrize("cells", [
    ["1e3", " 2.5 ", "-0.125", ".5", "5.", "+7", "00012", "", "NA", "n/a", "?", "None", "1e400"],
    ["inf", "-Infinity", "3"], ["iNf", ""], ["1_000", "2"], ["+nan", "1"], ["-nan"], ["0x1A"], ["1,000"], ["١٢"],
    ["abc", "1"], ["1e", "2"], ["--1"], ["1.2.3"], ["True"], [" ", "\t"],
])
def test_numbers_are_read_by_pandas_rules_whichever_way_they_are_read(cells):
    column = pd.Series(cells, dtype="str")
    values, bad = _parse_numbers_exact(column)
    fast = all_numbers(column)
    assert (fast is None) == bool(bad.any())
    if fast is not None:
        assert np.array_equal(fast.to_numpy(), values.to_numpy(), equal_nan=True)
    got, got_bad = parse_numbers(column)
    assert got_bad.equals(bad) and np.array_equal(got.to_numpy(), values.to_numpy(), equal_nan=True)
    mixed = pd.Series([*cells, 4], dtype=object)  # a cell that is not text: pandas' rules, cell by cell
    assert (all_numbers(mixed) is None) == bool(_parse_numbers_exact(mixed)[1].any())


def test_category_labels_are_canonical_once_per_value_and_keep_true_apart_from_one():
    column = pd.Series([True, 1, "1.0", " x ", "", None, float("nan"), 2.0, "02"], dtype=object)
    assert list(category_labels(column)) == ["True", "1", "1", "x", None, None, None, "2", "02"]
    assert list(category_labels(pd.Series([1.0, 2.5, np.nan]))) == ["1", "2.5", None]


def test_a_split_file_is_what_pyarrows_csv_writer_writes(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"y": rng.integers(0, 2, 300).astype(np.uint8), "a": rng.normal(size=300),
                          "b": np.where(rng.random(300) < 0.2, np.nan, rng.normal(size=300) * 1e-7),
                          **{f"c_{i}": (rng.random(300) < 0.3).astype(np.uint8) for i in range(12)},
                          "count": rng.integers(0, 40, 300).astype(np.uint8)})  # uint8 over 9: written as numbers
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink,
                     pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    assert split_csv(frame, rows=70) == sink.getvalue().to_pybytes()
    back = pd.read_csv(pa.BufferReader(split_csv(frame)), header=None, dtype="float64")
    assert np.array_equal(back.to_numpy(), frame.to_numpy(dtype=np.float64), equal_nan=True)
    assert split_csv(frame.iloc[:0]) == b""


def test_the_figures_take_each_splits_target_and_say_what_sample_they_show(tmp_path):
    raw = fetch_source(str(write_table(tmp_path / "table.csv")))
    config = model(tmp_path / "m", raw.path)
    gathered = gather_dataset(LocalStore(tmp_path / "s"), config, raw, sample_rows=500)
    assert gathered.sample_note == f"sample of 500 of {gathered.rows:,} rows" and len(gathered.sample) == 500
    assert list(gathered.sample["n"]) == sorted(gathered.sample["n"])
    assert gathered.describe().loc["x", "count"] <= 500
    figure = plots.target_correlation(gathered.sample, note=gathered.sample_note)
    assert gathered.sample_note in figure.axes[0].get_title()
    figure = plots.target_distribution(gathered.targets, "binary", "target")
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["train", "validation", "test"]
    assert "sample" not in gather_dataset(LocalStore(tmp_path / "t"), config, raw).sample_note
