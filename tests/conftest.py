"""Shared fixtures: where the real data lives, and small synthetic tables written to a temporary folder."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

# The test machines have 2 shared cores: torch's default of one thread per core makes the tiny models of these
# tests many times slower when another process is busy (thread contention), so tests (and the CLI subprocesses
# they start, which inherit the environment) use one thread unless the caller chose otherwise. It is set before
# any test module imports torch, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The project's real datasets (../shared/data from the repository root); skips when it is absent."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"the shared datasets are not here ({path})")
    return path


@pytest.fixture
def write_table(tmp_path: Path) -> Callable[..., Path]:
    """Write a DataFrame to tmp_path as CSV (default) or Parquet and return the file's path."""

    def write(frame: pd.DataFrame, name: str, *, fmt: str = "csv") -> Path:
        path = tmp_path / name
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        return path

    return write


def _synthetic_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions and product attributes with structure a model can learn: buyers prefer one product group.

    40 buyers, 24 products in 4 groups, about 600 rows; ratings are higher inside a buyer's group.
    """
    rng = np.random.default_rng(seed)
    n_buyers, n_products, n_groups = 40, 24, 4
    buyer_group = np.arange(n_buyers) % n_groups
    product_group = np.arange(n_products) % n_groups
    rows = []
    for b in range(n_buyers):
        liked = np.flatnonzero(product_group == buyer_group[b])
        others = np.flatnonzero(product_group != buyer_group[b])
        picks = np.concatenate([rng.choice(liked, 5, replace=False), rng.choice(others, 10, replace=False)])
        for p in picks:
            rating = 4.0 + rng.integers(0, 2) if product_group[p] == buyer_group[b] else 1.0 + rng.integers(0, 2)
            rows.append((f"b{b}", f"p{p}", rating, 1_700_000_000 + int(rng.integers(0, 10_000_000))))
    transactions = pd.DataFrame(rows, columns=["buyer", "product", "rating", "ts"])
    words = ["red", "green", "blue", "gold"]
    products = pd.DataFrame(
        {
            "product": [f"p{p}" for p in range(n_products)],
            "category": [f"group{g}" for g in product_group],
            "title": [f"{words[g]} item {p}" for p, g in enumerate(product_group)],
        }
    )
    return transactions, products


def _synthetic_spec_dict() -> dict:
    """A fast multitask spec over the files `write_synthetic_project` writes (relative paths)."""
    return {
        "name": "synthetic",
        "data": {
            "transactions": {"path": "transactions.csv"},
            "products": {"path": "products.parquet", "key": "product"},
            "buyer_id": "buyer",
            "product_id": "product",
            "timestamp": "ts",
            "split": {"kind": "random", "test_fraction": 0.2, "validation_fraction": 0.2, "seed": 7},
        },
        "features": {
            "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 8}],
            "product": [
                {"column": "product", "transform": "id", "embedding_dim": 8},
                {"column": "category", "transform": "categorical", "embedding_dim": 4},
            ],
            "target": "rating",
        },
        "model": {
            "type": "multitask",
            "buyer_tower_layers": [8],
            "product_tower_layers": [8],
            "rating_head_layers": [8, 1],
            "index": {"candidate_pool": 10},
        },
        "training": {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 64, "epochs": 3, "seed": 3},
        "evaluation": {"ks": [1, 5, 10]},
    }


@pytest.fixture(scope="session")
def write_synthetic_project() -> Callable[..., Path]:
    """A function that writes the synthetic data and a spec into a folder and returns the spec's path."""

    def write(folder: Path, spec: dict | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        transactions, products = _synthetic_frames()
        transactions.to_csv(folder / "transactions.csv", index=False)
        products.to_parquet(folder / "products.parquet", index=False)
        path = folder / "spec.yaml"
        path.write_text(yaml.safe_dump(spec or _synthetic_spec_dict(), sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def synthetic_spec_raw() -> dict:
    """A fresh copy of the synthetic spec as a dict, to change before writing it with `write_synthetic_project`."""
    return _synthetic_spec_dict()


@pytest.fixture
def synthetic_spec_path(tmp_path: Path, write_synthetic_project: Callable[..., Path]) -> Path:
    """A spec file (fast multitask training on synthetic data) in tmp_path, next to its data files."""
    return write_synthetic_project(tmp_path / "project")
