"""Local batch scoring: the package's artifact in this process, the table streamed through the container's protocol."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelops import atomic
from modelops.backends.base import Store, Transformer
from modelops.entities import TransformResult, TransformSpec
from modelops.errors import ConfigError, StoreError


class LocalTransformer(Transformer):
    """Scores a local CSV file in chunks with the package's booster and writes the answers atomically; no endpoint."""

    def __init__(self, store: Store):
        self.store = store

    def transform(self, spec: TransformSpec, *, log=print) -> TransformResult:
        from modelops.serving import batch, protocol
        from modelops.training.threads import process_budget
        from modelops.training.train import load_artifact

        source, target = local_file(spec.input_uri, "--input"), local_file(spec.output_uri, "--output")
        if not source.is_file():
            raise StoreError(f"no input file {source}. Fix: name a CSV file of rows to score.")
        started = time.monotonic()
        booster = load_artifact(self.store, spec.package.artifact_uri, spec.package.artifact_sha256)
        booster.set_param({"nthread": process_budget()})  # one caller, whole chunks: every CPU this process has
        output = protocol.Output.of(booster, spec.environment)
        with open(source, "rb") as handle, atomic.atomic_open(target) as sink:
            size = spec.chunk_bytes or batch.CHUNK_BYTES
            chunks = (batch.record_chunks(source, spec.encode, size) if spec.encode is not None
                      else batch.feature_chunks(handle, str(source), size))
            rows = batch.score_chunks(booster, output, chunks, sink, log=log)
        return TransformResult(spec.job_name, spec.package.version, str(target), rows, time.monotonic() - started)


def local_file(uri: str, option: str) -> Path:
    """A local path from a path or file:// URI.

    Raises:
        ConfigError: an s3:// (or other remote) URI, which the local backend does not read or write.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    raise ConfigError(f"{option} {uri} is not a local file, and the local backend scores local files. Fix: copy it "
                      f"here first, or run the transform on SageMaker (--backend sagemaker).")
