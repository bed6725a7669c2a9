"""Metrics from ranks, lists and predictions: recall@K, NDCG@K, MRR, catalog coverage@K, RMSE and MAE,
and the names they are stored under.

A key is `{source}{subset}{metric}_at_{k}`: source is empty for the model or a baseline's name and an
underscore (`buy_again_`), subset is one of SUBSETS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

BASELINES = ("popularity", "buy_again", "ease", "buy_again_ease")
# Subsets of the test interactions, as key prefixes. repeat: the buyer bought the product in training (full
# lists). explore: the other interactions, ranked in lists without the buyer's past products. cold / warm:
# buyers without / with training purchases (full lists).
ALL, REPEAT, EXPLORE, COLD, WARM = "", "repeat_", "explore_", "cold_", "warm_"
SUBSETS = (ALL, REPEAT, EXPLORE, COLD, WARM)


def metric_key(metric: str, k: int | None = None, *, source: str = "", subset: str = ALL) -> str:
    """The stored name of a metric: metric_key("recall", 10, source="ease", subset=EXPLORE) is
    'ease_explore_recall_at_10'."""
    return f"{source + '_' if source else ''}{subset}{metric}" + (f"_at_{k}" if k is not None else "")


@dataclass(frozen=True)
class Lift:
    """The model beside the best baseline on one metric: lift is model / baseline (None when it is 0)."""

    subset: str
    k: int
    model: float
    baseline: str
    baseline_value: float

    @property
    def lift(self) -> float | None:
        return self.model / self.baseline_value if self.baseline_value > 0 else None


def best_baseline(metrics: Mapping[str, float], metric: str, k: int, subset: str = ALL) -> tuple[str, float] | None:
    """(name, value) of the baseline scoring highest on one metric (the first of BASELINES on ties), or None
    when no baseline measured it."""
    found = [
        (metrics[key], -i, name)
        for i, name in enumerate(BASELINES)
        if (key := metric_key(metric, k, source=name, subset=subset)) in metrics
    ]
    if not found:
        return None
    value, _, name = max(found)
    return name, float(value)


def lifts(metrics: Mapping[str, float], ks: list[int], metric: str = "recall") -> list[Lift]:
    """The model beside its best baseline at every K, for all, repeat and explore interactions (those measured)."""
    out = []
    for subset in (ALL, REPEAT, EXPLORE):
        for k in ks:
            best = best_baseline(metrics, metric, k, subset)
            key = metric_key(metric, k, subset=subset)
            if best is not None and key in metrics:
                out.append(Lift(subset, k, float(metrics[key]), *best))
    return out


def list_ranks(lists: np.ndarray, list_of: np.ndarray, products: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Position (0 = first) of each interaction's product in its list, or the list length when absent.

    lists: [L, k] product indices (-1 pads); list_of, products: [Ni] each interaction's list row and product.
    """
    k = lists.shape[1]
    ranks = np.full(len(products), k, dtype=np.int64)
    for s in range(0, len(products), block):
        hit = lists[list_of[s : s + block]] == np.asarray(products[s : s + block])[:, None]
        found = hit.any(axis=1)
        ranks[s : s + block][found] = hit[found].argmax(axis=1)
    return ranks


def retrieval_metrics(ranks: np.ndarray, ks: list[int], prefix: str = "", *, mrr: bool = True) -> dict[str, float]:
    """Recall@K (the share of interactions whose product ranks within the top K), NDCG@K and MRR.

    With one relevant product per interaction, NDCG@K is 1 / log2(rank + 2) inside the top K, else 0.
    mrr=False leaves MRR out (ranks from truncated lists do not give it).
    """
    if len(ranks) == 0:
        return {}
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"{prefix}recall_at_{k}"] = float(hit.mean())
        out[f"{prefix}ndcg_at_{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    if mrr:
        out[f"{prefix}mrr"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def coverage(top_indices: np.ndarray, n_candidates: int, ks: list[int], prefix: str = "") -> dict[str, float]:
    """Share of the catalog that appears in at least one query's top K. top_indices: [Nq, >= max(ks)]."""
    out = {}
    for k in ks:
        out[f"{prefix}coverage_at_{k}"] = (
            float(len(np.unique(top_indices[:, :k])) / n_candidates) if n_candidates else 0.0
        )
    return out


def rating_metrics(predictions: np.ndarray, targets: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Root mean squared error and mean absolute error."""
    if len(targets) == 0:
        return {}
    err = np.asarray(predictions, dtype=np.float64) - np.asarray(targets, dtype=np.float64)
    return {f"{prefix}rmse": float(np.sqrt(np.mean(err**2))), f"{prefix}mae": float(np.mean(np.abs(err)))}
