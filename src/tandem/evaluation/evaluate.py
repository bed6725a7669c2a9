"""Evaluate a trained model on a split: full-catalog retrieval metrics beside a most-popular baseline,
and rating errors."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tandem.evaluation.metrics import coverage, rating_metrics, retrieval_metrics
from tandem.evaluation.topk import top_k, true_ranks
from tandem.models.two_tower import TwoTowerModel
from tandem.spec import EvaluationSpec
from tandem.training.dataset import EncodedData, SplitRows


@torch.no_grad()
def embed(tower: nn.Module, table: dict[str, torch.Tensor], device: str = "cpu", batch: int = 65_536) -> torch.Tensor:
    """Run a tower over every row of an encoded table, in batches: [N, d]."""
    n = len(next(iter(table.values())))
    parts = [tower({k: v[i : i + batch].to(device) for k, v in table.items()}) for i in range(0, n, batch)]
    return torch.cat(parts) if parts else torch.zeros(0, getattr(tower, "output_dim", 1), device=device)


@torch.no_grad()
def predict_pairs(
    model: TwoTowerModel, queries: torch.Tensor, candidates: torch.Tensor, rows: SplitRows, batch: int = 65_536
) -> np.ndarray:
    """Rating predictions for a split's rows, given all query and candidate embeddings."""
    out = []
    for i in range(0, len(rows), batch):
        q = queries[rows.query[i : i + batch].to(queries.device)]
        c = candidates[rows.product[i : i + batch].to(candidates.device)]
        out.append(model.predict_rating(q, c).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def popularity_ranks(data: EncodedData, rows: SplitRows, exclude: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Ranks under a most-popular baseline: every buyer gets products by training popularity."""
    counts = torch.from_numpy(data.train_counts.astype(np.float64)).unsqueeze(1)
    if exclude is None:  # every buyer sees the same ranking: one query row serves them all
        query_of = np.zeros(len(rows), dtype=np.int64)
        return true_ranks(torch.ones(1, 1, dtype=torch.float64), counts, query_of, rows.product.numpy())
    ones = torch.ones(len(data.query_buyer), 1, dtype=torch.float64)
    return true_ranks(ones, counts, rows.query.numpy(), rows.product.numpy(), exclude=exclude)


def evaluate_split(
    model: TwoTowerModel,
    data: EncodedData,
    rows: SplitRows,
    evaluation: EvaluationSpec,
    *,
    retrieval_prefix: str = "",
    rating_prefix: str = "",
    baseline: bool = True,
    device: str = "cpu",
) -> dict[str, float]:
    """Metrics of `model` on `rows`, keys prefixed as asked (e.g. 'val_' or 'test_')."""
    if len(rows) == 0:
        return {}
    model.eval()
    queries = embed(model.query_tower, data.query_table, device)
    candidates = embed(model.candidate_tower, data.catalog, device)
    metrics: dict[str, float] = {}
    exclude = data.seen() if evaluation.exclude_seen and model.has_retrieval else None
    if model.has_retrieval:
        ranks = true_ranks(queries, candidates, rows.query.numpy(), rows.product.numpy(), exclude=exclude)
        metrics.update(retrieval_metrics(ranks, evaluation.ks, retrieval_prefix))
        used = np.unique(rows.query.numpy())
        sub_exclude = _sub_csr(exclude, used) if exclude is not None else None
        _, top = top_k(
            queries[torch.from_numpy(used).to(queries.device)], candidates, max(evaluation.ks), exclude=sub_exclude
        )
        metrics.update(coverage(top, candidates.shape[0], evaluation.ks, retrieval_prefix))
        if baseline:
            pop = popularity_ranks(data, rows, exclude)
            metrics.update(retrieval_metrics(pop, evaluation.ks, retrieval_prefix + "popularity_"))
    if model.has_ranking and rows.labels is not None:
        predictions = predict_pairs(model, queries, candidates, rows)
        metrics.update(rating_metrics(predictions, rows.labels.numpy(), rating_prefix))
    model.train()
    return metrics


def _sub_csr(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = csr
    counts = indptr[rows + 1] - indptr[rows]
    parts = [indices[indptr[r] : indptr[r + 1]] for r in rows]
    return np.concatenate([[0], np.cumsum(counts)]), (np.concatenate(parts) if parts else np.zeros(0, np.int64))
