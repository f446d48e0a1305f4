"""Review: the challenger (the version just trained) against the champion (the newest approved version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelops.config import ModelConfig
from modelops.metrics import PRIMARY_METRIC, TOLERANCE
from modelops.metrics import metric as metric_named


@dataclass(frozen=True)
class Comparison:
    """Metric by metric comparison and a one-line verdict."""

    model: str
    challenger_version: int | None
    champion_version: int | None
    rows: tuple[dict, ...]
    verdict: str  # "APPROVE" | "HOLD" | "REJECT"
    reason: str

    @property
    def line(self) -> str:
        return f"{self.verdict}: {self.reason}"

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows)).set_index("metric") if self.rows else pd.DataFrame()

    def scraps(self) -> dict[str, object]:
        return {"verdict": self.verdict, "verdict_line": self.line, "challenger_version": self.challenger_version,
                "champion_version": self.champion_version, "comparison": list(self.rows)}

    def _repr_markdown_(self) -> str:
        return f"### Verdict: {self.line}"


def compare(config: ModelConfig, challenger: dict, champion: dict | None, *, challenger_version: int | None,
            champion_version: int | None = None, quality_passed: bool = True) -> Comparison:
    """Compare test metrics of a challenger with a champion's (None: there is no approved version yet).

    The verdict is REJECT when a quality gate failed, HOLD when the challenger is worse than the champion
    beyond the tolerance on a gated or the primary metric, APPROVE otherwise.
    """
    watched = [t.metric for t in config.quality]
    primary = PRIMARY_METRIC[config.problem_type]
    if primary not in watched:
        watched.append(primary)
    rows, worse = [], []
    for metric in config.metrics:
        if metric not in challenger:
            continue
        new = float(challenger[metric])
        old = float(champion[metric]) if champion and champion.get(metric) is not None else None
        row = {"metric": metric, "challenger": new, "champion": old, "delta": None, "change": "-",
               "gated": metric in watched}
        if old is not None:
            row["delta"] = new - old
            row["change"] = _change(metric, new, old)
            if row["change"] == "worse" and metric in watched:
                worse.append(f"{metric} {new:.4g} vs {old:.4g}")
        rows.append(row)
    name = f"v{challenger_version}" if challenger_version else "the challenger"
    if not quality_passed:
        verdict, reason = "REJECT", f"{name} failed its quality gates and was not registered"
    elif champion is None:
        verdict, reason = "APPROVE", f"{name} passed every quality gate; there is no approved version to beat yet"
    elif worse:
        verdict, reason = "HOLD", (f"{name} is worse than champion v{champion_version} on "
                                   f"{', '.join(worse)}; approve only if that is intended")
    else:
        verdict, reason = "APPROVE", (f"{name} matches or beats champion v{champion_version} on every watched "
                                      f"metric ({', '.join(watched)})")
    return Comparison(config.name, challenger_version, champion_version, tuple(rows), verdict, reason)


def review_run(config: ModelConfig, registry, train_notebook: str | Path) -> Comparison:
    """Review an executed train_register notebook: its scraps against the registry's champion."""
    from modelops.notebook import read_scraps
    from modelops.packages import champion as find_champion

    scraps = read_scraps(train_notebook)
    version = scraps.get("version")
    best = find_champion(registry, config.name, excluding=version)
    return compare(config, scraps, best.metrics if best else None, challenger_version=version,
                   champion_version=best.version if best else None,
                   quality_passed=bool(scraps.get("quality_passed", False)))


def show_figures(notebook: str | Path, names: list[str] | None = None) -> list[str]:
    """Display again the figures an executed notebook glued (all, or ``names``); returns their names."""
    import scrapbook

    book = scrapbook.read_notebook(str(notebook))
    shown = [name for name, s in book.scraps.items() if s.encoder == "display" and (names is None or name in names)]
    for name in shown:
        book.reglue(name)
    return shown


def _change(name: str, new: float, old: float) -> str:
    return metric_named(name).change(new, old, TOLERANCE)
