"""Tables of the shapes users bring, generated (deterministic with a seed) for the new-model tests.

Each has a learnable target, so a scaffolded model passes its default quality gate on it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: A five-column regression model.yml for tuning tests (the tuner suites read a generated toy.csv with it).
TOY = {
    "name": "toy-model", "problem_type": "regression",
    "data": {"source": "toy.csv", "columns": ["y", "a", "b", "c", "d"], "target": "y"},
    "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 3},
    "training": {"container_version": "3.2-0", "hyperparameters": {
        "objective": "reg:squarederror", "max_depth": 2, "eta": 0.5, "num_round": 10, "eval_metric": "rmse"}},
    "quality": {"rmse": {"max": 100}},
    "tuning": {"parameters": {"max_depth": {"int": [2, 6]}, "eta": {"float": [0.05, 0.5], "log": True},
                              "subsample": {"float": [0.6, 1.0]}},
               "budget": {"trials": 6}, "seed": 7, "max_rounds": 80, "early_stopping_rounds": 8},
}


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV as a spreadsheet exports it: a header row, quotes only where a cell needs them."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _cell(value: float) -> str:
    return f"{value:.4f}"


def numeric_regression(path: Path, rows: int = 400, seed: int = 1) -> Path:
    """All numeric: four measurements and a quantity depending on them (no text column at all)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = 3 * x[:, 0] - 2 * x[:, 1] + x[:, 2] * x[:, 3] + rng.normal(scale=0.3, size=rows)
    return write_csv(path, ["width", "depth", "load", "speed", "wear"],
                     [[*map(_cell, features), _cell(target)] for features, target in zip(x, y)])


def numeric_binary_with_gaps(path: Path, rows: int = 500, seed: int = 2) -> tuple[Path, dict[str, int]]:
    """All numeric with missing values: empty cells, NA and ? in the features, empty cells in the 0/1 target.

    Returns:
        The file and how many cells of each kind are missing (``features``, ``target``).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    label = (x[:, 0] + 0.8 * x[:, 1] - 0.5 * x[:, 2] + rng.normal(scale=0.4, size=rows) > 0).astype(int)
    cells = [[_cell(v) for v in row] for row in x]
    gaps = rng.random(size=x.shape) < 0.08
    markers = np.array(["", "NA", "?"])[rng.integers(0, 3, size=x.shape)]
    for (i, j) in zip(*np.nonzero(gaps)):
        cells[i][j] = markers[i, j]
    unlabelled = rng.random(size=rows) < 0.03
    table = [[*row, "" if blank else str(y)] for row, y, blank in zip(cells, label, unlabelled)]
    return (write_csv(path, ["pressure", "temperature", "humidity", "failed"], table),
            {"features": int(gaps.sum()), "target": int(unlabelled.sum())})


#: The odd header of multiclass_odd_headers, as written (csv quotes the cells that need it).
ODD_HEADER = [" Length (cm) ", 'say "cheese"', "weight, kg", "größe", "region", "colour", "dup", " dup ", "species"]
#: The same names as the pipeline reads them: trimmed, the repeated one numbered.
ODD_HEADER_READ = ["Length (cm)", 'say "cheese"', "weight, kg", "größe", "region", "colour", "dup", "dup.1",
                   "species"]
SPECIES = ("setosa", "versicolor", "virginica")
COLOURS = ("red, dark", 'blue "navy"', "grün", "")


def multiclass_odd_headers(path: Path, rows: int = 450, seed: int = 3) -> Path:
    """Three classes, odd header names, a region given as numeric codes, a text category with odd values and gaps.

    The class depends on the length, on the region code (not in its numeric order: region 3 behaves like 1)
    and on the colour, so the model gains from one-hot encoding both.
    """
    rng = np.random.default_rng(seed)
    length = rng.normal(size=rows)
    region = rng.integers(1, 5, size=rows)
    colour = rng.integers(0, len(COLOURS), size=rows)
    score = length + np.where(np.isin(region, (1, 3)), 1.2, -1.2) + np.where(colour == 0, 1.0, 0.0)
    score += rng.normal(scale=0.35, size=rows)
    species = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    table = [[_cell(length[i]), _cell(rng.normal()), _cell(rng.normal()), _cell(rng.normal()), str(region[i]),
              COLOURS[colour[i]], _cell(rng.normal()), _cell(rng.normal()), SPECIES[species[i]]] for i in range(rows)]
    return write_csv(path, ODD_HEADER, table)


def wide_binary(path: Path, rows: int, columns: int = 40, seed: int = 4) -> Path:
    """Many numeric columns written at full precision (wide CSV rows) and a 0/1 target depending on three."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns))
    label = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    header = [f"x{j}" for j in range(columns)] + ["label"]
    return write_csv(path, header, [[*map(repr, features), str(y)] for features, y in zip(x.tolist(), label)])
