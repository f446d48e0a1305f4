"""Datasets: the prepared splits written to a store as the SageMaker XGBoost container reads them.

Each split is ``<root>/<split>/<split>.csv`` (target first, no header). The dataset's manifest
(``manifest.json``: feature names and their encoding, rows, sha256 of every file) is written last, so a
manifest that exists means the whole dataset does. A dataset's id is derived from the raw data's sha256, the
preparation and split settings and the model folder's features.py: the same inputs always give the same id,
so gathering twice is a no-op, and a change to features.py gathers again.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from modelops.backends.base import Store
from modelops.config import ModelConfig
from modelops.data.prepare import SPLITS
from modelops.data.sources import FetchedSource
from modelops.errors import DataError, StoreError
from modelops.records import GatherRecord

#: Bump when preparation changes in a way that changes the written files for the same inputs.
#: 2: features.py, the feature encoding in the manifest, empty categories and targets, cleaned header names.
#: 3: each split in table order (written as the table streams by) and written by pyarrow (``1`` not ``1.0``).
PREPARATION_VERSION = 3


@dataclass(frozen=True)
class DatasetFile:
    uri: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Dataset:
    """A gathered dataset: where its splits are, what they hold, and where they came from."""

    model: str
    dataset_id: str
    problem_type: str
    target: str
    feature_names: tuple[str, ...]
    source: str
    raw_sha256: str
    seed: int
    files: dict[str, DatasetFile]
    manifest_uri: str
    created_at: str
    target_summary: dict[str, dict[str, float]] = field(default_factory=dict)
    encoding: dict | None = None  # FeatureEncoding.to_json(): what encode_rows needs to build feature rows
    rows_without_target: int = 0  # raw rows left out because their target was empty

    @property
    def feature_encoding(self):
        """The FeatureEncoding the splits were prepared with.

        Raises:
            StoreError: the dataset was gathered before encodings were recorded.
        """
        from modelops.data.encoding import FeatureEncoding

        if self.encoding is None:
            raise StoreError(f"dataset {self.dataset_id} of {self.model} does not record its feature encoding (it "
                             f"was gathered by an older version). Fix: gather and train again (`python -m ci run "
                             f"<model folder> --stage train`).")
        return FeatureEncoding.from_json(self.encoding)

    @property
    def rows(self) -> dict[str, int]:
        return {name: f.rows for name, f in self.files.items()}

    @property
    def channel_uris(self) -> dict[str, str]:
        """The train/validation channel prefixes a SageMaker training job reads."""
        return {name: f.uri.rsplit("/", 1)[0] + "/" for name, f in self.files.items()}

    def summary(self) -> pd.DataFrame:
        """One row per split: rows, share of all rows, target summary and sha256."""
        total = sum(self.rows.values())
        table = pd.DataFrame(
            [{"split": name, "rows": f.rows, "share": round(f.rows / total, 3), **self.target_summary.get(name, {}),
              "sha256": f.sha256[:12]} for name, f in self.files.items()]
        )
        return table.set_index("split")

    @property
    def record(self) -> GatherRecord:
        """What the gather notebook hands on: where the dataset is, its rows, hashes and target balance."""
        return GatherRecord(dataset_id=self.dataset_id, data_sha256=self.raw_sha256, manifest_uri=self.manifest_uri,
                            data_source=self.source, n_features=len(self.feature_names), rows=self.rows,
                            target_summary=self.target_summary, rows_without_target=self.rows_without_target)

    def to_json(self) -> dict:
        record = asdict(self)
        record["feature_names"] = list(self.feature_names)
        return record

    @classmethod
    def from_json(cls, record: dict) -> Dataset:
        record = dict(record)
        record["feature_names"] = tuple(record["feature_names"])
        record["files"] = {k: DatasetFile(**v) for k, v in record["files"].items()}
        return cls(**record)

    def _repr_markdown_(self) -> str:
        return (f"Dataset `{self.dataset_id}` of **{self.model}**: {len(self.feature_names)} features, "
                f"rows {self.rows}, manifest `{self.manifest_uri}`")


def dataset_id(config: ModelConfig, raw_sha256: str, seed: int | None = None) -> str:
    """The id of the dataset these inputs produce (same inputs, same id)."""
    from modelops.data.features import features_sha256

    data = asdict(config.data)
    data.pop("source")
    data.pop("sha256")
    data.pop("processing", None)  # where the gather ran, not what it gathered
    split = asdict(config.split)
    if seed is not None:
        split["seed"] = int(seed)
    key = json.dumps({"raw": raw_sha256, "data": data, "split": split, "version": PREPARATION_VERSION,
                      "problem_type": config.problem_type, "features.py": features_sha256(config)},
                     sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def dataset_root(store: Store, config: ModelConfig, dataset: str, output: str | None = None) -> str:
    """Where a dataset's files go: ``output/<id>`` if given, else ``<store>/<model>/datasets/<id>``."""
    if output:
        return f"{output.rstrip('/')}/{dataset}"
    return store.uri(config.name, "datasets", dataset)


def dataset_manifest(store: Store, config: ModelConfig, dataset: str) -> str:
    """The manifest URI of a dataset gathered to its default place (by id)."""
    return f"{dataset_root(store, config, dataset)}/manifest.json"


def write_dataset(
    store: Store,
    config: ModelConfig,
    raw: FetchedSource,
    splits: dict[str, pd.DataFrame],
    *,
    seed: int | None = None,
    output: str | None = None,
    prepared=None,
) -> Dataset:
    """Write the splits and their manifest, then point the model's ``latest`` dataset at it.

    Writing the same dataset again (same id, manifest present) rewrites nothing.

    Args:
        prepared: the PreparedData the splits were cut from: its feature encoding is recorded (encode_rows
            and ``ci invoke --raw`` need it) with the rows left out for an empty target.

    Raises:
        DataError: the splits do not have the same columns, or not the prepared data's.
        StoreError: a write failed (the manifest is not written, so the dataset does not count).
    """
    columns = [tuple(frame.columns) for frame in splits.values()]
    if len(set(columns)) != 1:
        raise DataError("the splits do not share the same columns. Fix: split one prepared frame.")
    if prepared is not None and tuple(columns[0][1:]) != prepared.encoding.feature_names:
        raise DataError("the splits' columns are not the prepared data's features. Fix: split prepared.frame.")

    def write(name: str) -> DatasetFile:
        stored = store.put_bytes(f"{root}/{name}/{name}.csv", split_csv(splits[name]), content_type="text/csv")
        return DatasetFile(stored.uri, stored.sha256, len(splits[name]))

    seed = config.split.seed if seed is None else int(seed)
    root = dataset_root(store, config, dataset_id(config, raw.sha256, seed), output)
    return finish_dataset(store, config, raw, seed=seed, root=root, write=write, feature_names=tuple(columns[0][1:]),
                          target_summary={name: target_summary(frame, config.problem_type)
                                          for name, frame in splits.items()},
                          encoding=prepared.encoding if prepared is not None else None,
                          rows_without_target=prepared.rows_without_target if prepared is not None else 0)


def finish_dataset(store: Store, config: ModelConfig, raw: FetchedSource, *, seed: int, root: str, write,
                   feature_names: tuple[str, ...], target_summary: dict, encoding, rows_without_target: int) -> Dataset:
    """Write each split (``write(name) -> DatasetFile``), then the manifest, then point ``latest`` at it.

    Nothing is written when the manifest is there already (the same inputs made the same dataset).
    """
    manifest_uri = f"{root}/manifest.json"
    existing = _read_manifest(store, manifest_uri)
    if existing is None:
        existing = Dataset(
            model=config.name,
            dataset_id=root.rsplit("/", 1)[-1],
            problem_type=config.problem_type,
            target=config.data.target,
            feature_names=feature_names,
            source=raw.source,
            raw_sha256=raw.sha256,
            seed=seed,
            files={name: write(name) for name in SPLITS},
            manifest_uri=manifest_uri,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            target_summary=target_summary,
            encoding=encoding.to_json() if encoding is not None else None,
            rows_without_target=rows_without_target,
        )
        store.put_bytes(manifest_uri, _dumps(existing.to_json()), content_type="application/json")
    store.put_bytes(_latest_uri(store, config), _dumps({"manifest_uri": manifest_uri,
                                                        "dataset_id": existing.dataset_id}),
                    content_type="application/json")
    return existing


def split_csv(frame: pd.DataFrame, rows: int = 100_000) -> bytes:
    """A prepared frame as a split file holds it: no header, a missing value as an empty cell, ``1`` for 1.0.

    pyarrow formats the numbers (the shortest text that reads back as the same float64); a run of one-hot
    columns (uint8 digits) is laid out as text by numpy, ``0,1,0``, which is what pyarrow's CSV writer gives for
    them too, several times faster. Built ``rows`` rows at a time.
    """
    return b"".join(_csv_rows(frame.iloc[start:start + rows]) for start in range(0, len(frame), rows))


def _csv_rows(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces, position, kinds = [], 0, frame.dtypes.to_numpy()
    while position < frame.shape[1]:
        end = position
        while end < frame.shape[1] and kinds[end] == np.uint8:
            end += 1
        block = frame.iloc[:, position:end].to_numpy() if end > position else None
        if block is not None and block.max(initial=0) <= 9:
            pieces.append(_digit_text(block))
            position = end
            continue
        column = frame.iloc[:, position].to_numpy()
        pieces.append(pc.cast(pa.array(column, from_pandas=True), pa.string()))
        position += 1
    joined = pc.binary_join_element_wise(*pieces, ",", null_handling="replace", null_replacement="")
    lines = pc.binary_join_element_wise(joined, pa.scalar("\n"), "")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]] if len(lines) else b""


def _digit_text(block: np.ndarray):
    """Rows of single digits (n x k) as a pyarrow string array of ``d,d,...,d``, built without a cell in Python."""
    import pyarrow as pa

    rows, width = block.shape[0], 2 * block.shape[1] - 1
    text = np.full((rows, width), ord(","), dtype=np.uint8)
    text[:, 0::2] = block + ord("0")
    offsets = np.arange(rows + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def load_dataset(store: Store, config: ModelConfig, manifest_uri: str | None = None) -> Dataset:
    """The dataset at ``manifest_uri``, or the model's latest gathered dataset.

    Raises:
        StoreError: nothing has been gathered yet (the message says how to gather), or the manifest is missing.
    """
    if not manifest_uri:
        latest_uri = _latest_uri(store, config)
        if not store.exists(latest_uri):
            raise StoreError(
                f"no dataset has been gathered for {config.name!r} in {store.uri()}. Fix: run the gather_data "
                f"notebook first (`python -m ci run {config.folder.name if config.folder else 'MODEL_DIR'} "
                f"--stage gather`)."
            )
        manifest_uri = json.loads(store.get_bytes(latest_uri))["manifest_uri"]
    dataset = _read_manifest(store, manifest_uri)
    if dataset is None:
        raise StoreError(f"no dataset manifest at {manifest_uri}. Fix: gather the data again.")
    return dataset


def find_dataset(store: Store, config: ModelConfig, raw_sha256: str, seed: int | None = None,
                 output: str | None = None) -> Dataset | None:
    """The complete dataset these inputs would produce, if it was already written (else None)."""
    seed = config.split.seed if seed is None else seed
    root = dataset_root(store, config, dataset_id(config, raw_sha256, seed), output)
    return _read_manifest(store, f"{root}/manifest.json")


def read_matrix(body: bytes, dtype=np.float64) -> np.ndarray:
    """A CSV body of numbers (no header; an empty cell is missing) as a matrix of ``dtype``, read by pyarrow's
    threads, one column at a time into the matrix (no second copy of the whole table)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if not body.strip():
        return np.empty((0, 0), dtype=dtype)
    end = body.find(b"\n")
    width = body[:end if end >= 0 else len(body)].count(b",") + 1
    names = [str(i) for i in range(width)]
    table = pa_csv.read_csv(io.BytesIO(body), read_options=pa_csv.ReadOptions(column_names=names),
                            convert_options=pa_csv.ConvertOptions(
                                column_types=dict.fromkeys(names, pa.from_numpy_dtype(np.dtype(dtype))),
                                null_values=[""]))
    matrix = np.empty((table.num_rows, width), dtype=dtype)
    for j, column in enumerate(table.columns):
        matrix[:, j] = column.to_numpy(zero_copy_only=False)
    return matrix


def read_split(store: Store, dataset: Dataset, name: str) -> pd.DataFrame:
    """Read one split back as a frame whose first column is the target and whose columns are named."""
    body = store.get_bytes(dataset.files[name].uri)
    frame = pd.read_csv(io.BytesIO(body), header=None, dtype="float64")
    frame.columns = [dataset.target, *dataset.feature_names]
    return frame


def target_summary(frame: pd.DataFrame | pd.Series, problem_type: str) -> dict[str, float]:
    """A split's target balance; ``frame`` is the prepared split (target first) or its target alone."""
    target = frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else frame
    if problem_type == "binary":
        return {"positive": int(target.sum()), "positive_rate": round(float(target.mean()), 4)}
    if problem_type == "multiclass":
        shares = target.value_counts(normalize=True)
        return {"classes_seen": int(target.nunique()), "majority_share": round(float(shares.max()), 4)}
    return {"target_mean": round(float(target.mean()), 4), "target_std": round(float(target.std()), 4)}


def package_dataset(store: Store, config: ModelConfig, package) -> Dataset:
    """The dataset a registered package was trained on (its manifest, by the package's dataset id).

    Falls back to the model's latest dataset when that manifest is not in the store (a dataset written under
    a custom ``output`` prefix).
    """
    manifest = f"{dataset_root(store, config, package.dataset_id)}/manifest.json"
    return load_dataset(store, config, manifest if store.exists(manifest) else None)


def _latest_uri(store: Store, config: ModelConfig) -> str:
    return store.uri(config.name, "datasets", "latest.json")


def _read_manifest(store: Store, uri: str) -> Dataset | None:
    try:
        if not store.exists(uri):
            return None
        return Dataset.from_json(json.loads(store.get_bytes(uri)))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"the dataset manifest {uri} is unreadable ({exc}). Fix: delete it and gather again.") from exc


def _dumps(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def fetch_data(config: ModelConfig, source: str | None = None, **options) -> FetchedSource:
    """Fetch the model's raw data: the configured source (checked against data.sha256), or ``source``.

    An explicit ``source`` other than the configured one is not checked against data.sha256 (it is meant to
    be different data); its sha256 is reported and recorded with the dataset instead.
    """
    from modelops.data.sources import fetch_source

    configured = source is None or source == config.data.source
    target = config.data.source if configured else source
    if config.folder is not None and "://" not in target and not target.startswith("/"):
        # A relative local path means relative to the model folder, wherever the notebook runs from.
        candidate = config.folder / target
        target = str(candidate) if candidate.exists() else target
    return fetch_source(target, expected_sha256=config.data.sha256 if configured else None, **options)


def gathered_dataset(store: Store, config: ModelConfig, *, source: str | None = None, seed: int | None = None,
                     output: str | None = None) -> Dataset | None:
    """The dataset gathering would produce from the current data, if it is already complete (else None).

    Resolves the source (offline folder or cache first, so usually without a download) to learn its sha256.
    """
    raw = fetch_data(config, source, progress=False)
    return find_dataset(store, config, raw.sha256, seed, output)


def encode_rows(config: ModelConfig, raw_frame: pd.DataFrame, dataset: Dataset | None = None, *,
                unseen: str = "error") -> pd.DataFrame:
    """Raw records as the feature rows the model was trained on (``modelops.data.prepare.encode_rows``), with the
    encoding recorded by ``dataset``, by default the model's latest gathered dataset in the default backend.

    Raises:
        StoreError: nothing gathered yet. DataError, FeaturesError: as prepare.encode_rows.
    """
    from modelops.backends import get_backend
    from modelops.data.prepare import encode_rows as encode

    return encode(config, raw_frame, dataset or load_dataset(get_backend().store, config), unseen=unseen)
