"""A model folder's own feature code: ``<model folder>/features.py`` with ``prepare(frame) -> frame``.

It runs on the raw table after it is read and before the declarative preparation (drop, categorical, one-hot),
at training and at inference alike, so a derived column is computed the same way for both. It lives in the
model folder, so the folder's git tree hash (the lineage a deploy matches on) covers it. It is loaded by path
under a private module name, never through ``sys.path``, and without writing bytecode into the model folder.

What ``prepare`` must return is checked here: a DataFrame with the same rows in the same order (at inference
every record needs its prediction), the target kept, and exactly the columns model.yml's ``data.derived``
declares added. Its own errors are reported naming the file and line.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from modelops.config import FEATURES_FILE, ModelConfig
from modelops.errors import FeaturesError

FUNCTION = "prepare"

#: What a new model folder's features.py holds (written by `python -m ci new-model`): a working no-op whose
#: comments show the contract and an example.
STUB = '''"""Feature code of this model: prepare(frame) runs on the raw table before model.yml's preparation.

It runs at training (gather_data) and at inference (`modelops.encode_rows`, `python -m ci invoke --raw`), so a
derived column is computed the same way for both. It is part of this folder, so the model's lineage covers it.

The frame it receives: one row per record, the data's own column names; columns listed under data.categorical
(and a classification target) as text, every other column as float where all its values are numbers (an empty
cell is NaN), otherwise as text. At inference the target column may be missing.

The rules: keep pure (no files, no network, no randomness); return every row, in order; keep the target column;
declare each column you add under data.derived in model.yml (and under data.categorical if it is a category).
"""

import pandas as pd


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    # Example: one derived column (then add `derived: [volume]` under data: in model.yml).
    # frame["volume"] = frame["length"] * frame["diameter"] * frame["height"]
    return frame
'''


def features_path(config: ModelConfig) -> Path | None:
    """The model folder's features.py, or None when it has none (or the config has no folder)."""
    if config.folder is None:
        return None
    path = Path(config.folder).resolve() / FEATURES_FILE
    return path if path.is_file() else None


def features_sha256(config: ModelConfig) -> str | None:
    """sha256 of the model folder's features.py (None without one): part of a dataset's identity."""
    path = features_path(config)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else None


def load_prepare(path: Path) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Import ``path`` under a private name and return its ``prepare`` function.

    Raises:
        FeaturesError: the file does not compile or raises on import (file and line named), or has no
            callable ``prepare``.
    """
    path = Path(path).resolve()
    name = f"_modelops_features_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    loader = _SourceOnlyLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # under its private name only: dataclasses and pickling look a module up there
    try:
        loader.exec_module(module)
    except SyntaxError as exc:
        raise FeaturesError(f"{path}, line {exc.lineno}: {type(exc).__name__}: {exc.msg}. Fix: correct the syntax "
                            f"of {FEATURES_FILE} at that line.") from exc
    except Exception as exc:
        raise FeaturesError(f"{_where(exc, path)}: importing {FEATURES_FILE} raised {_describe(exc)}. Fix: correct "
                            f"{FEATURES_FILE} at that line (it must import without side effects).") from exc
    function = getattr(module, FUNCTION, None)
    if not callable(function):
        raise FeaturesError(f"{path} defines no function {FUNCTION}(frame). Fix: define `def {FUNCTION}(frame: "
                            f"pandas.DataFrame) -> pandas.DataFrame`, or delete the file if the model needs none.")
    return function


def apply_features(frame: pd.DataFrame, config: ModelConfig) -> pd.DataFrame:
    """Run the model folder's ``prepare`` on a copy of ``frame`` and check what it returns.

    Without a features.py the frame is returned unchanged.

    Args:
        frame: the raw table (see STUB for its types), target column optional.
        config: the model; its folder holds features.py and its ``data.derived`` names the added columns.

    Returns:
        The table ``prepare`` returned, with the same index as ``frame``.

    Raises:
        FeaturesError: ``prepare`` raised (naming the file and line), returned something other than a DataFrame,
            changed the rows, dropped the target, or added columns other than ``data.derived``.
    """
    path = features_path(config)
    if path is None:
        if config.data.derived:
            raise FeaturesError(f"data.derived lists {list(config.data.derived)} but the model folder has no "
                                f"{FEATURES_FILE}. Fix: add it, or remove data.derived from model.yml.")
        return frame
    prepare = load_prepare(path)
    try:
        result = prepare(frame.copy())
    except Exception as exc:
        raise FeaturesError(f"{_where(exc, path)}: {FUNCTION}() raised {_describe(exc)}. Fix: correct "
                            f"{FEATURES_FILE} at that line; the table it received has columns "
                            f"{_shown(frame.columns)}.") from exc
    return _checked(result, frame, config, path)


def _checked(result, frame: pd.DataFrame, config: ModelConfig, path: Path) -> pd.DataFrame:
    where = f"{path}: {FUNCTION}()"
    if result is None:
        raise FeaturesError(f"{where} returned None. Fix: end it with `return frame`.")
    if not isinstance(result, pd.DataFrame):
        raise FeaturesError(f"{where} returned {type(result).__name__}, not a pandas DataFrame. Fix: return the "
                            f"table.")
    if any(not isinstance(c, str) for c in result.columns):
        raise FeaturesError(f"{where} returned columns that are not named by text: "
                            f"{[c for c in result.columns if not isinstance(c, str)]}. Fix: name every column "
                            f"with a string.")
    if len(result) != len(frame) or not result.index.equals(frame.index):
        raise FeaturesError(
            f"{where} returned {len(result)} rows for {len(frame)}, or reordered them. It also runs at inference, "
            f"where every record needs its prediction in order. Fix: keep every row in place; to leave rows out "
            f"of training, filter them at the source (a row with an empty target is left out already).")
    if result.columns.has_duplicates:
        raise FeaturesError(f"{where} returned the columns {_shown(result.columns[result.columns.duplicated()])} "
                            f"twice. Fix: give every column its own name.")
    target = config.data.target
    if target in frame.columns and target not in result.columns:
        raise FeaturesError(f"{where} dropped the target column {target!r}. Fix: keep it (list columns to leave "
                            f"out under data.drop in model.yml instead).")
    added = [c for c in result.columns if c not in frame.columns]
    declared = list(config.data.derived)
    if sorted(map(str, added)) != sorted(declared):
        undeclared = [c for c in added if c not in declared]
        missing = [c for c in declared if c not in added]
        raise FeaturesError(
            f"{where} added the columns {_shown(added)} but model.yml's data.derived declares {declared}"
            f"{f' (not declared: {undeclared})' if undeclared else ''}{f' (not added: {missing})' if missing else ''}. "
            f"Fix: list exactly the columns {FEATURES_FILE} adds under data.derived.")
    return result


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source every time: no ``__pycache__`` written into the model folder (it is lineage)."""

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _where(exc: BaseException, path: Path) -> str:
    """``<path>, line N, in <function>`` for the innermost frame of ``exc`` inside ``path``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    if not frames:
        return str(path)
    frame = frames[-1]
    return f"{path}, line {frame.lineno}, in {frame.name}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].rstrip('.')}" if text else type(exc).__name__


def _shown(columns, limit: int = 12) -> str:
    names = [str(c) for c in columns]
    return str(names[:limit])[:-1] + (f", ... {len(names) - limit} more]" if len(names) > limit else "]")
