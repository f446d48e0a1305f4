"""Batch scoring on the local backend: the endpoint's answers for every row, in order, chunk by chunk, or an error
naming the line and nothing written."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest

from modelops.backends.local import LocalBackend
from modelops.config import ServingConfig
from modelops.data.datasets import fetch_data, write_dataset
from modelops.data.prepare import encode_rows, prepare_data, read_raw, split_frame
from modelops.entities import PROMOTED, STOPPED, TrainingSpec
from modelops.errors import ConfigError, DataError, EndpointFailed
from modelops.release.history import event_for
from modelops.release.transform import served_package, transform_table
from modelops.review.evaluation import check_quality, evaluate_model
from modelops.review.packages import register_model
from modelops.serving import protocol
from modelops.serving.batch import feature_chunks, line_blocks
from modelops.training.train import load_artifact
from tests.support.served import CONFIG, NAME
from tests.support.servers import stop_endpoints


class Scored:
    """A local home with abalone v1 (encoding recorded with its dataset) serving in production, as recorded."""

    def __init__(self, home: Path):
        self.ops = LocalBackend(home)
        raw = fetch_data(CONFIG)
        self.records = read_raw(raw.path, CONFIG.data)
        prepared = prepare_data(self.records, CONFIG)
        dataset = write_dataset(self.ops.store, CONFIG, raw, split_frame(prepared.frame, CONFIG.split),
                                prepared=prepared)
        spec = TrainingSpec(NAME, f"job-{time.monotonic_ns()}", "3.2-0",
                            {**CONFIG.training.hyperparameters, "num_round": 20}, dataset.channel_uris["train"],
                            dataset.channel_uris["validation"], self.ops.store.uri(NAME, "training", "transform"))
        training = self.ops.trainer.train(spec, log=lambda line: None)
        evaluation = evaluate_model(self.ops, CONFIG, dataset, training)
        package = register_model(self.ops, CONFIG, dataset, training, evaluation,
                                 check_quality(CONFIG, {"rmse": 0, "r2": 1}))
        self.package = self.ops.registry.approve(NAME, package.version, by="test")
        self.ops.history.append(event_for(NAME, PROMOTED, version=1, env_name="production",
                                          package_id=self.package.package_id))
        self.encoding = prepared.encoding
        self.X = encode_rows(CONFIG, self.records, prepared.encoding).to_numpy(dtype=np.float64)
        self.booster = load_artifact(self.ops.store, self.package.artifact_uri, self.package.artifact_sha256)

    def answer(self, rows, environment=None) -> bytes:
        """What the endpoint answers for ``rows`` in one text/csv request."""
        return protocol.render(self.booster.inplace_predict(rows), protocol.CSV,
                               protocol.Output.of(self.booster, environment or {}))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    home = tmp_path_factory.mktemp("transform")
    scored = Scored(home)
    yield scored
    stop_endpoints(home)


def transform(scored, source, target, config=CONFIG, **options):
    return transform_table(scored.ops, config, str(source), str(target), log=lambda line: None, **options)


def test_feature_rows_are_answered_as_the_endpoint_answers_them_in_order_across_chunk_boundaries(scored, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(scored.X))
    result = transform(scored, source, tmp_path / "small.csv", chunk_bytes=300)  # a few rows a chunk
    transform(scored, source, tmp_path / "whole.csv", chunk_bytes=64 * 2**20)
    expected = scored.answer(scored.X)
    assert (tmp_path / "small.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes() == expected
    assert result.rows == len(scored.X) == expected.count(b"\n") and result.version == 1


def test_raw_records_are_scored_as_the_rows_they_encode_to(scored, tmp_path):
    records = scored.records.drop(columns=[CONFIG.data.target])
    source = tmp_path / "records.csv"
    records[list(reversed(records.columns))].to_csv(source, index=False)  # any column order, the target absent
    result = transform(scored, source, tmp_path / "answers.csv", raw=True, chunk_bytes=2048)
    assert (tmp_path / "answers.csv").read_bytes() == scored.answer(scored.X)
    assert result.rows == len(records)


def test_selected_outputs_keep_one_line_per_row_across_chunks(scored, tmp_path):
    serving = ServingConfig(inference_output=("predicted_score",))
    config = dataclasses.replace(CONFIG, serving=serving)
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(scored.X[:500]))
    transform(scored, source, tmp_path / "answers.csv", config=config, chunk_bytes=400)
    lines = (tmp_path / "answers.csv").read_bytes()
    # The endpoint's answer has no final line break (the container's, outside batch transform); a batch has one.
    assert lines == scored.answer(scored.X[:500], serving.environment) + b"\n"


@pytest.mark.slow
def test_the_answers_are_those_of_the_environments_endpoint_byte_for_byte(scored, tmp_path):
    from modelops.release.deploy import deploy_package

    deploy_package(scored.ops, CONFIG, scored.package, env_name="staging", log=lambda line: None)
    rows = scored.X[:2000]
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(rows))
    transform(scored, source, tmp_path / "answers.csv", env_name="staging", chunk_bytes=4096)
    endpoint = scored.ops.endpoints.invoke(f"{NAME}-staging", protocol.to_csv(rows))
    assert (tmp_path / "answers.csv").read_bytes() == endpoint


def test_a_bad_cell_names_its_line_and_leaves_the_output_as_it_was(scored, tmp_path):
    body = protocol.to_csv(scored.X[:300]).split(b"\n")
    cells = body[206].split(b",")
    body[206] = b",".join([cells[0], b"abc", *cells[2:]])
    source, target = tmp_path / "rows.csv", tmp_path / "answers.csv"
    source.write_bytes(b"\n".join(body))
    target.write_bytes(b"yesterday's answers\n")
    with pytest.raises(DataError, match=r"rows\.csv: .*line 207, column 2: 'abc' is not a number.*Fix: "):
        transform(scored, source, target, chunk_bytes=500)
    assert target.read_bytes() == b"yesterday's answers\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "rows.csv"]  # no temporary file left


def test_a_blank_line_inside_is_refused_and_blank_lines_at_the_end_are_not_rows(scored, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(scored.X[:3]) + b"\n\n")
    assert transform(scored, source, tmp_path / "answers.csv").rows == 3
    source.write_bytes(protocol.to_csv(scored.X[:3]) + b"\n" + protocol.to_csv(scored.X[:3]))
    # Inside a chunk it is the endpoint's own error for the body; where a chunk starts or ends, ours: both name it.
    for chunk, message in ((4096, r"line 4 has 1 values but line 1 has 10.*Fix: send rows of equal length"),
                           (1, r"line 4 is blank.*Fix: remove blank lines")):
        with pytest.raises(DataError, match=message):
            transform(scored, source, tmp_path / "answers.csv", chunk_bytes=chunk)
    assert not (tmp_path / "answers.csv").read_bytes().count(b"\n") > 3  # the earlier answers stay


def test_rows_wider_than_the_model_are_refused_with_their_lines(scored, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(np.hstack([scored.X[:5], scored.X[:5, :1]])))
    with pytest.raises(DataError, match=r"lines 1-5: .*rows have 11 columns but the model has 10 features"):
        transform(scored, source, tmp_path / "answers.csv")


def test_raw_records_with_an_unseen_category_name_its_line_unless_zeros_are_asked_for(scored, tmp_path):
    records = scored.records.head(40).copy()
    records.loc[33, "sex"] = "X"
    source = tmp_path / "records.csv"
    records.to_csv(source, index=False)
    with pytest.raises(DataError, match=r"column 'sex' holds \['X'\] \(first in line 35, 1 row\).*--unseen zeros"):
        transform(scored, source, tmp_path / "answers.csv", raw=True, chunk_bytes=256)
    assert not (tmp_path / "answers.csv").exists()
    assert transform(scored, source, tmp_path / "answers.csv", raw=True, unseen="zeros").rows == 40


def test_a_ragged_raw_record_is_refused_with_the_fix(scored, tmp_path):
    source = tmp_path / "records.csv"
    scored.records.head(10).to_csv(source, index=False)
    source.write_text(source.read_text() + "M,0.5\n")
    with pytest.raises(DataError, match=r"Expected 9 columns, got 2.*Fix: every record needs the header's 9 cells"):
        transform(scored, source, tmp_path / "answers.csv", raw=True)


def test_blank_raw_records_are_refused_but_blank_lines_at_the_end_are_no_records(scored, tmp_path):
    source = tmp_path / "records.csv"
    text = scored.records.head(6).to_csv(index=False)
    source.write_text(text + "\n\n")
    assert transform(scored, source, tmp_path / "answers.csv", raw=True, chunk_bytes=256).rows == 6
    lines = text.splitlines(keepends=True)
    source.write_text("".join([*lines[:3], "\n", *lines[3:]]))
    with pytest.raises(DataError, match=r"records\.csv: line 4 is blank .*Fix: remove it"):
        transform(scored, source, tmp_path / "answers.csv", raw=True, chunk_bytes=256)


def test_nothing_served_means_nothing_to_score_with(scored, tmp_path):
    with pytest.raises(EndpointFailed, match=r"staging environment serves no version.*Fix: deploy one"):
        served_package(LocalBackend(tmp_path / "empty"), CONFIG, "staging")
    scored.ops.history.append(event_for(NAME, STOPPED, version=1, env_name="production", package_id="x"))
    try:
        with pytest.raises(EndpointFailed, match=r"production environment serves no version since .* \(stopped\)"):
            served_package(scored.ops, CONFIG)
    finally:
        scored.ops.history.append(event_for(NAME, PROMOTED, version=1, env_name="production",
                                            package_id=scored.package.package_id))


def test_the_local_backend_scores_local_files_only(scored, tmp_path):
    with pytest.raises(ConfigError, match=r"--input s3://bucket/rows\.csv is not a local file.*--backend sagemaker"):
        transform(scored, "s3://bucket/rows.csv", tmp_path / "answers.csv")


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_line_blocks_cut_at_line_ends_whatever_the_chunk_size(chunk):
    text = b"1,2\r\n333,4\n5,66666666666\n7,8\n\n\n"
    blocks = list(line_blocks(io.BytesIO(text), chunk))
    assert b"".join(block for _, block in blocks) == b"1,2\r\n333,4\n5,66666666666\n7,8\n"
    assert all(block.endswith(b"\n") for _, block in blocks)
    starts, line = [], 1
    for first, block in blocks:
        starts.append(first)
        assert first == line
        line += block.count(b"\n")
    assert list(line_blocks(io.BytesIO(b"9,9"), chunk)) == [(1, b"9,9\n")]


def test_a_chunk_is_scored_before_the_rest_of_the_table_is_read(scored):
    class Tracked(io.BytesIO):
        reads: list[int] = []

        def read(self, size=-1):
            self.reads.append(size)
            return super().read(size)

    body = protocol.to_csv(scored.X)
    source = Tracked(body)
    chunks = feature_chunks(source, "rows.csv", 4096)
    first = next(chunks)
    assert source.tell() < 3 * 4096 < len(body) and max(source.reads) == 4096  # never the whole table
    assert np.array_equal(first.rows, scored.X[:len(first.rows)]) and first.first_line == 1


def test_ci_transform_prints_one_line_and_exits_1_on_a_bad_row(scored, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ci.cli import main

    monkeypatch.setenv("MODELOPS_HOME", str(scored.ops.home))
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(scored.X[:10]))
    result = CliRunner().invoke(main, ["transform", "abalone_model", "--input", str(source), "--output",
                                       str(tmp_path / "answers.csv")])
    assert result.exit_code == 0, result.output
    assert "v1 scored 10 rows in " in result.stdout and (tmp_path / "answers.csv").exists()
    source.write_bytes(b"1,2,x\n")
    result = CliRunner().invoke(main, ["transform", "abalone_model", "--input", str(source), "--output",
                                       str(tmp_path / "other.csv")])
    assert result.exit_code == 1 and "line 1, column 3: 'x' is not a number" in result.stderr
    assert not (tmp_path / "other.csv").exists()
