"""The same spec and seed give identical losses and metrics on the CPU, in fresh processes with two threads
(where unordered additions in backward passes of indexing ops used to make runs differ)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def _spec(folder: Path) -> Path:
    """A batch large enough for the CPU kernels to split the work across threads."""
    rng = np.random.default_rng(0)
    n = 40_000
    buyers, products = rng.integers(0, 2_000, n), rng.zipf(1.3, n) % 800
    frame = pd.DataFrame({"buyer": buyers, "product": products, "rating": rng.integers(1, 6, n)})
    frame.to_csv(folder / "rows.csv", index=False)
    spec = {
        "data": {
            "transactions": {"path": "rows.csv"},
            **{"buyer_id": "buyer", "product_id": "product"},
            "split": {"kind": "random", "test_fraction": 0.2, "seed": 1},
        },
        "features": {
            "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 16}],
            "product": [{"column": "product", "transform": "id", "embedding_dim": 16}],
            "target": "rating",
        },
        "model": {"type": "multitask", "buyer_tower_layers": [16], "product_tower_layers": [16], "top_k": 10},
        "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 8192, "epochs": 1, "seed": 5},
        "evaluation": {"ks": [10], "baseline": False},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_two_runs_of_one_spec_give_identical_losses_and_metrics(tmp_path):
    """Losses per epoch and every metric are bit-for-bit equal across two fresh two-thread processes."""
    spec = _spec(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    outputs = []
    for run in ("a", "b"):
        command = [sys.executable, "-m", "tandem.cli", "train", str(spec), "--out", str(tmp_path / run), "--quiet"]
        process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert process.returncode == 0, process.stderr
        history = json.loads((tmp_path / run / "history.json").read_text(encoding="utf-8"))
        metrics = json.loads((tmp_path / run / "metrics.json").read_text(encoding="utf-8"))
        outputs.append(([{k: v for k, v in e.items() if k != "seconds"} for e in history], metrics))
    assert outputs[0] == outputs[1]
