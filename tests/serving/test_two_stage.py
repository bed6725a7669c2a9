"""Serving the second stage: /v1/recommend, `tandem recommend` (batch) and a bundle loaded without torch give the
buyers the second stage knows the very lists the evaluation scored; other buyers get the first stage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tandem.evaluation.evaluate import SplitPairs
from tandem.recommend.two_stage import candidate_table
from tandem.serving import recommender
from tandem.serving.app import create_app
from tandem.serving.batch import recommend_file
from tandem.serving.bundle import Bundle
from tests.export.cases import TWO_STAGE, Case
from tests.serving.conftest import call_app

K = 10


@pytest.fixture(scope="module")
def case(cases: Callable[[str], Case]) -> Case:
    return cases(TWO_STAGE)


@pytest.fixture(scope="module")
def bundle(bundles: Callable[[str], Bundle]) -> Bundle:
    return bundles(TWO_STAGE)


def _evaluated(case: Case, new_only: bool = False) -> dict[str, list[str]]:
    """Each test buyer's list as the run's metrics scored it (the lists `two_stage_metrics` measures; new_only:
    the explore lists, without the buyer's past products)."""
    data = case.result.data
    buyers = np.unique(SplitPairs.of(data, data.test).buyer)
    lists = case.result.two_stage.lists(buyers, K, explore=new_only)
    return {
        str(data.buyer_ids[b]): data.product_ids[row[row >= 0]].tolist() for b, row in zip(buyers, lists, strict=True)
    }


def test_the_bundle_records_its_second_stage(case: Case, bundle: Bundle) -> None:
    entry = bundle.manifest.second_stage
    log = case.result.two_stage.log
    assert (entry.buyers, entry.products, entry.orders) == (log.n_buyers, log.n_products, len(log.buyer))
    files = [case.bundle / "buyers.parquet", *(case.bundle / "two_stage").iterdir()]
    assert entry.bytes == sum(f.stat().st_size for f in files)
    assert "two_stage" in bundle.manifest.signatures and "buyer" in bundle.buyer_columns


def _ranker_scores(case: Case, buyer: str, products: list[str]) -> list[float]:
    """The ranker's score of each of the buyer's listed products, recomputed from its candidate table (the
    products outside the candidates, the popular fill, have none: NaN)."""
    two_stage, data = case.result.two_stage, case.result.data
    code = np.array([list(data.buyer_ids).index(buyer)])
    _, products_of, features = candidate_table(
        two_stage.log, two_stage.neighbours, two_stage.stats, code, two_stage.settings
    )
    scored = dict(zip(data.product_ids[products_of].tolist(), two_stage.ranker.score(features).tolist(), strict=True))
    return [scored.get(p, np.nan) for p in products]


def test_served_lists_are_the_evaluated_lists(case: Case, bundle: Bundle) -> None:
    """/v1/recommend over HTTP, one buyer at a time and in a batch, answers the evaluated lists, with the
    ranker's scores (null for the popular fill)."""
    evaluated = _evaluated(case)
    app = create_app(bundle)
    ids = sorted(evaluated)
    status, body = call_app(app, "POST", "/v1/recommend", {"buyers": [{"buyer": b} for b in ids], "k": K})
    assert status == 200
    assert {b: r["product_ids"] for b, r in zip(ids, body["results"], strict=True)} == evaluated
    assert {r["stage"] for r in body["results"]} == {"two_stage"}
    for b, r in zip(ids, body["results"], strict=True):
        expected = _ranker_scores(case, b, r["product_ids"])
        got = [np.nan if v is None else v for v in r["scores"]]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        known = [v for v in got if not np.isnan(v)]
        assert known == sorted(known, reverse=True) and not np.isnan(got[0])
    status, one = call_app(app, "POST", "/v1/recommend", {"buyer": {"buyer": ids[0], "ts": 1_700_000_000}, "k": 3})
    assert (status, one["product_ids"]) == (200, evaluated[ids[0]][:3])


def test_new_only_serves_the_lists_of_new_products(case: Case, bundle: Bundle, tmp_path: Path) -> None:
    """`new_only` (HTTP and `tandem recommend --new-only`) answers the explore lists the metrics scored: none of
    the buyer's past products, in the explore ranker's order."""
    evaluated = _evaluated(case, new_only=True)
    ids = sorted(evaluated)
    body = {"buyers": [{"buyer": b} for b in ids], "k": K, "new_only": True}
    status, answer = call_app(create_app(bundle), "POST", "/v1/recommend", body)
    assert status == 200
    assert {b: r["product_ids"] for b, r in zip(ids, answer["results"], strict=True)} == evaluated
    data, log = case.result.data, case.result.two_stage.log
    bought = set(zip(data.buyer_ids[log.buyer].tolist(), data.product_ids[log.product].tolist(), strict=True))
    assert not any((b, p) in bought for b, listed in evaluated.items() for p in listed)
    assert evaluated != _evaluated(case)
    buyers = tmp_path / "buyers.csv"
    pd.DataFrame({"buyer": ids}).to_csv(buyers, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "recommend", str(case.bundle), "--buyers", str(buyers), "--k", str(K),
         "--out", str(tmp_path / "new.parquet"), "--new-only", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(ids)} known buyer(s) given the second stage's lists of new products" in done.stdout
    out = pd.read_parquet(tmp_path / "new.parquet")
    assert {b: g.sort_values("rank")["product_id"].tolist() for b, g in out.groupby("buyer")} == evaluated


def test_excluded_products_leave_the_rest_in_order(case: Case, bundle: Bundle) -> None:
    buyer, listed = next(iter(_evaluated(case).items()))
    got = recommender.recommend(bundle, [{"buyer": buyer}], K - 2, [listed[:2]])[0]["product_ids"]
    assert got == listed[2:]


def test_unknown_buyers_get_the_first_stage(bundle: Bundle) -> None:
    """A buyer the second stage never saw is served as before: retrieval then the rating head (popularity when
    cold), named as the first stage."""
    results = recommender.recommend(
        bundle, [{"buyer": "nobody"}, {"buyer": "nobody", "ts": 1_700_000_000}], K, [[], []]
    )
    assert [r["stage"] for r in results] == ["first_stage", "first_stage"]
    assert [r["fallback"] for r in results] == ["popularity", "other_features"]
    # The cold buyer: the pool of the most popular, in the rating head's order for the average buyer.
    assert sorted(results[0]["product_ids"]) == sorted(bundle.product_ids[bundle.popular_rows[:K]].tolist())


def test_batch_recommend_writes_the_evaluated_lists(case: Case, bundle: Bundle, tmp_path: Path) -> None:
    evaluated = _evaluated(case)
    buyers = tmp_path / "buyers.csv"
    pd.DataFrame({"buyer": [*sorted(evaluated), "nobody"]}).to_csv(buyers, index=False)
    counts = recommend_file(bundle, buyers, tmp_path / "out.parquet", k=K, chunk_rows=7)
    assert (counts["listed"], counts["fallbacks"]) == (len(evaluated), 1)
    out = pd.read_parquet(tmp_path / "out.parquet")
    served = {b: g.sort_values("rank")["product_id"].tolist() for b, g in out.groupby("buyer")}
    assert {b: served[b] for b in evaluated} == evaluated
    for b in evaluated:
        mine = out[out["buyer"] == b].sort_values("rank")
        expected = _ranker_scores(case, b, mine["product_id"].tolist())
        np.testing.assert_allclose(mine["score"].to_numpy(np.float64), expected, rtol=1e-6)
    assert (out[out["buyer"] == "nobody"]["fallback"] == "popularity").all()


def test_a_two_stage_bundle_serves_without_torch(case: Case) -> None:
    """Loading the bundle and recommending from its second stage imports no torch."""
    buyer = next(iter(_evaluated(case)))
    code = (
        "import sys; from tandem.serving.bundle import Bundle; from tandem.serving.recommender import recommend; "
        f"r = recommend(Bundle.load({str(case.bundle)!r}), [{{'buyer': {buyer!r}}}], 5, [[]])[0]; "
        "assert r['stage'] == 'two_stage', r; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stdout + done.stderr
