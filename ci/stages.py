"""The stages table: which notebooks each stage runs, what the runner hands them, and when a run is reused.

Everything the runner (``ci/runner.py``) knows about a notebook is a row of ``NOTEBOOKS``; it has no notebook
names in its code. A new stage (tuning, promotion, monitoring) is a record in ``modelops/records.py``, a row
here, its template in ``notebooks/templates/`` (or a shared notebook in ``notebooks/``), and a line in
``STAGES``; the parameters it needs from the runner are providers in ``ci/supplies.py``, the inputs that
decide its freshness providers in ``ci/freshness.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelops.records import (
    DeployRecord,
    GateRecord,
    GatherRecord,
    MonitorRecord,
    Record,
    ReviewRecord,
    TrainRecord,
    TuneRecord,
)

#: Where a notebook lives: ``MODEL`` in each model folder (generated from ``notebooks/templates/<name>.ipynb``
#: by ``python -m ci notebooks sync``), ``SHARED`` once in ``notebooks/<name>.ipynb``, run for each model.
MODEL = "model"
SHARED = "shared"

#: How a previous run can stand in for a new one: ``dataset`` (the dataset it would write is already complete),
#: ``fingerprint`` (its inputs are unchanged and what it produced still holds), or None (it always runs).
REUSE = ("dataset", "fingerprint", None)


@dataclass(frozen=True)
class Notebook:
    """One notebook the runner can execute for a model."""

    name: str
    home: str  # MODEL | SHARED
    record: type[Record]  # what it hands on (glued as scraps, read back by ci)
    title: str
    supplies: tuple[str, ...] = ("backend",)  # parameters the runner fills in when the notebook declares them
    reuse: str | None = None  # see REUSE
    inputs: tuple[str, ...] = ()  # fingerprint reuse: what it reads besides its parameters (ci.freshness.INPUTS)
    holds: str | None = None  # fingerprint reuse: what must still be true of the reused run (ci.freshness.HOLDS)
    runs_after: tuple[str, ...] = ()  # errors of an earlier notebook of the stage after which it still runs
    #: A parameter whose value tells runs apart (deploy: env_name): each value keeps its own executed notebook,
    #: record and reuse, so a deploy to production does not replace the deploy to staging.
    keyed_by: str | None = None
    #: On the sagemaker backend, when model.yml's data.processing says so, it runs in a SageMaker Processing job
    #: (ci.remote) and its executed notebook comes back from there.
    processing: bool = False

    def __post_init__(self):
        assert self.home in (MODEL, SHARED) and self.reuse in REUSE, self


@dataclass(frozen=True)
class Stage:
    """A named sequence of notebooks (``python -m ci run MODEL --stage NAME``)."""

    name: str
    notebooks: tuple[str, ...]
    description: str
    always_runs: tuple[str, ...] = ()  # notebooks this stage runs even when a previous run could be reused
    #: Parameters the stage itself sets for its notebooks (a -p may not say otherwise).
    parameters: dict[str, Any] = field(default_factory=dict)


NOTEBOOKS: dict[str, Notebook] = {n.name: n for n in (
    Notebook("gather_data", MODEL, GatherRecord, "gather the data, split it, write the dataset",
             reuse="dataset", processing=True),
    Notebook("tune", MODEL, TuneRecord, "search hyperparameters on the validation split; best against current",
             supplies=("backend", "dataset"), reuse="fingerprint", inputs=("model_folder", "dataset")),
    Notebook("train_register", MODEL, TrainRecord, "train, evaluate, check the gates, register",
             supplies=("backend", "dataset", "notebook_artifact"), reuse="fingerprint",
             inputs=("model_folder", "dataset"), holds="registered"),
    Notebook("review", SHARED, ReviewRecord, "the challenger against the champion: the verdict",
             supplies=("backend", "model_dir", "challenger", "evaluation"), reuse="fingerprint",
             inputs=("model_folder", "challenger", "champion"), runs_after=("QualityGateFailed",)),
    Notebook("deploy", MODEL, DeployRecord, "deploy the approved package to one environment, check its answers",
             reuse="fingerprint", inputs=("model_folder", "package"), holds="serving", keyed_by="env_name"),
    # Reused only once production serves what it passed, on the staging server it measured (else it measures
    # the live endpoint as it is now).
    Notebook("gate", MODEL, GateRecord, "the promotion gate: staging's live answers, latency and errors",
             reuse="fingerprint", inputs=("model_folder", "staged"), holds="gated"),
    # Never reused: its input is the traffic captured up to now, which no fingerprint covers.
    Notebook("monitor", MODEL, MonitorRecord, "the endpoint's captured traffic against its training baseline"),
)}

STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("gather", ("gather_data",), "gather the data again", always_runs=("gather_data",)),
    Stage("train", ("gather_data", "train_register", "review"),
          "gather if the data changed, train and register, review against the champion"),
    Stage("tune", ("gather_data", "tune"), "gather if the data changed, search hyperparameters (python -m ci tune)"),
    Stage("deploy", ("deploy", "gate"), "deploy the approved package that matches the folder to staging, then "
          "the promotion gate against it", parameters={"env_name": "staging"}),
    Stage("gate", ("gate",), "the promotion gate against what staging serves now", always_runs=("gate",)),
    Stage("production", ("deploy",), "deploy to production a package that passed the promotion gate (ci promote)",
          parameters={"env_name": "production"}),
    Stage("all", ("gather_data", "train_register", "review", "deploy", "gate"),
          "train, review, deploy to staging and run the promotion gate", parameters={"env_name": "staging"}),
    Stage("monitor", ("monitor",), "check the production endpoint's captured traffic against its training baseline",
          always_runs=("monitor",)),
)}


def model_notebooks() -> list[str]:
    """The notebooks every model folder holds, in run order (generated from notebooks/templates/)."""
    return [n.name for n in NOTEBOOKS.values() if n.home == MODEL]


def notebook_order(name: str) -> int:
    """A notebook's place in the flow (for ordering pages); unknown notebooks come last."""
    return list(NOTEBOOKS).index(name) if name in NOTEBOOKS else len(NOTEBOOKS)


def record_type(notebook: str) -> type[Record] | None:
    """The record a notebook hands on (None for a notebook outside the table, e.g. a test fixture)."""
    entry = NOTEBOOKS.get(notebook)
    return entry.record if entry else None


def notebook_for(record: type[Record]) -> str:
    """The notebook that hands on ``record``."""
    return next(n.name for n in NOTEBOOKS.values() if n.record is record)


__all__ = ["MODEL", "NOTEBOOKS", "SHARED", "STAGES", "Notebook", "Stage", "model_notebooks", "notebook_order",
           "record_type"]
