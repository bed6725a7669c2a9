"""Metrics from ranks and predictions: recall@K, NDCG@K, MRR, catalog coverage@K, RMSE and MAE."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(ranks: np.ndarray, ks: list[int], prefix: str = "") -> dict[str, float]:
    """Recall@K (the share of interactions whose product ranks within the top K), NDCG@K and MRR.

    With one relevant product per interaction, NDCG@K is 1 / log2(rank + 2) inside the top K, else 0.
    """
    if len(ranks) == 0:
        return {}
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"{prefix}recall_at_{k}"] = float(hit.mean())
        out[f"{prefix}ndcg_at_{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
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
