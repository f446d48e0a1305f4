"""A table scored chunk by chunk as the endpoint scores CSV bodies: bounded memory, rows in order, written as read.

Feature rows (no header) are cut at line ends into chunks of about ``chunk_bytes`` and each chunk is read by the
endpoint's own body reader (``protocol.parse``: the container's CSV rules, its fast readers where they agree);
raw records (a header row, the data's own columns) are streamed by pyarrow's CSV reader as text and turned into
feature rows by an ``encode`` function (``modelops.data.prepare.encode_rows`` with the recorded encoding). Either
way a chunk is then predicted and answered as the container answers text/csv (``protocol.render``), one line per
row. A chunk that cannot be scored raises DataError naming the file's line, so nothing after it is written.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from modelops.errors import ConfigError, DataError
from modelops.serving import protocol
from modelops.serving.protocol import CSV, RequestError

#: What one chunk reads: large enough for pyarrow's threads and few Python calls, small beside any machine's memory.
CHUNK_BYTES = 8 * 2**20

#: How often a long run says how far it has got.
PROGRESS_SECONDS = 10

_ROW = re.compile(r"\b(?:data )?row (\d+)")


@dataclass(frozen=True)
class Chunk:
    """Feature rows read from one piece of the input, and the file line its first row is on."""

    first_line: int
    rows: np.ndarray


def line_blocks(source: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """The input in blocks of whole lines of about ``chunk_bytes``: (the line the block starts on, its bytes).

    Blank lines at the end of the input are dropped; a longer line than ``chunk_bytes`` makes a longer block.
    """
    line, carry, pending = 1, b"", b""
    while True:
        data = source.read(chunk_bytes)
        if not data:
            tail = (pending + carry).rstrip(b"\r\n")
            if tail and not tail.isspace():
                yield line, tail + b"\n"
            return
        data = carry + data
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if not cut:
            continue
        block = data[:cut]
        if pending and not block.isspace():  # more rows: the lines held back are not the input's blank tail
            yield line, pending
            line += pending.count(b"\n")
            pending = block
        else:
            pending += block


def feature_chunks(source: BinaryIO, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Feature rows as the endpoint reads a text/csv body, chunk by chunk.

    Raises:
        DataError: a chunk the endpoint would refuse (its 415, with the file's line), or a blank line inside.
    """
    for first, block in line_blocks(source, chunk_bytes):
        if block.isspace():
            raise _blank(name, first)
        try:
            rows = protocol.parse(block, CSV)
        except RequestError as exc:
            raise DataError(f"{name}: {_lines(exc.message, first)}") from None
        lines = block.count(b"\n")
        if rows.shape[0] != lines:
            raise _blank(name, first + next(i for i, text in enumerate(block.split(b"\n")) if not text.strip()))
        yield Chunk(first, rows)


def record_chunks(path: Path, encode: Callable, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Raw records (a header row, then one record per line) as feature rows, chunk by chunk.

    Every cell is read as text, as ``modelops.data.prepare.read_records`` reads a file, and ``encode`` (raw frame
    -> feature rows) does what training did to it.

    Raises:
        DataError: a row pyarrow cannot split, or a record ``encode`` refuses, with its line and the fix.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from modelops.data.prepare import clean_names

    with open(path, "rb") as handle:
        header = handle.readline().decode("utf-8-sig", errors="replace")
    names = clean_names(next(csv.reader([header]), []))
    if not header.strip():
        raise DataError(f"{path} is empty. Fix: write the records with a header row of the data's own columns.")
    options = {"read_options": pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=chunk_bytes),
               # a blank line is read (as empty cells) and refused, not skipped: errors name the file's lines
               "parse_options": pa_csv.ParseOptions(ignore_empty_lines=False),
               "convert_options": pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                        null_values=[], strings_can_be_null=False,
                                                        quoted_strings_can_be_null=False)}
    first, reader, blank_tail = 2, None, None
    while True:
        try:  # opening reads the first block: its errors are those of any block
            reader = reader or pa_csv.open_csv(path, **options)
            batch = reader.read_next_batch()
        except StopIteration:
            return  # blank lines at the end of the file are no records
        except pa.ArrowInvalid as exc:
            raise DataError(f"{path}: after line {first - 1}: {exc}. Fix: every record needs the header's "
                            f"{len(names)} cells ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}), an "
                            f"empty cell for a missing value.") from None
        if not batch.num_rows:
            continue
        frame = batch.to_pandas()
        empty = np.flatnonzero(frame.eq("").all(axis=1).to_numpy())
        if blank_tail is not None or (len(empty) and empty[0] + len(empty) != len(frame)):
            line = blank_tail if blank_tail is not None else first + int(empty[0])
            raise DataError(f"{path}: line {line} is blank (or every cell of it is empty), but each line must be a "
                            f"record: the answers have one line per record. Fix: remove it.")
        if len(empty):  # blank to the end of this block: the file's end, unless more records follow
            blank_tail, frame = first + int(empty[0]), frame.iloc[:int(empty[0])]
            if frame.empty:
                continue
        try:
            rows = np.asarray(encode(frame), dtype=np.float64)
            protocol.refuse_infinities(rows)
        except RequestError as exc:
            raise DataError(f"{path}: {_lines(exc.message, first)}") from None
        except DataError as exc:  # FeaturesError stays one
            raise type(exc)(f"{path}: {_lines(str(exc), first)}") from None
        yield Chunk(first, rows)
        first += batch.num_rows


def score_chunks(booster, output: protocol.Output, chunks: Iterator[Chunk], sink: BinaryIO, *,
                 log=None) -> int:
    """Predict each chunk and write the container's text/csv answer for it, one line per row; the rows written.

    ``log`` (if given) hears how many rows are done, every ``PROGRESS_SECONDS``.

    Raises:
        DataError: a chunk's rows are wider than the model (the endpoint's 400, with the line).
        ConfigError: the container cannot answer text/csv under these settings (its 500).
    """
    n_features = booster.num_features()
    written, reported = 0, time.monotonic()
    for chunk in chunks:
        try:
            rows = protocol.fit(chunk.rows, n_features)
            answer = protocol.render(booster.inplace_predict(rows), CSV, output)
        except RequestError as exc:
            error = ConfigError if exc.status >= 500 else DataError
            raise error(f"lines {chunk.first_line}-{chunk.first_line + len(chunk.rows) - 1}: "
                        f"{_lines(exc.message, chunk.first_line)}") from None
        # The container ends a batch transform's selectable CSV answer with a line break (SAGEMAKER_BATCH), where
        # its real-time answer has none: answers of consecutive chunks must not run into each other.
        sink.write(answer if answer.endswith(b"\n") else answer + b"\n")
        written += len(rows)
        if log is not None and time.monotonic() - reported >= PROGRESS_SECONDS:
            reported = time.monotonic()
            log(f"{written:,} rows scored")
    return written


def write_features(chunks: Iterator[Chunk], sink: BinaryIO) -> int:
    """Feature rows as a text/csv body (``protocol.to_csv``: exact float round trip, NaN as an empty cell); the rows."""
    written = 0
    for chunk in chunks:
        sink.write(protocol.to_csv(chunk.rows))
        written += len(chunk.rows)
    return written


def _blank(name: str, line: int) -> DataError:
    return DataError(f"{name}: line {line} is blank, but each line must be a row: the answers have one line per "
                     f"row. Fix: remove blank lines (an empty cell is a missing value).")


def _lines(message: str, first_line: int) -> str:
    """A message about a chunk's rows (1-based) as one about the file's lines."""
    return _ROW.sub(lambda found: f"line {first_line + int(found.group(1)) - 1}", message)
