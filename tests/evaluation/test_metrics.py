"""Retrieval metrics (recall@K, NDCG@K, MRR, coverage@K) and rating errors against plain Python loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tandem.evaluation.metrics import best_baseline, coverage, lifts, rating_metrics, retrieval_metrics
from tandem.evaluation.topk import top_k, true_ranks

KS = [1, 3, 10]


def _naive_retrieval_metrics(scores: list[list[int]], query_of, true_items, ks, seen=None) -> dict[str, float]:
    """Recall, NDCG and MRR straight from a score matrix, counting a hit when fewer than K score strictly higher."""
    recall = {k: 0.0 for k in ks}
    ndcg = {k: 0.0 for k in ks}
    rr = 0.0
    n = len(query_of)
    for q, t in zip(query_of, true_items, strict=True):
        hidden = set(seen[q]) - {t} if seen is not None else set()
        higher = sum(1 for j, s in enumerate(scores[q]) if j not in hidden and s > scores[q][t])
        for k in ks:
            if higher < k:
                recall[k] += 1 / n
                ndcg[k] += 1 / math.log2(higher + 2) / n
        rr += 1 / (higher + 1) / n
    out = {}
    for k in ks:
        out[f"recall_at_{k}"] = recall[k]
        out[f"ndcg_at_{k}"] = ndcg[k]
    out["mrr"] = rr
    return out


def _tied_problem(seed: int):
    """Integer embeddings (many tied scores), interactions and seen lists."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(-1, 2, size=(6, 2))
    candidates = rng.integers(-1, 2, size=(11, 2))
    query_of = rng.integers(0, 6, size=40)
    true_items = rng.integers(0, 11, size=40)
    seen = [rng.choice(11, size=3, replace=False).tolist() for _ in range(6)]
    return queries, candidates, query_of, true_items, seen


def _csr(lists):
    indptr = np.cumsum([0] + [len(x) for x in lists])
    return indptr.astype(np.int64), np.array([c for x in lists for c in x], dtype=np.int64)


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_from_ranks_match_a_brute_force_count_over_scores(seed, exclude_seen):
    """Recall@K, NDCG@K and MRR from `true_ranks` equal a brute-force count over the scores, ties included."""
    queries, candidates, query_of, true_items, seen = _tied_problem(seed)
    scores = (queries @ candidates.T).tolist()

    ranks = true_ranks(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        query_of,
        true_items,
        exclude=_csr(seen) if exclude_seen else None,
        block_elements=22,
    )
    got = retrieval_metrics(ranks, KS)

    expected = _naive_retrieval_metrics(scores, query_of, true_items, KS, seen if exclude_seen else None)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_a_tie_with_the_true_item_still_counts_as_a_hit_at_one():
    """When every candidate ties with the true item, it is a hit at K = 1 with reciprocal rank 1."""
    queries = torch.ones(1, 2)
    candidates = torch.ones(5, 2)
    ranks = true_ranks(queries, candidates, np.array([0, 0]), np.array([2, 4]))
    metrics = retrieval_metrics(ranks, [1])
    assert metrics == {"recall_at_1": 1.0, "ndcg_at_1": 1.0, "mrr": 1.0}


def test_retrieval_metrics_of_hand_picked_ranks():
    """Ranks 0, 1, 4 and 9 give the recall, NDCG and MRR worked out by hand."""
    metrics = retrieval_metrics(np.array([0, 1, 4, 9]), [2, 5])
    assert metrics["recall_at_2"] == 0.5
    assert metrics["recall_at_5"] == 0.75
    assert metrics["ndcg_at_2"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert metrics["ndcg_at_5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 4)


def test_retrieval_metrics_prefix_every_key():
    """A prefix is put in front of every metric name."""
    metrics = retrieval_metrics(np.array([0, 3]), [1, 5], prefix="val_")
    assert set(metrics) == {"val_recall_at_1", "val_ndcg_at_1", "val_recall_at_5", "val_ndcg_at_5", "val_mrr"}


def test_retrieval_metrics_of_no_interactions_are_empty():
    """No ranks give no metrics rather than NaN."""
    assert retrieval_metrics(np.zeros(0, np.int64), [1, 5]) == {}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_is_the_share_of_the_catalog_in_any_top_k(seed):
    """Coverage@K counts the distinct candidates that appear in at least one query's first K results."""
    rng = np.random.default_rng(seed)
    n_candidates = 30
    top = rng.integers(0, n_candidates, size=(7, 10))
    got = coverage(top, n_candidates, [1, 4, 10], prefix="test_")
    for k in (1, 4, 10):
        distinct = set()
        for row in top.tolist():
            distinct.update(row[:k])
        assert got[f"test_coverage_at_{k}"] == pytest.approx(len(distinct) / n_candidates)


def test_coverage_from_top_k_with_exclusions_counts_only_retrievable_items():
    """Coverage computed from excluded top-k lists never counts a candidate every query has seen."""
    rng = np.random.default_rng(3)
    queries = torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float32)
    candidates = torch.tensor(rng.normal(size=(8, 3)), dtype=torch.float32)
    seen = [[0, 1]] * 5  # every query has seen candidates 0 and 1
    _, top = top_k(queries, candidates, 6, exclude=_csr(seen))
    got = coverage(top, 8, [6])["coverage_at_6"]
    assert got == pytest.approx(len({c for row in top.tolist() for c in row}) / 8)
    assert got <= 6 / 8


def test_coverage_of_an_empty_catalog_is_zero():
    """An empty catalog has zero coverage instead of a division by zero."""
    assert coverage(np.zeros((0, 0), np.int64), 0, [5]) == {"coverage_at_5": 0.0}


def test_rating_metrics_are_root_mean_squared_and_mean_absolute_error():
    """RMSE and MAE equal their formulas computed with a loop."""
    rng = np.random.default_rng(0)
    predictions = rng.normal(3, 1, size=50)
    targets = rng.integers(1, 6, size=50).astype(float)
    squared = sum((p - t) ** 2 for p, t in zip(predictions, targets, strict=True)) / 50
    absolute = sum(abs(p - t) for p, t in zip(predictions, targets, strict=True)) / 50
    got = rating_metrics(predictions.astype(np.float32), targets, prefix="test_")
    assert got["test_rmse"] == pytest.approx(math.sqrt(squared), rel=1e-6)
    assert got["test_mae"] == pytest.approx(absolute, rel=1e-6)


def test_rating_metrics_of_no_targets_are_empty():
    """No targets give no rating metrics."""
    assert rating_metrics(np.zeros(0), np.zeros(0)) == {}


def test_best_baseline_is_the_highest_and_the_first_listed_on_ties():
    """best_baseline picks the highest value of one metric; ties go to the earlier baseline in BASELINES."""
    metrics = {"popularity_recall_at_10": 0.2, "buy_again_recall_at_10": 0.4, "ease_recall_at_10": 0.4}
    assert best_baseline(metrics, "recall", 10) == ("buy_again", 0.4)
    assert best_baseline(metrics, "recall", 5) is None


def test_lifts_divide_the_model_by_the_best_baseline_for_each_subset():
    """A lift row for every subset and K the model and a baseline both measured; a zero baseline has no lift."""
    metrics = {
        "recall_at_10": 0.3,
        "ease_recall_at_10": 0.2,
        "explore_recall_at_10": 0.1,
        "popularity_explore_recall_at_10": 0.0,
        "repeat_recall_at_10": 0.5,
    }
    rows = lifts(metrics, [10])
    assert [(r.subset, r.k, r.model, r.baseline, r.baseline_value) for r in rows] == [
        ("", 10, 0.3, "ease", 0.2),
        ("explore_", 10, 0.1, "popularity", 0.0),
    ]
    assert rows[0].lift == pytest.approx(1.5)
    assert rows[1].lift is None
