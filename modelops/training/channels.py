"""Reading a training channel (headerless CSV, label first) as the container does, in bounded memory.

A channel is a folder of CSV files read in name order. They are streamed with pyarrow in blocks of rows as
float32 (what XGBoost stores anyway; an empty cell is NaN, i.e. missing), so no float64 copy of the table ever
exists. For the ``hist`` tree method, XGBoost's default, the blocks feed a ``QuantileDMatrix`` through a
``DataIter``: only the quantised matrix (one byte per cell or less) is held, not the rows themselves, so a
channel several times the machine's memory as float64 still trains. The model is the same as from one
``DMatrix`` of every row (tests/test_training.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: Bytes of CSV text per block handed to XGBoost (pyarrow's read block size).
BLOCK_BYTES = 64 << 20
#: Tree methods that train on the quantised matrix (``auto`` is ``hist`` since XGBoost 2.0).
QUANTISED_METHODS = {None, "auto", "hist"}


def channel_files(folder: Path, uri: str, name: str) -> list[Path]:
    """The channel's CSV files in the order the container reads them.

    Raises:
        TrainingFailed: the channel holds no CSV file.
    """
    from modelops.errors import TrainingFailed

    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise TrainingFailed(f"the {name} channel {uri} holds no CSV file. Fix: run the gather_data notebook.")
    return files


def blocks(files: list, dtype=np.float32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) blocks of the files' rows (paths, or binary files open for reading), in order.

    Each file is cut at line ends into pieces of about ``BLOCK_BYTES`` and each piece parsed by pyarrow's
    multi-threaded reader (its streaming reader, ``open_csv``, is single-threaded: about 1.6x slower here).
    """
    from contextlib import nullcontext

    for source in files:
        with open(source, "rb") if isinstance(source, (str, Path)) else nullcontext(source) as file:
            yield from _file_blocks(file, dtype)


def _file_blocks(file, dtype) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from modelops.data.datasets import read_matrix

    for piece in _pieces(file):
        values = read_matrix(piece, dtype)
        if len(values):
            yield values[:, 1:], values[:, 0]


def _pieces(file) -> Iterator[bytes]:
    """The file's bytes in pieces of whole lines, about ``BLOCK_BYTES`` each (the last line may lack its newline)."""
    rest = b""
    while data := file.read(BLOCK_BYTES):
        data = rest + data
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data[:cut]
    if rest.strip():
        yield rest


def read_arrays(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Every row of the files as one float32 (features, labels) pair."""
    parts = list(blocks(files))
    if not parts:
        return np.empty((0, 0), dtype=np.float32), np.empty(0, dtype=np.float32)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def quantised(files: list[Path], params: dict, reference=None):
    """A ``QuantileDMatrix`` of the files' rows, built block by block (``reference``: the train matrix, whose
    bins a validation matrix must share)."""
    import xgboost

    class _Blocks(xgboost.DataIter):
        def __init__(self):
            self._iterator = None
            super().__init__()

        def next(self, input_data) -> bool:
            if self._iterator is None:
                self._iterator = blocks(files)
            block = next(self._iterator, None)
            if block is None:
                return False
            input_data(data=block[0], label=block[1])
            return True

        def reset(self) -> None:
            self._iterator = None

    options = {"max_bin": int(params["max_bin"])} if "max_bin" in params else {}
    return xgboost.QuantileDMatrix(_Blocks(), ref=reference, nthread=params.get("nthread"), **options)


def matrices(train: list[Path], validation: list[Path], params: dict, *, stream: bool | None = None):
    """(train, validation) XGBoost matrices for ``params``.

    A ``DMatrix`` of the float32 rows when it fits comfortably in memory (it is the faster to build: a
    ``QuantileDMatrix`` costs about 5x a ``DMatrix``'s construction); otherwise, for the hist method, quantised
    and streamed (``stream`` forces either). ``exact`` and ``approx`` need the rows themselves: always a DMatrix.
    """
    import xgboost

    if stream is None:
        stream = _dmatrix_bytes([*train, *validation]) > _memory_budget()
    if stream and params.get("tree_method") in QUANTISED_METHODS:
        dtrain = quantised(train, params)
        return dtrain, quantised(validation, params, reference=dtrain)
    return tuple(xgboost.DMatrix(*read_arrays(files), nthread=params.get("nthread")) for files in (train, validation))


def _dmatrix_bytes(files: list[Path]) -> int:
    """What reading the files into a DMatrix holds at its peak, from their size: one-hot CSV spends about 2 bytes
    a cell, the float32 rows take 4 and the DMatrix's CSR entries 8 (value and column index)."""
    return sum(path.stat().st_size for path in files) * 6


def _memory_budget() -> int:
    """Half of the memory available now."""
    import psutil

    return psutil.virtual_memory().available // 2
