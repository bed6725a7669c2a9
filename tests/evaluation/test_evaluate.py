"""Evaluating a model on a split: full-catalog metrics (optionally excluding seen products) and the popularity
baseline, against brute-force loops over the model's own embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tandem.evaluation.evaluate import embed, evaluate_split, popularity_ranks
from tandem.run import prepare
from tandem.spec import load_spec


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


def _brute_force_ranks(scores: list[list[float]], rows, hidden: list[set[int]] | None) -> list[int]:
    ranks = []
    for q, t in zip(rows.query.tolist(), rows.product.tolist(), strict=True):
        skip = (hidden[q] - {t}) if hidden is not None else set()
        ranks.append(sum(1 for j, s in enumerate(scores[q]) if j not in skip and s > scores[q][t]))
    return ranks


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_test_metrics_match_a_brute_force_ranking_of_the_model_scores(untrained, exclude_seen):
    """recall@K, NDCG@K, MRR and coverage@K equal loops over the model's scores, with or without seen products."""
    spec, model, data = untrained
    spec.evaluation.exclude_seen = exclude_seen
    metrics = evaluate_split(model, data, data.test, spec.evaluation, baseline=False)

    with torch.no_grad():
        scores = (embed(model.query_tower, data.query_table) @ embed(model.candidate_tower, data.catalog).T).tolist()
    hidden = _seen_by_query(data) if exclude_seen else None
    ranks = _brute_force_ranks(scores, data.test, hidden)
    n = len(ranks)
    for k in spec.evaluation.ks:
        assert metrics[f"recall_at_{k}"] == pytest.approx(sum(r < k for r in ranks) / n)
        assert metrics[f"ndcg_at_{k}"] == pytest.approx(sum(1 / math.log2(r + 2) for r in ranks if r < k) / n)
        top_items = set()
        for q in sorted(set(data.test.query.tolist())):
            allowed = [j for j in range(len(scores[q])) if hidden is None or j not in hidden[q]]
            top_items.update(sorted(allowed, key=lambda j: -scores[q][j])[:k])
        assert metrics[f"coverage_at_{k}"] == pytest.approx(len(top_items) / len(data.product_ids))
    assert metrics["mrr"] == pytest.approx(sum(1 / (r + 1) for r in ranks) / n)


def test_excluding_seen_products_can_only_raise_recall(untrained):
    """Hiding other seen products never pushes a true product down, so recall@K does not fall."""
    spec, model, data = untrained
    plain = evaluate_split(model, data, data.test, spec.evaluation, baseline=False)
    spec.evaluation.exclude_seen = True
    excluded = evaluate_split(model, data, data.test, spec.evaluation, baseline=False)
    for k in spec.evaluation.ks:
        assert excluded[f"recall_at_{k}"] >= plain[f"recall_at_{k}"]
    assert excluded["mrr"] > plain["mrr"]


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_popularity_baseline_ranks_products_by_training_count(untrained, exclude_seen):
    """The baseline's rank of a product counts the products bought strictly more often in training."""
    _, _, data = untrained
    counts = [0] * len(data.product_ids)
    for p in data.train.product.tolist():
        counts[p] += 1
    hidden = _seen_by_query(data) if exclude_seen else None
    exclude = data.seen() if exclude_seen else None

    ranks = popularity_ranks(data, data.test, exclude)

    expected = _brute_force_ranks([counts] * len(data.query_buyer), data.test, hidden)
    assert ranks.tolist() == expected


def test_popularity_baseline_metrics_are_reported_with_a_prefix(untrained):
    """With the baseline on, popularity_ metrics sit beside the model's."""
    spec, model, data = untrained
    metrics = evaluate_split(model, data, data.test, spec.evaluation, baseline=True)
    assert {"popularity_recall_at_10", "popularity_mrr", "recall_at_10"} <= set(metrics)


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


def test_an_empty_split_has_no_metrics(untrained):
    """Evaluating a split with no rows gives an empty dict."""
    spec, model, data = untrained
    empty = type(data.test)(data.test.query[:0], data.test.product[:0], None)
    assert evaluate_split(model, data, empty, spec.evaluation) == {}
