"""A local backend serving abalone for endpoint tests: three approved versions, and a raw HTTP request to it."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path

from modelops.backends.local import LocalBackend
from modelops.config import load_model_config
from modelops.data.datasets import fetch_data, read_split, write_dataset
from modelops.data.prepare import features_and_target, prepare_frame, read_raw, split_frame
from modelops.entities import TrainingSpec
from modelops.review.evaluation import check_quality, evaluate_model
from modelops.review.packages import register_model
from tests.support.paths import ROOT, SHARED_DATA

CONFIG = load_model_config(ROOT / "abalone_model")
NAME = CONFIG.name


class Served:
    """A local backend in its own home with abalone packages v1..v3 (10, 20, 30 rounds), all approved."""

    def __init__(self, home: Path):
        os.environ["MODELOPS_DATA_DIR"] = str(SHARED_DATA)
        self.ops = LocalBackend(home)
        raw = fetch_data(CONFIG)
        splits = split_frame(prepare_frame(read_raw(raw.path, CONFIG.data), CONFIG), CONFIG.split)
        self.dataset = write_dataset(self.ops.store, CONFIG, raw, splits)
        self.X, self.y = features_and_target(read_split(self.ops.store, self.dataset, "test"))
        self.packages = [self.register(rounds) for rounds in (10, 20, 30)]

    def register(self, rounds: int, approve: bool = True):
        hyper = {**CONFIG.training.hyperparameters, "num_round": rounds}
        spec = TrainingSpec(NAME, f"job-{rounds}-{time.monotonic_ns()}", "3.2-0", hyper,
                            self.dataset.channel_uris["train"], self.dataset.channel_uris["validation"],
                            self.ops.store.uri(NAME, "training", f"r{rounds}-{time.monotonic_ns()}"))
        training = self.ops.trainer.train(spec, log=lambda line: None)
        evaluation = evaluate_model(self.ops, CONFIG, self.dataset, training)
        package = register_model(self.ops, CONFIG, self.dataset, training, evaluation,
                                 check_quality(CONFIG, {"rmse": 0, "r2": 1}))
        return self.ops.registry.approve(NAME, package.version, by="test") if approve else package

    def record(self) -> dict:
        return json.loads((self.ops.home / "endpoints" / NAME / "endpoint.json").read_text())


def request(served, method, path, body=None, headers=None):
    """Send one HTTP request straight to the endpoint's server: (status, Content-Type, body)."""
    return server_request(served.record(), method, path, body, headers)


def server_request(record: dict, method, path, body=None, headers=None):
    """One HTTP request to the server an endpoint record names (``host``, ``port``): (status, Content-Type, body)."""
    connection = http.client.HTTPConnection(record["host"], record["port"], timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()
