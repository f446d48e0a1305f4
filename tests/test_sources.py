"""Data sources: local paths, the offline data folder, real HTTP on 127.0.0.1, moto S3, cache and checksums."""

from __future__ import annotations

import socket

import boto3
import pytest

from modelops.data.sources import fetch_source, file_name
from modelops.errors import DataSourceError
from tests.support.paths import SHARED_DATA

ABALONE_SHA = "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"
CHURN_SHA = "f2bbe2a120317bc0228beec59da1fcbc31d589280b1b674814eaf5174c2ca6cc"


def test_the_file_name_is_the_last_part_of_a_url_or_a_path():
    assert file_name("https://host/a/b/abalone.data?x=1") == "abalone.data"
    assert file_name("s3://bucket/datasets/tabular/synthetic/churn.txt") == "churn.txt"
    assert file_name("/tmp/x/churn.txt") == "churn.txt"
    with pytest.raises(DataSourceError, match="does not name a file"):
        file_name("https://host/")


def test_local_path_is_verified(offline_home):
    got = fetch_source(str(SHARED_DATA / "abalone" / "abalone.data"), expected_sha256=ABALONE_SHA)
    assert (got.origin, got.sha256, got.size) == ("local", ABALONE_SHA, 191873)


def test_a_missing_local_path_is_refused(offline_home, tmp_path):
    with pytest.raises(DataSourceError, match="no such file"):
        fetch_source(str(tmp_path / "nope.csv"))


def test_local_path_from_another_machine_is_found_in_the_data_folder(home):
    # model.yml written elsewhere (`ci new-model --source /their/path/churn.txt`): the data folder has the file
    got = fetch_source("/somewhere/else/churn.txt", expected_sha256=CHURN_SHA)
    assert (got.origin, got.sha256) == ("data-dir", CHURN_SHA)
    with pytest.raises(DataSourceError, match="checksum mismatch"):
        fetch_source("/somewhere/else/churn.txt", expected_sha256=ABALONE_SHA)


def test_an_unsupported_scheme_is_refused(offline_home):
    with pytest.raises(DataSourceError, match="scheme 'ftp', which is not supported"):
        fetch_source("ftp://example.org/abalone.data")


def test_data_dir_is_searched_before_any_download(home):
    # Port 9 (discard) on 127.0.0.1 is closed: any attempt to download would fail.
    got = fetch_source("http://127.0.0.1:9/datasets/churn.txt", expected_sha256=CHURN_SHA)
    assert got.origin == "data-dir"
    assert got.path == (SHARED_DATA / "churn" / "churn.txt").resolve()


def test_download_over_http_then_served_from_cache(offline_home, file_server):
    url = f"{file_server.url}/abalone.data"
    first = fetch_source(url, expected_sha256=ABALONE_SHA, progress=False)
    assert first.origin == "download" and first.sha256 == ABALONE_SHA
    assert first.path.read_bytes() == (SHARED_DATA / "abalone" / "abalone.data").read_bytes()
    assert str(offline_home) in str(first.path)
    second = fetch_source(url, expected_sha256=ABALONE_SHA, progress=False)
    assert second.origin == "cache" and second.path == first.path
    # Without a known checksum, the cache still answers from the URL index.
    third = fetch_source(url, progress=False)
    assert third.origin == "cache"
    assert file_server.requests == ["/abalone.data"]


def test_checksum_mismatch_on_download_caches_nothing(offline_home, file_server):
    url = f"{file_server.url}/abalone.data"
    expected = r"checksum mismatch.*expected 0{64}.*Nothing was cached.*MODELOPS_DATA_DIR"
    with pytest.raises(DataSourceError, match=expected):
        fetch_source(url, expected_sha256="0" * 64, progress=False)
    # Neither the file, nor a temporary download, nor a URL index entry was left behind.
    assert [p for p in (offline_home / "cache").rglob("*") if p.is_file()] == []


def test_checksum_mismatch_in_data_dir_names_the_file(home):
    with pytest.raises(DataSourceError, match=r"checksum mismatch.*abalone\.data has sha256 de37.*data\.sha256"):
        fetch_source("https://example.org/abalone.data", expected_sha256="1" * 64)


def test_an_http_404_says_where_else_the_data_can_come_from(offline_home, file_server):
    with pytest.raises(DataSourceError, match=r"HTTP 404.*-p source /path/to/missing\.csv.*MODELOPS_DATA_DIR"):
        fetch_source(f"{file_server.url}/missing.csv", progress=False)


def test_an_unreachable_host_suggests_a_local_copy(offline_home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataSourceError, match=r"could not download .*Connection refused.*local copy"):
        fetch_source(f"http://127.0.0.1:{port}/abalone.data", progress=False, timeout=5)


@pytest.mark.slow
def test_an_s3_source_is_downloaded_and_checked(offline_home, aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sample-files")
    s3.upload_file(str(SHARED_DATA / "churn" / "churn.txt"), "sample-files", "datasets/tabular/synthetic/churn.txt")
    got = fetch_source("s3://sample-files/datasets/tabular/synthetic/churn.txt", expected_sha256=CHURN_SHA,
                       progress=False)
    assert got.origin == "download" and got.sha256 == CHURN_SHA and got.path.name == "churn.txt"


@pytest.mark.slow
def test_a_missing_s3_object_suggests_a_local_copy(offline_home, aws):
    boto3.client("s3").create_bucket(Bucket="sample-files")
    with pytest.raises(DataSourceError, match=r"S3 NoSuchKey.*local copy"):
        fetch_source("s3://sample-files/nope/churn.txt", progress=False)


def test_data_dir_that_does_not_exist_falls_back_to_download(offline_home, file_server, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MODELOPS_DATA_DIR", str(tmp_path / "missing"))
    got = fetch_source(f"{file_server.url}/abalone.data", progress=False)
    assert got.origin == "download"
    assert "is not a folder" in caplog.text
