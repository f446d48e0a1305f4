"""S3 store: objects under ``s3://BUCKET/PREFIX/``, uploaded multipart when large, with their sha256 as metadata."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from boto3.s3.transfer import TransferConfig

from modelops.backends.base import Store, safe_key
from modelops.backends.sagemaker.aws import describe_error, is_not_found, translated
from modelops.entities import ListedObject, StoredObject
from modelops.errors import StoreError

#: The object metadata key holding the sha256 we computed before upload (``x-amz-meta-sha256``).
SHA256_KEY = "sha256"

#: Multipart above 64 MB in 16 MB parts, 4 in parallel (S3 allows 5 MB-5 GB parts, 10,000 of them).
DEFAULT_TRANSFER = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=4)


class S3Store(Store):
    """Objects in one bucket under one prefix; any other ``s3://`` URI the credentials can read is readable too.

    S3 replaces an object in one step (a reader sees the old object or the new one), so writes are atomic.
    Every object written here carries its sha256 in metadata; reads check it, so a replaced or damaged
    object is refused instead of trained on or served.
    """

    def __init__(self, s3_client, bucket: str, prefix: str = "", transfer: TransferConfig | None = None):
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.transfer = transfer or DEFAULT_TRANSFER

    def uri(self, *parts: str) -> str:
        root = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        return f"{root}/{safe_key(*parts)}" if parts else root

    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        self._upload(uri, lambda bucket, key, extra: self.s3.upload_fileobj(
            io.BytesIO(data), bucket, key, ExtraArgs=extra, Config=self.transfer), digest, content_type)
        return StoredObject(uri, digest, len(data))

    def put_file(self, uri: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        from modelops.data.sources import sha256_file

        path = Path(path)
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise StoreError(f"cannot read {path} to upload it to {uri}: {exc.strerror or exc}. Fix: check that the "
                             f"file exists and is readable.") from exc
        self._upload(uri, lambda bucket, key, extra: self.s3.upload_file(
            str(path), bucket, key, ExtraArgs=extra, Config=self.transfer), digest, content_type)
        return StoredObject(uri, digest, path.stat().st_size)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
            data = response["Body"].read()
        except Exception as exc:
            raise self._read_error(uri, exc) from exc
        _check(uri, hashlib.sha256(data).hexdigest(), response.get("Metadata", {}))
        return data

    def get_file(self, uri: str, path: Path) -> Path:
        from modelops.data.sources import sha256_file

        bucket, key = split_uri(uri)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(handle)
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
            metadata = head.get("Metadata", {})
            self.s3.download_file(bucket, key, temporary, Config=self.transfer)
            # The bytes must be those of the object whose metadata was read: an overwrite between the two calls
            # would check new bytes against the old sha256 (s3transfer takes no IfMatch for downloads).
            if self.s3.head_object(Bucket=bucket, Key=key)["ETag"] != head["ETag"]:
                raise StoreError(f"{uri} was replaced while it was being downloaded. Fix: retry once the writer "
                                 f"is done.")
            _check(uri, sha256_file(Path(temporary)), metadata)
            os.replace(temporary, path)
        except StoreError:
            raise
        except Exception as exc:
            raise self._read_error(uri, exc) from exc
        finally:
            Path(temporary).unlink(missing_ok=True)
        return path

    def exists(self, uri: str) -> bool:
        bucket, key = split_uri(uri)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise self._read_error(uri, exc) from exc
        return True

    def list_objects(self, prefix: str) -> list[ListedObject]:
        bucket, key = split_uri(prefix)
        found = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
                found += [ListedObject(f"s3://{bucket}/{o['Key']}", int(o["Size"]),
                                       o["LastModified"].isoformat(timespec="milliseconds"))
                          for o in page.get("Contents", ())]
        except Exception as exc:
            raise StoreError(f"could not list {prefix}: {_reason(exc)}. Fix: check the credentials may list the "
                             f"bucket (s3:ListBucket).") from exc
        return sorted(found, key=lambda o: o.uri)

    def sha256_metadata(self, uri: str) -> str | None:
        """The sha256 recorded with the object when this store wrote it (None for objects written elsewhere)."""
        bucket, key = split_uri(uri)
        with translated(StoreError, f"reading the metadata of {uri}"):
            return self.s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(SHA256_KEY)

    def _upload(self, uri: str, upload, digest: str, content_type: str | None) -> None:
        bucket, key = split_uri(uri)
        extra = {"Metadata": {SHA256_KEY: digest}}
        if content_type:
            extra["ContentType"] = content_type
        try:
            upload(bucket, key, extra)
        except Exception as exc:  # boto3's transfer manager wraps botocore errors in S3UploadFailedError
            raise StoreError(f"could not upload to {uri}: {_reason(exc)}. Fix: check that the bucket exists and the "
                             f"credentials may write to it (s3:PutObject).") from exc

    @staticmethod
    def _read_error(uri: str, exc: BaseException) -> StoreError:
        if is_not_found(exc):
            return StoreError(f"no object at {uri}.")
        return StoreError(f"could not read {uri}: {_reason(exc)}. Fix: check the credentials may read it "
                          f"(s3:GetObject).")


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key).

    Raises:
        StoreError: not an s3:// URI with a bucket and a key.
    """
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise StoreError(f"the S3 store cannot hold {uri!r}. Fix: use an s3://BUCKET/KEY URI (file:// paths need "
                         f"backend='local').")
    return parsed.netloc, key


def _check(uri: str, actual: str, metadata: dict) -> None:
    recorded = metadata.get(SHA256_KEY)
    if recorded and recorded != actual:
        raise StoreError(f"{uri} has sha256 {actual}, but {recorded} was recorded when it was written: the object was "
                         f"replaced or damaged. Fix: do not use it; write it again from its source.")


def _reason(exc: BaseException) -> str:
    return describe_error(exc) or type(exc).__name__
