"""Figures for reviewers. Each function returns a matplotlib Figure built without pyplot's global state."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def target_distribution(splits: dict[str, pd.DataFrame], problem_type: str, target: str) -> Figure:
    """Per split: the target's histogram (regression) or class balance (binary)."""
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    if problem_type == "binary":
        rates = pd.DataFrame({name: frame.iloc[:, 0].value_counts(normalize=True).sort_index()
                              for name, frame in splits.items()}).T
        rates.columns = [f"{target} = {int(c)}" for c in rates.columns]
        rates.plot.bar(stacked=True, ax=ax, rot=0, color=["#4c72b0", "#dd8452"])
        ax.set_ylabel("share of rows")
        ax.legend(loc="lower right")
    else:
        values = pd.concat([frame.iloc[:, 0] for frame in splits.values()])
        bins = np.histogram_bin_edges(values, bins=min(30, max(5, values.nunique())))
        for name, frame in splits.items():
            ax.hist(frame.iloc[:, 0], bins=bins, alpha=0.5, density=True, label=f"{name} ({len(frame)})")
        ax.set_xlabel(target)
        ax.set_ylabel("density")
        ax.legend()
    ax.set_title(f"{target} by split")
    return figure


def target_correlation(frame: pd.DataFrame, top: int = 15) -> Figure:
    """The features most correlated with the target (first column), signed."""
    target = frame.columns[0]
    features = frame.iloc[:, 1:].loc[:, frame.iloc[:, 1:].std() > 0]
    corr = features.corrwith(frame[target]).dropna()
    corr = corr.reindex(corr.abs().sort_values(ascending=True).index)[-top:]
    figure = Figure(figsize=(7, 0.28 * len(corr) + 1.0), layout="constrained")
    ax = figure.subplots()
    ax.barh(corr.index.astype(str), corr.values, color=np.where(corr.values >= 0, "#4c72b0", "#c44e52"))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Pearson correlation with {target}")
    ax.set_title(f"Top {len(corr)} features by |correlation|")
    return figure
