"""The generated trainer module: standalone, lint-clean, built from the engine's source, and it reproduces
`tandem train` for every model type."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tandem.export.trainer_module import FlattenError, _check_bindings, _Import, _Module, generate_trainer
from tandem.models.two_tower import TwoTowerModel
from tandem.training.loop import train
from tests.conftest import REPO_ROOT
from tests.export.cases import MODEL_TYPES, Case

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, cases: Callable[[str], Case]) -> dict:
    """Per model type: the engine's run (as `tandem train` makes it), the trainer.py of its spec, and the output
    of running that trainer as its own process on the same data."""
    root = tmp_path_factory.mktemp("trainers")
    # A `tandem` package that refuses to import, ahead of the installed one: the trainer must not need it.
    blocker = root / "blocker" / "tandem"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("a standalone trainer imported tandem")\n')
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    out = {}
    for model_type in MODEL_TYPES:
        case = cases(model_type)
        folder = root / model_type
        folder.mkdir()
        trainer = folder / "trainer.py"
        trainer.write_text(generate_trainer(case.spec), encoding="utf-8")
        data_dir = Path(case.spec.data.transactions.path).parent
        cmd = [sys.executable, str(trainer), "--data", str(data_dir), "--out", str(folder / "out"), "--quiet"]
        out[model_type] = {"case": case, "trainer": trainer, "out": folder / "out", "cmd": cmd}

    def call(model_type: str) -> subprocess.CompletedProcess:
        return subprocess.run(out[model_type]["cmd"], capture_output=True, text=True, timeout=300, env=env, cwd=root)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two trainings at a time
        for model_type, done in zip(MODEL_TYPES, pool.map(call, MODEL_TYPES), strict=True):
            out[model_type]["run"] = done
    return out


def _metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_trainer_reproduces_tandem_train_metrics(generated: dict, model_type: str) -> None:
    """Same spec and seed: every metric of the trainer equals the engine run's (what `tandem train` prints and
    saves) within 1e-6."""
    runs = generated[model_type]
    assert runs["run"].returncode == 0, runs["run"].stderr[-3000:]
    engine, standalone = runs["case"].result.metrics, _metrics(runs["out"])
    assert engine.keys() == standalone.keys()
    assert {k: abs(engine[k] - standalone[k]) for k in engine if abs(engine[k] - standalone[k]) > 1e-6} == {}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_trainer_exports_the_same_bundle(generated: dict, model_type: str) -> None:
    """The trainer writes the serving bundle too, with the same signatures and candidate embeddings."""
    runs = generated[model_type]
    a, b = runs["case"].bundle, runs["out"] / "bundle"
    manifest_a, manifest_b = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    assert manifest_a["signatures"] == manifest_b["signatures"]
    np.testing.assert_allclose(np.load(a / "candidates.npy"), np.load(b / "candidates.npy"), atol=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_trainer_passes_ruff(generated: dict, model_type: str) -> None:
    """The generated file is clean under the project's own ruff rules."""
    ruff = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--no-cache",
            "--config",
            str(REPO_ROOT / "pyproject.toml"),
            str(generated[model_type]["trainer"]),
        ],
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout[-3000:]


def test_trainer_has_no_tandem_imports_and_spells_out_its_configuration(generated: dict) -> None:
    """No `tandem` import anywhere; the loss weights are constants that the spec literal refers to."""
    source = generated["multitask"]["trainer"].read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "tandem" for a in node.names)
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] != "tandem"
    constants = {
        t.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id.isupper()
    }
    assert constants["RETRIEVAL_WEIGHT"] == 1.0 and constants["RANKING_WEIGHT"] == 1.0
    assert constants["MODEL_TYPE"] == "multitask" and constants["SEED"] == 3
    assert "'retrieval_weight': RETRIEVAL_WEIGHT" in source
    assert "'path': 'transactions.csv'" in source  # data paths relative to --data, no machine paths


def test_trainer_is_built_from_the_engine_source(generated: dict) -> None:
    """The model's loss and the training loop appear in the trainer exactly as the engine has them."""
    source = generated["multitask"]["trainer"].read_text(encoding="utf-8")
    assert inspect.getsource(TwoTowerModel.compute_loss) in source
    assert inspect.getsource(train) in source


def test_flattening_refuses_a_name_that_two_modules_define() -> None:
    """Two engine modules defining one top-level name would silently shadow each other once flattened."""
    a = _Module("tandem.a", "tandem/a.py", None, "", defines={"BLOCK"})
    b = _Module("tandem.b", "tandem/b.py", None, "", defines={"BLOCK"})
    with pytest.raises(FlattenError, match=r"'BLOCK' is defined in both tandem/a\.py and tandem/b\.py"):
        _check_bindings([a, b])
    c = _Module("tandem.c", "tandem/c.py", None, "", imports=[_Import("numpy", None, "np")])
    d = _Module("tandem.d", "tandem/d.py", None, "", imports=[_Import("numba", None, "np")])
    with pytest.raises(FlattenError, match="'np' is both"):
        _check_bindings([c, d])
