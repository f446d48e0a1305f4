"""The Store contract: every backend's store passes this suite (local: files under tmp_path; SageMaker: S3 on moto).

Every S3 operation the store uses (PutObject, multipart upload, GetObject, HeadObject) is implemented by moto,
so no Stubber is needed here. Where the two stores legitimately differ, ``DIFFERENCES`` says how, and the
tests read it from there: no test skips a backend.
"""

from __future__ import annotations

import hashlib
import threading

import pytest

from modelops.errors import StoreError
from tests.support.contract import BACKENDS, backend_for

#: The only place where the suite asks which store it has.
DIFFERENCES = {
    # How objects are addressed.
    "scheme": {"local": "file", "sagemaker": "s3"},
    # A URI the other backend's store would hold.
    "foreign_uri": {"local": "s3://modelops-test/modelops/x.csv", "sagemaker": "file:///tmp/x.csv"},
    # local_path(): a file on this machine holds the object (local), or there is none (S3: None).
    "local_file": {"local": True, "sagemaker": False},
    # S3 objects carry the sha256 computed before upload in their metadata, and reads refuse an object whose
    # bytes no longer match it. A local file has nowhere to keep it: a file replaced behind the store's back
    # reads as it now is. Artifacts are still safe there: the sha256 the registry recorded is checked before
    # an artifact is served or evaluated (modelops.training.train.load_artifact, the inference server's load).
    "refuses_replaced_objects": {"local": False, "sagemaker": True},
    # A read racing an overwrite sees the old object or the new one: rename(2) locally, and on S3 a GetObject is
    # one object version. moto cannot show the S3 side: its in-process store closes the old object's buffer when
    # the key is overwritten, so a read in flight fails with "I/O operation on closed file" (moto 5.2.5), which
    # AWS never does. So only the local store is raced here; the S3 reads themselves are covered above.
    "overwrite_race_testable": {"local": True, "sagemaker": False},
}


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    return backend_for(request, tmp_path)


@pytest.fixture
def store(backend):
    return backend.store


def differs(store, what: str):
    return DIFFERENCES[what]["local" if store.local_path(store.uri()) is not None else "sagemaker"]


PAYLOAD = bytes(range(256)) * 41 + b"\x00\xff end"  # binary, not a multiple of any block size


def test_uri_names_a_key_under_the_store_root(backend):
    store = backend.store
    root = store.uri()
    uri = store.uri("abalone-model", "datasets", "d1", "train.csv")
    assert uri == f"{root}/abalone-model/datasets/d1/train.csv"
    assert uri.startswith(DIFFERENCES["scheme"][backend.name] + "://")


def test_unsafe_key_parts_are_refused(store):
    for part in ("..", ".", "", "a/b", "../etc", "a\\b", ".hidden", "x y", "~root"):
        with pytest.raises(StoreError, match=r"unsafe store key part .*Fix: use names made of letters, digits"):
            store.uri("abalone-model", part, "x.csv")


def test_put_and_get_round_trip_with_the_sha256_of_the_bytes(store):
    uri = store.uri("m", "blob.bin")
    assert not store.exists(uri)
    stored = store.put_bytes(uri, PAYLOAD, content_type="application/octet-stream")
    assert (stored.uri, stored.sha256, stored.size) == (uri, hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
    assert store.exists(uri)
    assert store.get_bytes(uri) == PAYLOAD


def test_an_empty_object_is_an_object(store):
    uri = store.uri("m", "empty.csv")
    stored = store.put_bytes(uri, b"")
    assert (stored.sha256, stored.size) == (hashlib.sha256(b"").hexdigest(), 0)
    assert store.exists(uri) and store.get_bytes(uri) == b""


def test_a_put_replaces_the_object(store):
    uri = store.uri("m", "model.tar.gz")
    store.put_bytes(uri, b"first")
    second = store.put_bytes(uri, b"second, longer")
    assert second.sha256 == hashlib.sha256(b"second, longer").hexdigest()
    assert store.get_bytes(uri) == b"second, longer"


def test_put_file_and_get_file_round_trip(store, tmp_path):
    source = tmp_path / "train.csv"
    source.write_bytes(PAYLOAD)
    uri = store.uri("m", "datasets", "train.csv")
    stored = store.put_file(uri, source, content_type="text/csv")
    assert (stored.uri, stored.sha256, stored.size) == (uri, hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
    target = tmp_path / "down" / "load" / "train.csv"  # folders created as needed
    assert store.get_file(uri, target) == target
    assert target.read_bytes() == PAYLOAD


def test_get_file_replaces_an_existing_file_whole(store, tmp_path):
    uri = store.uri("m", "x.csv")
    store.put_bytes(uri, PAYLOAD)
    target = tmp_path / "downloads" / "x.csv"
    target.parent.mkdir()
    target.write_bytes(b"an older, different file" * 1000)
    store.get_file(uri, target)
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in target.parent.iterdir()] == ["x.csv"]  # no temporary file left beside it


def test_a_missing_object_is_a_store_error_naming_its_uri(store, tmp_path):
    uri = store.uri("m", "nothing-here.csv")
    with pytest.raises(StoreError, match=rf"no object at {uri}"):
        store.get_bytes(uri)
    target = tmp_path / "downloads" / "kept.csv"
    target.parent.mkdir()
    target.write_bytes(b"what was here before")
    with pytest.raises(StoreError, match=rf"no object at {uri}"):
        store.get_file(uri, target)
    assert target.read_bytes() == b"what was here before"  # a failed download does not touch the target
    assert [p.name for p in target.parent.iterdir()] == ["kept.csv"]


def test_exists_only_for_objects_not_for_prefixes(store):
    store.put_bytes(store.uri("m", "datasets", "d1", "train.csv"), b"1,2\n")
    assert store.exists(store.uri("m", "datasets", "d1", "train.csv"))
    assert not store.exists(store.uri("m", "datasets", "d1"))
    assert not store.exists(store.uri("m", "datasets", "d1", "train.cs"))


def test_listing_finds_every_object_under_a_folder_and_nothing_beside_it(store):
    """What the monitor reads capture files with (``<model>/data-capture/<endpoint>/AllTraffic/yyyy/mm/dd/hh/``)."""
    folder = store.uri("m", "data-capture", "ep", "AllTraffic")
    inside = [store.uri("m", "data-capture", "ep", "AllTraffic", "2026", "01", "02", hour, "00-00-000-x.jsonl")
              for hour in ("03", "04")]
    for uri in inside:
        store.put_bytes(uri, b'{"a": 1}\n')
    store.put_bytes(store.uri("m", "data-capture", "ep", "AllTrafficOld", "x.jsonl"), b"beside")  # a sibling name
    store.put_bytes(store.uri("m", "data-capture", "ep-staging", "AllTraffic", "x.jsonl"), b"another endpoint")
    listed = store.list_objects(folder)
    assert [o.uri for o in listed] == inside
    assert [o.size for o in listed] == [9, 9] and all(o.modified[:4].isdigit() for o in listed)
    assert store.list_objects(folder + "/") == listed
    assert store.list_objects(store.uri("m", "nothing-here")) == []


def test_a_failed_upload_is_a_store_error_and_keeps_the_old_object(store, tmp_path):
    uri = store.uri("m", "model.tar.gz")
    store.put_bytes(uri, b"the reviewed model")
    with pytest.raises(StoreError, match=r"cannot read .*no-such-file\.tar\.gz.*Fix: check that the file exists"):
        store.put_file(uri, tmp_path / "no-such-file.tar.gz")
    assert store.get_bytes(uri) == b"the reviewed model"


def test_the_other_backends_uris_are_refused_with_the_fix(store):
    foreign = differs(store, "foreign_uri")
    for operation in (lambda: store.get_bytes(foreign), lambda: store.put_bytes(foreign, b"x"),
                      lambda: store.exists(foreign)):
        with pytest.raises(StoreError, match=r"cannot hold .*Fix: .*backend="):
            operation()


def test_readers_see_the_old_object_or_the_new_one_never_a_mix(store):
    if not differs(store, "overwrite_race_testable"):
        pytest.skip("moto's in-process S3 fails reads racing an overwrite, which AWS does not: see DIFFERENCES")
    uri = store.uri("m", "swapped.bin")
    old, new = b"o" * 300_000, b"n" * 200_000
    store.put_bytes(uri, old)
    seen: set[bytes] = set()
    done = threading.Event()

    def writer():
        try:
            for i in range(15):
                store.put_bytes(uri, new if i % 2 == 0 else old)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads < 5:
        seen.add(store.get_bytes(uri))
        reads += 1
    thread.join()
    assert seen <= {old, new} and reads >= 5


def test_local_path_is_a_file_with_the_bytes_only_on_this_machine(store):
    uri = store.uri("m", "x.bin")
    store.put_bytes(uri, PAYLOAD)
    path = store.local_path(uri)
    if differs(store, "local_file"):
        assert path.read_bytes() == PAYLOAD
    else:
        assert path is None


def test_an_object_replaced_behind_the_stores_back(backend):
    store = backend.store
    uri = store.uri("m", "model.tar.gz")
    store.put_bytes(uri, b"the reviewed model")
    if backend.name == "local":
        store.local_path(uri).write_bytes(b"other bytes")
    else:  # a copy or a careless script keeps the old metadata
        import boto3

        from tests.support.aws import MOTO_BUCKET

        boto3.client("s3").put_object(Bucket=MOTO_BUCKET, Key="modelops/m/model.tar.gz", Body=b"other bytes",
                                      Metadata={"sha256": hashlib.sha256(b"the reviewed model").hexdigest()})
    if differs(store, "refuses_replaced_objects"):
        with pytest.raises(StoreError, match="replaced or damaged"):
            store.get_bytes(uri)
    else:
        assert store.get_bytes(uri) == b"other bytes"
