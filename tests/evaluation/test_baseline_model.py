"""A baseline trained and served as a model (`model.type: buy_again | ease`): its metrics and served lists equal
the independent pandas computation of tests/evaluation/test_baselines.py, a pruned EASE table is served as it was
evaluated, and its bundle loads and serves without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tandem.data.prepare import load_interactions
from tandem.evaluation.baseline_model import BaselineModel, prune
from tandem.evaluation.baselines import Ease
from tandem.evaluation.evaluate import SplitPairs
from tandem.run import RunResult, run
from tandem.serving import recommender
from tandem.serving.app import create_app
from tandem.serving.bundle import Bundle
from tandem.sizing import estimate
from tests.evaluation.test_baselines import CUTOFF, KS, _expected_lists, _ndcg, _recall, _repeat_heavy_lines, _spec
from tests.serving.conftest import call_app


@pytest.fixture(scope="module")
def lines_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline_model") / "lines.csv"
    _repeat_heavy_lines().to_csv(path, index=False)
    return path


def _run(path: Path, model_type: str, neighbours: int = 200) -> RunResult:
    spec = _spec(path, aggregate=False)
    model = spec.model.model_copy(update={"type": model_type, "ease_neighbours": neighbours})
    return run(spec.model_copy(update={"model": model}))


@pytest.fixture(scope="module", params=["buy_again", "ease"])
def trained(request, lines_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, RunResult, Path]:
    result = _run(lines_path, request.param)
    out = result.save(tmp_path_factory.mktemp(f"run-{request.param}"))
    return request.param, result, out / "bundle"


def _pandas(result: RunResult, lines_path: Path) -> dict[str, dict]:
    interactions = load_interactions(result.spec)
    return _expected_lists(
        pd.read_csv(lines_path), result.data, interactions.frame, interactions.train, cutoff=CUTOFF, k=10, n_ease=25
    )


def test_the_models_metrics_are_its_baselines_by_the_pandas_computation(trained, lines_path: Path) -> None:
    """With every EASE weight kept (25 products, 200 neighbours), the model is the baseline: the same recall
    and NDCG as the hand-built lists, and the same as its baseline's keys in the same metrics."""
    name, result, _ = trained
    expected = _pandas(result, lines_path)[name]
    data = result.data
    pairs = SplitPairs.of(data, data.test)
    test = [(data.buyer_ids[b], p) for b, p in zip(pairs.buyer, pairs.product, strict=True)]
    for k in KS:
        assert result.metrics[f"recall_at_{k}"] == pytest.approx(_recall(test, expected, k), abs=1e-12)
        assert result.metrics[f"ndcg_at_{k}"] == pytest.approx(_ndcg(test, expected, k), abs=1e-12)
        assert result.metrics[f"recall_at_{k}"] == result.metrics[f"{name}_recall_at_{k}"]
    assert result.trained is None and result.history == []


def test_the_bundle_serves_the_pandas_lists(trained, lines_path: Path) -> None:
    """/v1/retrieve and /v1/recommend give every known buyer the hand-built list; /v1/rank is a clear 404; an
    unknown buyer gets the most popular products."""
    name, result, folder = trained
    expected = _pandas(result, lines_path)[name]
    bundle = Bundle.load(folder)
    assert bundle.manifest.model_type == name and not bundle.has_towers
    app = create_app(bundle)
    ids = [str(b) for b in result.data.buyer_ids]
    for route in ("/v1/retrieve", "/v1/recommend"):
        status, body = call_app(app, "POST", route, {"buyers": [{"buyer": b} for b in ids], "k": 10})
        assert status == 200
        served = {b: r["product_ids"] for b, r in zip(ids, body["results"], strict=True)}
        assert served == {b: result.data.product_ids[expected[b]].tolist() for b in ids}
    status, body = call_app(app, "POST", "/v1/rank", {"buyer": {"buyer": ids[0]}, "product_ids": ["p1"]})
    assert (status, body["code"]) == (404, "no_signature")
    cold = recommender.retrieve(bundle, [{"buyer": "nobody"}], 3, [[]])[0]
    assert cold["fallback"] == "popularity"
    assert cold["product_ids"] == bundle.product_ids[bundle.popular_rows[:3]].tolist()


def test_batch_recommend_writes_the_pandas_lists(trained, lines_path: Path, tmp_path: Path) -> None:
    """`tandem recommend` on a baseline bundle: known buyers get their lists, an unknown one the most popular."""
    name, result, folder = trained
    expected = _pandas(result, lines_path)[name]
    ids = [str(b) for b in result.data.buyer_ids]
    pd.DataFrame({"buyer": [*ids, "nobody"]}).to_csv(tmp_path / "buyers.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "recommend", str(folder), "--buyers", str(tmp_path / "buyers.csv"),
         "--k", "10", "--out", str(tmp_path / "out.parquet"), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(ids)} known buyer(s) given the {name} model's lists" in done.stdout
    out = pd.read_parquet(tmp_path / "out.parquet")
    served = {b: g.sort_values("rank")["product_id"].tolist() for b, g in out.groupby("buyer")}
    assert {b: served[b] for b in ids} == {b: result.data.product_ids[expected[b]].tolist() for b in ids}
    assert (out[out["buyer"] == "nobody"]["fallback"] == "popularity").all()


def test_a_pruned_ease_is_served_as_it_was_evaluated(lines_path: Path, tmp_path: Path) -> None:
    """With 3 weights kept per product, the served lists are the evaluated ones, and the table is smaller."""
    result = _run(lines_path, "ease", neighbours=3)
    bundle = Bundle.load(result.save(tmp_path / "run") / "bundle")
    assert bundle.manifest.baseline.ease_weights <= 3 * 25
    buyers = np.arange(len(result.data.buyer_ids))
    np.testing.assert_array_equal(bundle.lists.lists(buyers, 10), result.baseline.lists(buyers, 10))
    served = recommender.retrieve(bundle, [{"buyer": str(result.data.buyer_ids[0])}], 10, [[]])[0]["product_ids"]
    evaluated = result.baseline.lists(buyers[:1], 10)[0]
    assert served == result.data.product_ids[evaluated[evaluated >= 0]].tolist()


def test_tandem_train_writes_a_baseline_bundle_without_a_model_folder(lines_path: Path, tmp_path: Path) -> None:
    spec = _spec(lines_path, aggregate=False)
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"type": "buy_again"})})
    (tmp_path / "spec.yaml").write_text(spec.to_yaml(), encoding="utf-8")
    command = [sys.executable, "-m", "tandem.cli", "train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "buy_again model trained" in done.stdout and "spec.yaml, bundle/" in done.stdout
    assert (tmp_path / "run" / "bundle" / "baseline" / "baseline.npz").is_file()
    assert not (tmp_path / "run" / "model").exists()


def test_a_baseline_models_size_is_its_ease_table(lines_path: Path) -> None:
    """No towers are counted: ease holds N × ease_neighbours weights of an N × N float64 fit; buy_again nothing."""
    spec = _spec(lines_path, aggregate=False)
    sized = {
        t: estimate(spec.model_copy(update={"model": spec.model.model_copy(update={"type": t, "ease_neighbours": 3})}),
                    {"product": 40, "buyer": 30})
        for t in ("ease", "buy_again")
    }  # fmt: skip
    assert (sized["ease"].parameters, sized["ease"].training_bytes) == (25 * 3, 3 * 8 * 25 * 25)
    assert (sized["buy_again"].parameters, sized["buy_again"].training_bytes) == (0, 0)


def test_prune_keeps_each_columns_largest_weights() -> None:
    weights = np.array([[0, 5, -1, 2], [3, 0, 4, -2], [1, 2, 0, 7], [-3, 1, 6, 0]], dtype=np.float32)
    kept = prune(Ease(products=np.arange(4), weights=weights), 2).weights
    np.testing.assert_array_equal(kept, [[0, 5, 0, 2], [3, 0, 4, 0], [1, 2, 0, 7], [0, 0, 6, 0]])
    assert prune(Ease(products=np.arange(4), weights=weights), 3).weights is weights


def test_a_baseline_bundle_serves_without_torch(trained) -> None:
    _, result, folder = trained
    buyer = str(result.data.buyer_ids[0])
    code = (
        "import sys; from tandem.serving.bundle import Bundle; from tandem.serving.recommender import recommend; "
        f"r = recommend(Bundle.load({str(folder)!r}), [{{'buyer': {buyer!r}}}], 5, [[]])[0]; "
        "assert r['fallback'] is None and len(r['product_ids']) == 5, r; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_saved_model_loads_back_the_same_lists(trained, tmp_path: Path) -> None:
    name, result, _ = trained
    result.baseline.save(tmp_path)
    loaded = BaselineModel.load(name, tmp_path)
    buyers = np.arange(len(result.data.buyer_ids))
    for explore in (False, True):
        np.testing.assert_array_equal(
            loaded.lists(buyers, 10, explore=explore), result.baseline.lists(buyers, 10, explore=explore)
        )
