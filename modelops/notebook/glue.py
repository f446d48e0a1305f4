"""Helpers the notebooks call to show and record results: scrapbook glue of metrics and figures."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np


def glue_figure(name: str, figure, *, dpi: int = 100) -> None:
    """Show a matplotlib figure once, as a PNG, and record it as a scrap the review notebook can find.

    The PNG is rendered here rather than left to the notebook's display hooks, which only know matplotlib
    figures once pyplot has been imported.
    """
    import scrapbook as sb
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    sb.glue(name, Image(buffer.getvalue()), encoder="display", display=True)


def glue_values(values: dict[str, Any]) -> dict[str, Any]:
    """Record plain values (metrics, counts, hashes) as scraps, converted to JSON-safe Python types.

    Returns:
        The converted values, so a notebook can display what it recorded.
    """
    import scrapbook as sb

    plain = {name: to_plain(value) for name, value in values.items()}
    for name, value in plain.items():
        if value is None:
            continue  # scrapbook has no null scrap; a missing scrap reads back as None
        sb.glue(name, value, encoder="text" if isinstance(value, str) else "json")
    return plain


def to_plain(value: Any) -> Any:
    """numpy scalars, arrays and tuples to JSON-safe Python values (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def glue_record(record):
    """Record what this notebook hands on (a ``modelops.records`` record) as scraps; returns the record."""
    glue_values(record.to_scraps())
    return record


def read_record(notebook, record_type):
    """The record of ``record_type`` an executed notebook glued.

    Raises:
        KeyError: the notebook glued no such record (a required scrap is missing).
    """
    return record_type.from_scraps(read_scraps(notebook))


def glue_figures(figures: dict) -> None:
    """Show and record several figures (``{scrap name: figure}``), in order."""
    for name, figure in figures.items():
        glue_figure(name, figure)


def read_scraps(notebook) -> dict:
    """The JSON scraps an executed notebook glued (figures, which are display-only, are left out)."""
    import scrapbook

    scraps = scrapbook.read_notebook(str(notebook)).scraps
    return {name: s.data for name, s in scraps.items() if s.encoder != "display" and s.data is not None}
