"""The inference protocol, without a server: parsing, content negotiation, answers (the container's rules)."""

from __future__ import annotations

import csv
import io
import json
import random
import warnings

import numpy as np
import pytest

from modelops.serving import protocol
from modelops.serving.protocol import RequestError


def container_csv(predictions: np.ndarray) -> bytes:
    """The container's CSV answer, written its way: csv.writer over np.array(preds.tolist()) (sagemaker_containers
    _encoders.array_to_csv), independently of how protocol formats it."""
    array = np.array(np.asarray(predictions).tolist())
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n").writerows(array)
    return stream.getvalue().encode()


# -- headers -----------------------------------------------------------------------------------------------------


HEADERS = ["text/csv", "TEXT/CSV; charset=UTF-8", "text/csv;label_size=1", 'text/csv; a="x;y"; b=2', "a; b", "",
           "application/json, text/csv", 'x; q="a\\"b"; c', ";;", "text/csv;label_size", " text/csv ; q = 0 ",
           'a; b="c', 'a;b="c;d";e=f', "a;B=1;b=2", "a;=1"]


@pytest.mark.parametrize("value", HEADERS)
def test_parse_header_splits_as_cgi_does(value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cgi = pytest.importorskip("cgi", reason="the container's Python 3.12 has cgi; 3.13 removed it, hence our own")

        assert protocol.parse_header(value) == cgi.parse_header(value)


def test_content_types():
    assert protocol.content_type("text/csv; charset=utf-8") == protocol.CSV
    assert protocol.content_type("TEXT/CSV;Label_Size=1") == protocol.CSV
    assert protocol.content_type("csv") == protocol.CSV  # data_utils accepts the bare names
    assert protocol.content_type(None) == protocol.LIBSVM  # no Content-Type: libsvm
    assert protocol.content_type("text/x-libsvm") == protocol.LIBSVM
    assert protocol.content_type("application/x-recordio-protobuf") == protocol.RECORDIO
    for refused in ("application/x-parquet", "application/json", "", "text/csv,text/plain", "text/csv;label_size=2",
                    'text/csv; label_size="0"'):
        with pytest.raises(RequestError) as error:
            protocol.content_type(refused)
        assert error.value.status == 415 and "Fix:" in error.value.message


def test_accept_is_one_media_type():
    assert protocol.accept_type(None) == protocol.CSV
    assert protocol.accept_type("") == protocol.CSV
    assert protocol.accept_type("*/*") == protocol.CSV
    assert protocol.accept_type("*/*", default=protocol.JSON) == protocol.JSON
    assert protocol.accept_type("*/*;q=0.8") == protocol.CSV
    assert protocol.accept_type("Application/JSON") == protocol.JSON
    assert protocol.accept_type("application/json;q=0") == protocol.JSON  # q-values are ignored
    assert protocol.accept_type("application/x-recordio-protobuf") == protocol.RECORDIO
    for refused in ("application/json, text/csv", "text/*", "application/*", "text/html", "json",
                    "application/x-jsonlines", "text/html, application/jsonlines"):
        with pytest.raises(RequestError) as error:
            protocol.accept_type(refused)
        assert error.value.status == 406


def test_responses_carry_the_content_type_the_container_sends():
    assert protocol.response_content_type("text/csv") == "text/csv; charset=utf-8"
    assert protocol.response_content_type("application/json") == "application/json"
    assert protocol.response_content_type("application/jsonlines") == "application/jsonlines"


# -- CSV bodies --------------------------------------------------------------------------------------------------


def test_csv_single_and_batch_with_missing_values():
    assert protocol.parse_csv(b"1,2.5,3\n").tolist() == [[1.0, 2.5, 3.0]]
    batch = protocol.parse_csv(b"1,,3\r\n4,5,nan\n")
    assert batch.shape == (2, 3) and np.isnan(batch[0, 1]) and np.isnan(batch[1, 2])
    many = np.arange(300.0).reshape(100, 3)
    assert np.array_equal(protocol.parse_csv(protocol.to_csv(many)), many)
    assert protocol.parse_csv(b"\n\n 1,2 \n\n").tolist() == [[1.0, 2.0]]  # surrounding whitespace is stripped


@pytest.mark.parametrize(("body", "message"), [
    (b"length,diameter\n0.4,0.3\n", r"row 1, column 1: 'length' is not a number"),
    (b"1,2,3\n" * 99 + b"1,x1,3\n", r"row 100, column 2: 'x1' is not a number"),
    (b"1,2,3\n4,5\n", r"row 2 has 2 values but row 1 has 3"),
    (b"1,2,3\n\n4,5,6\n", r"row 2 has 1 values but row 1 has 3"),  # a blank line inside is a row
    (b"1,2,3\n4,5,6,\n", r"row 2 has 4 values but row 1 has 3"),
    (b'1,"2",3\n', "column 2: '\"2\"' is not a number"),
    (b"1,2,3#4\n", r"column 3: '3#4' is not a number"),  # no comment syntax in a request
    (b"1,2,3,\r\n4,5,6,7\r\n", r"row 1, column 4: '\\r' is not a number"),  # a cell of only \r is not empty
    (b"1,2\r3,4\n", r"column 2: '2\\r3' is not a number"),  # a lone \r does not end a line
    (b"\xff\xfe1,2", "not UTF-8"),
    (b"\xc3\xa9", "Could not determine delimiter"),  # nothing the sniffer can use
])
def test_unreadable_csv_is_a_415_naming_the_cell(body, message):
    with pytest.raises(RequestError, match=message) as error:
        protocol.parse(body, protocol.CSV)
    assert error.value.status == 415 and "Fix:" in error.value.message


def test_the_delimiter_is_sniffed_from_the_first_line():
    rows = [[1.5, -2.0, 3.25], [4.0, 5.5, 6.0]]
    for delimiter in (",", ";", "\t", " ", ", "):
        body = "\n".join(delimiter.join(repr(v) for v in row) for row in rows).encode()
        assert protocol.parse_csv(body).tolist() == rows, delimiter
    with pytest.raises(RequestError, match="'.'-separated"):
        protocol.parse_csv(b"1.5|-2.0|3.25")  # '|' is not among the sniffer's preferences: '.' wins
    assert protocol.parse_csv(b"0.5").tolist() == [[0.5]]  # one feature: the sniffer says '5', read as ','
    with pytest.raises(RequestError, match="'1e' is not a number"):
        protocol.parse_csv(b"-1e-05")  # one feature: two '-' beat the rest, so it splits at '-' as the container does


def test_the_comma_shortcut_is_what_the_sniffer_says():
    rng = random.Random(11)
    alphabet = "0123456789.,;-+e \tnaif|:x"
    for _ in range(3000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).strip()
        if not line or "," not in line:
            continue
        assert protocol.csv_delimiter(line) == ",", line
        sniffed = csv.Sniffer().sniff(line).delimiter
        assert ("," if sniffed.isalnum() else sniffed) == ",", line


def test_csv_fast_and_careful_paths_agree(monkeypatch):
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(500, 4)) * 10.0 ** rng.integers(-8, 8, size=(500, 4))
    rows[rng.random(rows.shape) < 0.05] = np.nan  # empty cells
    body = protocol.to_csv(rows)
    fast = protocol.parse_csv(body)
    assert np.array_equal(fast, rows, equal_nan=True)
    dense = np.nan_to_num(rows)
    crlf = protocol.to_csv(dense).replace(b"\n", b"\r\n")
    for text in (body, crlf, body.replace(b",", b";"), body.replace(b",", b"\t"),
                 b" 1 , nan,inf\r\n-2e3,+4,.5", b"1_000,2\n3,4"):
        expected = protocol._parse_cells(text.strip().decode(), protocol.csv_delimiter(text.split(b"\n")[0].decode()))
        assert np.array_equal(protocol.parse_csv(text), expected, equal_nan=True), text[:40]


@pytest.mark.parametrize("arrow", [True, False], ids=["pyarrow", "numpy"])
def test_large_csv_bodies_read_alike_by_either_parser(monkeypatch, arrow):
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(3000, 5)) * 10.0 ** rng.integers(-6, 6, size=(3000, 5))
    body = protocol.to_csv(rows)
    assert len(body) > protocol.ARROW_MIN_BYTES
    if arrow:  # a large body never reaches numpy's parser
        monkeypatch.setattr(np, "loadtxt", lambda *a, **k: pytest.fail("np.loadtxt read a large body"))
    else:
        monkeypatch.setattr(protocol, "ARROW_MIN_BYTES", float("inf"))
    assert np.array_equal(protocol.parse_csv(body), rows)
    assert np.array_equal(protocol.parse_csv(body.replace(b",", b";")), rows)
    rows[rng.random(rows.shape) < 0.01] = np.nan  # empty cells
    assert np.array_equal(protocol.parse_csv(protocol.to_csv(rows)), rows, equal_nan=True)
    for bad, message in [(b"1,2,3,4,NULL\n", "row 3001, column 5: 'NULL' is not a number"),
                         (b'1,2,3,4,"5"\n', "row 3001, column 5: '\"5\"' is not a number"),
                         (b"1,2,3,4,nan(1)\n", "row 3001, column 5: 'nan\\(1\\)' is not a number"),
                         (b"1,2,3,4\n", "row 3001 has 4 values"), (b"\n\n1,2,3,4,5\n", "row 3001 has 1 values")]:
        with pytest.raises(RequestError, match=message):
            protocol.parse_csv(protocol.to_csv(rows) + bad)


def test_infinite_values_are_refused_as_xgboost_refuses_them():
    for body in (b"1,inf,3", b"1,-Infinity,3", b"1,1e39,3"):  # 1e39 overflows a float32
        with pytest.raises(RequestError, match="row 1, column 2 is infinite") as error:
            protocol.parse(body, protocol.CSV)
        assert error.value.status == 415
    assert np.isnan(protocol.parse(b"1,nan,3", protocol.CSV)[0, 1])
    edge = float(np.nextafter(protocol.FLOAT32_OVERFLOW, 0))  # the largest float64 that still casts to a finite float32
    with np.errstate(over="ignore"):
        assert np.isfinite(np.float32(edge)) and np.isinf(np.float32(protocol.FLOAT32_OVERFLOW))
    assert protocol.parse(f"{edge!r},-{edge!r}".encode(), protocol.CSV).shape == (1, 2)
    with pytest.raises(RequestError, match="infinite"):
        protocol.parse(b"1:inf", protocol.LIBSVM)
    with pytest.raises(RequestError, match="row 2, column 1 is infinite"):  # beside empty cells (missing values)
        protocol.parse(b"1,,3\n-inf,2,\n", protocol.CSV)
    assert np.isnan(protocol.parse(b",\n,\n", protocol.CSV)).all()  # every cell missing: nothing infinite


# -- widths ------------------------------------------------------------------------------------------------------


def test_short_rows_get_missing_last_features_and_a_warning(caplog):
    protocol._warned.clear()
    before = protocol.WARNINGS["short_rows"]
    with caplog.at_level("WARNING", logger="modelops.serving"):
        fitted = protocol.fit(np.array([[1.0, 2.0]]), 4)
        protocol.fit(np.array([[1.0, 2.0]]), 4)
    assert fitted.shape == (1, 4) and fitted[0, :2].tolist() == [1.0, 2.0] and np.isnan(fitted[0, 2:]).all()
    assert protocol.WARNINGS["short_rows"] == before + 2
    assert len(caplog.records) == 1 and "the last 2 feature(s) missing" in caplog.records[0].message
    with pytest.raises(RequestError, match="the rows have 5 columns but the model has 4 features") as error:
        protocol.fit(np.ones((1, 5)), 4)
    assert error.value.status == 400


def test_libsvm_is_read_as_the_container_reads_it(caplog):
    matrix = protocol.parse_libsvm(b"7 0:1.5 2:3\n1:2\n").toarray()
    assert matrix.tolist() == [[1.5, 0, 3], [0, 2, 0]]
    protocol._warned.clear()
    with caplog.at_level("WARNING", logger="modelops.serving"):
        one_based = protocol.parse_libsvm(b"16 1:0.74 2:1 4:0")
    assert (one_based.shape, one_based.indices.tolist()) == ((1, 4), [0, 1, 3])  # shifted down by one
    assert "read as 1-based" in caplog.text
    assert protocol.parse_libsvm(b"1:1 1:2").toarray().tolist() == [[3.0]]  # duplicates add up (scipy's rule)
    fitted = protocol.fit(protocol.parse_libsvm(b"0:1 2:3"), 4)
    assert fitted.shape == (1, 4) and fitted.nnz == 2  # absent features stay absent (missing)
    for body, message in [(b"0:a", "'a' is not a number"), (b"x:1", "'x:1' is not index:value"),
                          (b"label only", "no index:value pair"), (b"1:0.5\t2:1", "not a number"),
                          (b"-1:1", "negative")]:
        with pytest.raises(RequestError, match=message) as error:
            protocol.parse(body, protocol.LIBSVM)
        assert error.value.status == 415


# -- answers -----------------------------------------------------------------------------------------------------


def test_csv_answers_are_the_containers_whatever_their_size():
    rng = np.random.default_rng(5)
    cases = [np.array([19.63958, 0.5, 2.0, 1 / 3], dtype=np.float32),
             (rng.normal(size=5000) * 10.0 ** rng.integers(-30, 30, size=5000)).astype(np.float32),
             rng.random(3000).astype(np.float32), rng.random((700, 3)).astype(np.float32),
             np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-5, 1e16, 3.0] * 50, dtype=np.float32)]
    assert cases[-1].size >= protocol.ARROW_MIN_PREDICTIONS  # pyarrow writes the odd values too
    for scores in cases:
        assert protocol.render(scores, protocol.CSV) == container_csv(scores)
    assert protocol.render(cases[0], protocol.CSV) == b"19.63957977294922\n0.5\n2.0\n0.3333333432674408\n"
    assert protocol.render(np.array([[0.25, 0.75]], dtype=np.float32), protocol.CSV) == b"0.25,0.75\n"


def test_json_answers_and_the_ones_the_container_cannot_give():
    assert json.loads(protocol.render(np.array([0.5], dtype=np.float32), protocol.JSON)) == {
        "predictions": [{"score": 0.5}]}
    multi = np.array([[0.25, 0.75]], dtype=np.float32)
    assert json.loads(protocol.render(multi, protocol.JSON)) == {"predictions": [{"score": [0.25, 0.75]}]}
    for accept in (protocol.JSONLINES, protocol.RECORDIO):
        with pytest.raises(RequestError, match="cannot answer .* without SAGEMAKER_INFERENCE_OUTPUT") as error:
            protocol.render(multi, accept)
        assert error.value.status == 500


def test_scores_read_back_exactly():
    scores = np.random.default_rng(0).random(1000).astype(np.float32)
    for kind in (protocol.CSV, protocol.JSON):
        assert np.array_equal(protocol.read_predictions(protocol.render(scores, kind), kind), scores), kind
    multi = np.random.default_rng(1).random((300, 3)).astype(np.float32)
    assert np.array_equal(protocol.read_predictions(protocol.render(multi, protocol.CSV)), multi)
    assert np.array_equal(protocol.read_predictions(protocol.render(multi, protocol.JSON), protocol.JSON), multi)


def output(objective, keys, num_class=""):
    return protocol.Output(tuple(keys), protocol.CSV, objective, num_class)


def test_selected_output_per_objective():
    binary = np.array([0.13, 0.9], dtype=np.float32)
    p = float(binary[0])
    rows = protocol.selected_predictions(binary, ("predicted_label", "probability", "probabilities", "labels",
                                                  "raw_score", "raw_scores"), "binary:logistic")
    assert rows[0] == {"predicted_label": 0, "labels": [0, 1], "probability": p, "probabilities": [1.0 - p, p],
                       "raw_score": p, "raw_scores": [1.0 - p, p]}
    assert rows[1]["predicted_label"] == 1
    multi = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    rows = protocol.selected_predictions(multi, ("predicted_label", "probability", "probabilities", "labels"),
                                         "multi:softprob", "3")
    assert rows[0] == {"predicted_label": 1, "labels": [0, 1, 2], "probability": float(multi[0, 1]),
                       "probabilities": multi[0].tolist()}
    regression = protocol.selected_predictions(np.array([2.5], dtype=np.float32),
                                               ("predicted_label", "predicted_score"), "reg:squarederror")
    assert regression[0]["predicted_score"] == 2.5 and np.isnan(regression[0]["predicted_label"])
    with pytest.raises(RequestError, match="unsupported for selectable inference") as error:
        protocol.selected_predictions(binary, ("predicted_label",), "count:poisson")
    assert error.value.status == 500


def test_selected_outputs_are_encoded_in_each_accept_format():
    binary = np.array([0.125, 0.875], dtype=np.float32)
    settings = output("binary:logistic", ["predicted_label", "probability"])
    assert protocol.render(binary, protocol.CSV, settings) == b"0,0.125\n1,0.875"  # no final line break
    assert json.loads(protocol.render(binary, protocol.JSON, settings)) == {
        "predictions": [{"predicted_label": 0, "probability": 0.125}, {"predicted_label": 1, "probability": 0.875}]}
    assert protocol.render(binary, protocol.JSONLINES, settings) == (
        b'{"predicted_label": 0, "probability": 0.125}\n{"predicted_label": 1, "probability": 0.875}\n')
    multi = np.array([[0.25, 0.75]], dtype=np.float32)
    settings = output("multi:softprob", ["predicted_label", "probabilities", "labels"], "2")
    assert protocol.render(multi, protocol.CSV, settings) == b'1,"[0.25, 0.75]","[0, 1]"'
    nan = output("reg:squarederror", ["predicted_score", "probability"])
    assert protocol.render(np.array([2.0], dtype=np.float32), protocol.CSV, nan) == b"2.0,nan"
    assert protocol.render(np.array([2.0], dtype=np.float32), protocol.JSON, nan) == (
        b'{"predictions": [{"predicted_score": 2.0, "probability": NaN}]}')


def test_output_settings_come_from_the_booster_and_the_environment():
    import xgboost

    rng = np.random.default_rng(0)
    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3},
                            xgboost.DMatrix(rng.random((30, 2)), label=rng.integers(0, 3, 30)), 2)
    settings = protocol.Output.of(booster, {"SAGEMAKER_INFERENCE_OUTPUT": "Predicted_Label, probabilities",
                                            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"})
    assert settings == protocol.Output(("predicted_label", "probabilities"), "application/json", "multi:softprob",
                                       "3")
    assert protocol.Output.of(booster, {}).inference_output is None


def test_to_csv_writes_missing_values_as_empty_cells():
    assert protocol.to_csv(np.array([[1.0, np.nan, 0.1]])) == b"1.0,,0.1\n"
