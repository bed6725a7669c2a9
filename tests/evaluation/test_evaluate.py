"""Evaluating a model on a split: full-catalog metrics for all, repeat and explore interactions and cold and
warm buyers, against brute-force loops over the model's own embeddings, and the baselines' keys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tandem.evaluation.evaluate import embed, evaluate_split
from tandem.run import prepare
from tandem.spec import load_spec, parse_spec


@pytest.fixture
def untrained(synthetic_spec_path):
    """An untrained multitask model (random weights are enough to rank) with its encoded synthetic data."""
    spec = load_spec(synthetic_spec_path)
    _, trained, data = prepare(spec)
    return spec, trained.model, data


def _seen_by_query(data) -> list[set[int]]:
    """Products each query row's buyer bought in training, from the raw training rows."""
    bought: dict[int, set[int]] = {}
    for q, p in zip(data.train.query.tolist(), data.train.product.tolist(), strict=True):
        bought.setdefault(int(data.query_buyer[q]), set()).add(p)
    return [bought.get(int(b), set()) for b in data.query_buyer]


def _brute_force_ranks(scores: list[list[float]], pairs, hidden: list[set[int]] | None) -> list[int]:
    """Rank of each (query, product) pair: how many products its query scores strictly higher, among those
    not hidden."""
    ranks = []
    for q, t in pairs:
        skip = hidden[q] if hidden is not None else set()
        ranks.append(sum(1 for j, s in enumerate(scores[q]) if j not in skip and s > scores[q][t]))
    return ranks


def _scores(model, data) -> list[list[float]]:
    with torch.no_grad():
        return (embed(model.query_tower, data.query_table) @ embed(model.candidate_tower, data.catalog).T).tolist()


def _check(metrics: dict, prefix: str, ranks: list[int], ks: list[int]) -> None:
    n = len(ranks)
    for k in ks:
        assert metrics[f"{prefix}recall_at_{k}"] == pytest.approx(sum(r < k for r in ranks) / n)
        assert metrics[f"{prefix}ndcg_at_{k}"] == pytest.approx(sum(1 / math.log2(r + 2) for r in ranks if r < k) / n)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_test_metrics_match_a_brute_force_ranking_of_the_model_scores(untrained, exclude_seen):
    """recall@K, NDCG@K, MRR and coverage@K equal loops over the model's scores; with exclude_seen they count
    only pairs the buyer did not buy in training, ranked without the buyer's past products."""
    spec, model, data = untrained
    spec.evaluation.exclude_seen = exclude_seen
    metrics = evaluate_split(model, data, data.test, spec.evaluation, baseline=False)

    scores = _scores(model, data)
    seen = _seen_by_query(data)
    pairs = list(zip(data.test.query.tolist(), data.test.product.tolist(), strict=True))
    if exclude_seen:
        pairs = [(q, p) for q, p in pairs if p not in seen[q]]
    hidden = seen if exclude_seen else None
    ranks = _brute_force_ranks(scores, pairs, hidden)
    _check(metrics, "", ranks, spec.evaluation.ks)
    for k in spec.evaluation.ks:
        top_items = set()
        for q in sorted(set(data.test.query.tolist())):
            allowed = [j for j in range(len(scores[q])) if hidden is None or j not in hidden[q]]
            top_items.update(sorted(allowed, key=lambda j: -scores[q][j])[:k])
        assert metrics[f"coverage_at_{k}"] == pytest.approx(len(top_items) / len(data.product_ids))
    assert metrics["mrr"] == pytest.approx(sum(1 / (r + 1) for r in ranks) / len(ranks))


def test_breakdown_splits_repeat_explore_cold_and_warm_interactions(tmp_path, write_table):
    """repeat_ ranks re-orders in full lists, explore_ ranks the other pairs without the buyer's past products,
    cold_ and warm_ split by whether the buyer bought anything in training; the headline is left as it is."""
    rng = np.random.default_rng(1)
    rows = [(f"b{b}", f"p{rng.integers(0, 12)}", int(t)) for b in range(16) for t in rng.integers(0, 100, 12)]
    rows += [(f"new{b}", f"p{rng.integers(0, 12)}", 150) for b in range(4)]
    path = write_table(pd.DataFrame(rows, columns=["buyer", "product", "ts"]), "lines.csv")
    spec = parse_spec(
        {
            "data": {
                "transactions": {"path": str(path)},
                **{"buyer_id": "buyer", "product_id": "product", "timestamp": "ts"},
                "split": {"kind": "time", "cutoff": "70"},
            },
            "features": {
                "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 4}],
                "product": [{"column": "product", "transform": "id", "embedding_dim": 4}],
            },
            "model": {"type": "retrieval", "top_k": 5},
            "evaluation": {"ks": [1, 3, 5]},
        }
    )
    _, trained, data = prepare(spec)
    metrics = evaluate_split(trained.model, data, data.test, spec.evaluation, baseline=False, breakdown=True)
    scores, seen = _scores(trained.model, data), _seen_by_query(data)
    pairs = list(zip(data.test.query.tolist(), data.test.product.tolist(), strict=True))
    warm = [bool(seen[q]) for q, _ in pairs]
    repeat = [(q, p) for q, p in pairs if p in seen[q]]
    new = [(q, p) for q, p in pairs if p not in seen[q]]
    assert repeat and new and not all(warm) and any(warm)
    ks = spec.evaluation.ks
    _check(metrics, "", _brute_force_ranks(scores, pairs, None), ks)
    _check(metrics, "repeat_", _brute_force_ranks(scores, repeat, None), ks)
    _check(metrics, "explore_", _brute_force_ranks(scores, new, seen), ks)
    _check(
        metrics, "cold_", _brute_force_ranks(scores, [x for x, w in zip(pairs, warm, strict=True) if not w], None), ks
    )
    _check(metrics, "warm_", _brute_force_ranks(scores, [x for x, w in zip(pairs, warm, strict=True) if w], None), ks)


def test_every_baseline_is_reported_beside_the_model(untrained):
    """With the baseline on, each baseline's recall and NDCG (all, repeat, explore) sit beside the model's."""
    spec, model, data = untrained
    metrics = evaluate_split(model, data, data.test, spec.evaluation, baseline=True)
    for name in ("popularity", "buy_again", "ease", "buy_again_ease"):
        assert {f"{name}_recall_at_10", f"{name}_ndcg_at_10", f"{name}_explore_recall_at_10"} <= set(metrics)
    assert "recall_at_10" in metrics


def test_rating_metrics_use_the_models_predictions_for_each_row(untrained):
    """test_rmse and test_mae compare the rating head's prediction for each test pair with its label."""
    spec, model, data = untrained
    metrics = evaluate_split(model, data, data.test, spec.evaluation, rating_prefix="test_", baseline=False)
    with torch.no_grad():
        q = embed(model.query_tower, data.query_table)[data.test.query]
        c = embed(model.candidate_tower, data.catalog)[data.test.product]
        predictions = model.predict_rating(q, c).numpy().astype(np.float64)
    errors = predictions - data.test.labels.numpy()
    assert metrics["test_rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / len(errors)), rel=1e-6)
    assert metrics["test_mae"] == pytest.approx(sum(abs(e) for e in errors) / len(errors), rel=1e-6)


def test_the_mean_baseline_predicts_the_training_mean_for_every_test_row(untrained):
    """test_rmse_mean_baseline is the RMSE of the training labels' mean against each test label."""
    spec, model, data = untrained
    metrics = evaluate_split(model, data, data.test, spec.evaluation, rating_prefix="test_", baseline=True)
    train = data.train.labels.tolist()
    mean = sum(train) / len(train)
    test = data.test.labels.tolist()
    expected = math.sqrt(sum((y - mean) ** 2 for y in test) / len(test))
    assert metrics["test_rmse_mean_baseline"] == pytest.approx(expected, rel=1e-6)
    quiet = evaluate_split(model, data, data.test, spec.evaluation, rating_prefix="test_", baseline=False)
    assert "test_rmse_mean_baseline" not in quiet


def test_an_empty_split_has_no_metrics(untrained):
    """Evaluating a split with no rows gives an empty dict."""
    spec, model, data = untrained
    empty = type(data.test)(data.test.query[:0], data.test.product[:0], None)
    assert evaluate_split(model, data, empty, spec.evaluation) == {}
