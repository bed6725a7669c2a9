"""Serving logic against the engine: retrieval scores, rankings, recall@K and rating predictions agree; unknown
buyers follow the stated fallback policy; bundles without a signature refuse it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from tandem.evaluation.evaluate import embed
from tandem.evaluation.topk import top_k
from tandem.serving import recommender
from tandem.serving.bundle import Bundle
from tandem.serving.errors import RequestError
from tests.export.cases import Case


def _engine_embeddings(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    model = case.result.trained.model.eval()
    data = case.result.data
    return embed(model.query_tower, data.query_table), embed(model.candidate_tower, data.catalog)


def test_retrieval_equals_the_engine_top_k(cases: Callable[[str], Case], bundles: Callable[[str], Bundle]) -> None:
    """For every test query row: same products in the same order, scores within 1e-5 (raw features in)."""
    case, bundle = cases("multitask"), bundles("multitask")
    queries, candidates = _engine_embeddings(case)
    query_rows, frame_rows = case.query_rows("test")
    scores, indices = top_k(queries[torch.from_numpy(query_rows)], candidates, 10)
    buyers = [case.raw_buyer(r) for r in frame_rows]
    served = recommender.retrieve(bundle, buyers, 10, [[]] * len(buyers))
    expected_ids = case.result.data.product_ids[indices]
    assert [s["product_ids"] for s in served] == expected_ids.tolist()
    error = np.abs(np.array([s["scores"] for s in served]) - scores).max()
    assert error < 1e-5, error
    assert all(s["fallback"] is None for s in served)


def test_recall_through_the_exact_index_equals_the_engine_evaluation(
    cases: Callable[[str], Case], bundles: Callable[[str], Bundle]
) -> None:
    """Recall@K of the served top-K over the test interactions is the engine's recall_at_K."""
    case, bundle = cases("multitask"), bundles("multitask")
    frame, test_rows = case.interactions.frame, case.interactions.test
    buyers = [case.raw_buyer(r) for r in test_rows]
    served = recommender.retrieve(bundle, buyers, 10, [[]] * len(buyers))
    true_products = frame["product"].to_numpy()[test_rows]
    for k in case.spec.evaluation.ks:
        hits = [p in s["product_ids"][:k] for p, s in zip(true_products, served, strict=True)]
        assert np.mean(hits) == pytest.approx(case.result.metrics[f"recall_at_{k}"], abs=1e-12)


def test_rank_equals_the_engine_rating_predictions(
    cases: Callable[[str], Case], bundles: Callable[[str], Bundle]
) -> None:
    """Predictions for the test interactions (buyer, product) equal the model's predict_rating within 1e-5."""
    case, bundle = cases("multitask"), bundles("multitask")
    queries, candidates = _engine_embeddings(case)
    rows = case.result.data.test
    expected = case.result.trained.model.predict_rating(queries[rows.query], candidates[rows.product]).detach().numpy()
    buyers = [case.raw_buyer(r) for r in case.interactions.test]
    product_ids = [[p] for p in case.result.data.product_ids[rows.product.numpy()].tolist()]
    served = recommender.rank(bundle, buyers, product_ids)
    got = np.array([s["predictions"][0] for s in served])
    assert np.abs(got - expected).max() < 1e-5


def test_rank_keeps_the_request_order_and_accepts_equivalent_ids(bundles: Callable[[str], Bundle]) -> None:
    """Predictions come back in request order; a repeated id gets the same prediction."""
    bundle = bundles("multitask")
    buyer = {"buyer": "b1", "ts": 1_700_000_000}
    forward = recommender.rank(bundle, [buyer], [["p3", "p1", "p2", "p3"]])[0]["predictions"]
    backward = recommender.rank(bundle, [buyer], [["p3", "p2", "p1"]])[0]["predictions"]
    assert forward[:3] == [backward[0], backward[2], backward[1]] and forward[3] == forward[0]


def test_recommend_orders_retrieved_products_by_the_rating_head(bundles: Callable[[str], Bundle]) -> None:
    """The k products are retrieval's top candidates, re-ordered by predicted rating."""
    bundle = bundles("multitask")
    buyer = {"buyer": "b2", "ts": 1_700_000_000}
    retrieved = recommender.retrieve(bundle, [buyer], 10, [[]])[0]["product_ids"]
    result = recommender.recommend(bundle, [buyer], 4, [[]], candidates=10)[0]
    assert set(result["product_ids"]) <= set(retrieved)
    assert result["predictions"] == sorted(result["predictions"], reverse=True)
    ranked = recommender.rank(bundle, [buyer], [retrieved])[0]["predictions"]
    assert result["product_ids"] == [retrieved[i] for i in np.argsort(-np.array(ranked), kind="stable")[:4]]


def test_excluded_products_are_never_retrieved(bundles: Callable[[str], Bundle]) -> None:
    """Excluded ids leave the results, the next-best fill in, and unknown excluded ids are ignored."""
    bundle = bundles("multitask")
    buyer = {"buyer": "b3", "ts": 1_700_000_000}
    full = recommender.retrieve(bundle, [buyer], 6, [[]])[0]["product_ids"]
    result = recommender.retrieve(bundle, [buyer], 4, [[full[0], full[2], "no-such-product"]])[0]["product_ids"]
    assert result == [full[1], full[3], full[4], full[5]]


def test_unknown_buyer_with_other_features_is_served_by_the_model(bundles: Callable[[str], Bundle]) -> None:
    """An unseen id with a timestamp goes through the out-of-vocabulary row and says so."""
    result = recommender.retrieve(bundles("multitask"), [{"buyer": "new-buyer", "ts": 1_700_000_000}], 5, [[]])[0]
    assert result["fallback"] == "other_features" and result["unknown_features"] == ["buyer"]
    assert len(result["product_ids"]) == 5


def test_cold_buyer_gets_popularity_and_the_average_buyer(bundles: Callable[[str], Bundle]) -> None:
    """An unseen id and nothing else: the most popular products for retrieval, the average buyer for ranking."""
    bundle = bundles("multitask")
    result = recommender.retrieve(bundle, [{"buyer": "new-buyer"}], 3, [[]])[0]
    popular = bundle.product_ids[np.argsort(-bundle.train_counts, kind="stable")[:3]].tolist()
    assert result == {
        "product_ids": popular,
        "scores": bundle.train_counts[np.argsort(-bundle.train_counts, kind="stable")[:3]].astype(float).tolist(),
        "fallback": "popularity",
        "unknown_features": ["buyer"],
    }
    ranked = recommender.rank(bundle, [{"buyer": None}], [["p1"]])[0]
    expected = bundle.rate(bundle.average_query[None, :], bundle.candidates[bundle.products.rows(["p1"])])
    assert ranked["fallback"] == "average_buyer" and ranked["predictions"] == pytest.approx(expected.tolist())


def test_unknown_product_in_rank_is_refused_by_name(bundles: Callable[[str], Bundle]) -> None:
    """A 422 that names the unknown ids."""
    with pytest.raises(RequestError, match=r"unknown product id.*'nope'") as caught:
        recommender.rank(bundles("multitask"), [{"buyer": "b1"}], [["p1", "nope"]])
    assert caught.value.status == 422 and caught.value.code == "unknown_product"


def test_unknown_buyer_feature_key_is_refused(bundles: Callable[[str], Bundle]) -> None:
    """A key the model does not read (a typo) is a 422 listing the keys it does read."""
    with pytest.raises(RequestError, match=r"unknown buyer feature.*'buyr'.*reads: buyer, ts"):
        recommender.retrieve(bundles("multitask"), [{"buyr": "b1"}], 5, [[]])


@pytest.mark.parametrize(
    "model_type, call, signature",
    [
        ("retrieval", lambda b: recommender.rank(b, [{"buyer": "b1"}], [["p1"]]), "serve_ranking"),
        ("ranking", lambda b: recommender.retrieve(b, [{"buyer": "b1"}], 5, [[]]), "serving_default"),
        ("ranking", lambda b: recommender.recommend(b, [{"buyer": "b1"}], 5, [[]]), "serving_default"),
    ],
)
def test_a_missing_signature_is_a_404(bundles: Callable[[str], Bundle], model_type: str, call, signature: str) -> None:
    """Calling a signature the bundle lacks says which ones it has."""
    with pytest.raises(RequestError, match=f"no '{signature}' signature") as caught:
        call(bundles(model_type))
    assert caught.value.status == 404


def test_ranking_only_bundle_ranks_from_its_candidate_embeddings(
    cases: Callable[[str], Case], bundles: Callable[[str], Bundle]
) -> None:
    """A ranking model's bundle serves predictions equal to the engine's."""
    case, bundle = cases("ranking"), bundles("ranking")
    queries, candidates = _engine_embeddings(case)
    rows = case.result.data.test
    expected = case.result.trained.model.predict_rating(queries[rows.query], candidates[rows.product]).detach().numpy()
    buyers = [case.raw_buyer(r) for r in case.interactions.test]
    served = recommender.rank(
        bundle, buyers, [[p] for p in case.result.data.product_ids[rows.product.numpy()].tolist()]
    )
    assert np.abs(np.array([s["predictions"][0] for s in served]) - expected).max() < 1e-5
