"""Small trained models of every type, each trained once per test session and shared by tests/export and
tests/serving (a module-level cache, because the two folders' conftests cannot share a session fixture).

The data are the shared synthetic tables (tests/conftest.py); the spec adds a dense buyer input (a timestamp), a
purchase-history bag (weighted rows of the product table) and a token-bag product input (the title), so that the
graphs cover every input kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tandem.data.prepare import Interactions, load_interactions
from tandem.export.bundle import export_bundle
from tandem.run import RunResult, run
from tandem.spec import ExperimentSpec, load_spec

MODEL_TYPES = ("retrieval", "ranking", "multitask")
TWO_STAGE = "two_stage"  # the multitask case with a time split and a second stage
CUTOFF = 1_708_000_000  # the synthetic timestamps span 1_700_000_000 + 10 M seconds


def spec_dict(model_type: str) -> dict[str, Any]:
    """A fast spec of `model_type` over the synthetic tables, with every kind of tower input."""
    return {
        "name": f"small-{model_type}",
        "data": {
            "transactions": {"path": "transactions.csv"},
            "products": {"path": "products.parquet", "key": "product"},
            "buyer_id": "buyer",
            "product_id": "product",
            "timestamp": "ts",
            "split": {"kind": "random", "test_fraction": 0.2, "seed": 7},
        },
        "features": {
            "buyer": [
                {"column": "buyer", "transform": "id", "embedding_dim": 8},
                {"column": "ts", "transform": "timestamp"},
                {"column": "product", "transform": "history", "weighting": "recency", "half_life_days": 30},
            ],
            "product": [
                {"column": "product", "transform": "id", "embedding_dim": 8},
                {"column": "category", "transform": "categorical", "embedding_dim": 4},
                {"column": "title", "transform": "text", "embedding_dim": 4, "max_length": 4},
            ],
            "target": "rating",
        },
        "model": {
            "type": model_type,
            "buyer_tower_layers": [16, 8],
            "product_tower_layers": [8],
            "rating_head_layers": [8, 1],
            "index": {"candidate_pool": 10},
        },
        "training": {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 64, "epochs": 2, "seed": 3},
        "evaluation": {"ks": [1, 5, 10]},
    }


def two_stage_spec_dict() -> dict[str, Any]:
    """The multitask case split at CUTOFF, with a small, fast second stage."""
    spec = spec_dict("multitask")
    spec["name"] = "small-two-stage"
    spec["data"]["split"] = {"kind": "time", "cutoff": str(CUTOFF)}
    spec["recommend"] = {"ease": 5, "popularity": 5, "windows": 2, "ranker_epochs": 2, "ease_neighbours": 10}
    return spec


@dataclass
class Case:
    """A trained model with the run that made it, its interactions (raw rows) and its saved output folder."""

    spec: ExperimentSpec
    result: RunResult
    interactions: Interactions
    out: Path

    @property
    def bundle(self) -> Path:
        return self.out / "bundle"

    def raw_buyer(self, frame_row: int) -> dict[str, Any]:
        """The raw buyer features of one interaction, as a client would send them (plain Python values)."""
        row = self.interactions.frame.iloc[frame_row]
        return {"buyer": str(row["buyer"]), "ts": int(row["ts"])}

    def query_rows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(distinct query rows of a split, the frame row of one interaction of each)."""
        rows = getattr(self.result.data, split)
        frame_rows = getattr(self.interactions, split)
        queries, first = np.unique(rows.query.numpy(), return_index=True)
        return queries, frame_rows[first]

    def export_with(self, folder: Path, **model: Any) -> Path:
        """Export this model again with changed model settings (e.g. another retrieval_algorithm)."""
        spec = self.spec.model_copy(update={"model": self.spec.model.model_copy(update=model)})
        trained = dataclasses.replace(self.result.trained, spec=spec)
        return export_bundle(trained, self.result.data, folder)


_CASES: dict[str, Case] = {}


def trained_case(model_type: str, root: Path, write_project: Callable[..., Path]) -> Case:
    """Train (once per session) and save a small model of `model_type` (or the TWO_STAGE case) under `root`."""
    if model_type not in _CASES:
        raw = two_stage_spec_dict() if model_type == TWO_STAGE else spec_dict(model_type)
        spec_path = write_project(root / f"project-{model_type}", raw)
        spec = load_spec(spec_path)
        result = run(spec)
        out = result.save(root / f"run-{model_type}")
        _CASES[model_type] = Case(spec, result, load_interactions(spec), out)
    return _CASES[model_type]
