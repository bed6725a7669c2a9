"""Evaluate a trained model on a split: full-catalog retrieval metrics (all, repeat and explore interactions,
cold and warm buyers) beside the four list baselines, and rating errors beside a mean-predictor baseline.

Counting: `recall_at_K` is over every interaction of the split, nothing excluded. `repeat_` keeps the
interactions whose buyer bought the product in training, ranked in full lists. `explore_` keeps the others
and ranks them in lists without the buyer's past products. With `evaluation.exclude_seen` the headline keys
(`recall_at_K`, the baselines' `{name}_recall_at_K`) are counted the explore way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from tandem.evaluation.baselines import Baselines
from tandem.evaluation.ease_fit import fit_ease
from tandem.evaluation.metrics import (
    BASELINES,
    COLD,
    EXPLORE,
    REPEAT,
    WARM,
    coverage,
    list_ranks,
    rating_metrics,
    retrieval_metrics,
)
from tandem.evaluation.topk import top_k, true_ranks
from tandem.models.two_tower import TwoTowerModel
from tandem.spec import EvaluationSpec
from tandem.training.dataset import EncodedData, SplitRows


@dataclass(frozen=True)
class SplitPairs:
    """A split's interactions as the evaluation sees them: [n] arrays aligned with the split's rows."""

    query: np.ndarray  # query row
    buyer: np.ndarray  # buyer code
    product: np.ndarray  # product index
    repeat: np.ndarray  # bool: the buyer bought the product in training
    warm: np.ndarray  # bool: the buyer bought anything in training

    @classmethod
    def of(cls, data: EncodedData, rows: SplitRows) -> SplitPairs:
        query = rows.query.numpy()
        buyer, product = data.query_buyer[query], rows.product.numpy()
        warm = np.diff(data.history.indptr)[buyer] > 0
        return cls(query, buyer, product, data.history.bought(buyer, product), warm)


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


def model_metrics(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    data: EncodedData,
    pairs: SplitPairs,
    evaluation: EvaluationSpec,
    prefix: str = "",
    *,
    breakdown: bool = False,
) -> dict[str, float]:
    """The model's retrieval metrics from full-catalog ranks; breakdown adds repeat, explore, cold and warm."""
    ks, explore_on = evaluation.ks, evaluation.exclude_seen or breakdown
    ranks = true_ranks(queries, candidates, pairs.query, pairs.product)
    seen = data.seen() if explore_on else None
    new = ~pairs.repeat
    explore = (
        true_ranks(queries, candidates, pairs.query[new], pairs.product[new], exclude=seen) if explore_on else None
    )
    metrics = retrieval_metrics(explore if evaluation.exclude_seen else ranks, ks, prefix)
    used = np.unique(pairs.query)
    hidden = _sub_csr(seen, used) if evaluation.exclude_seen else None
    _, top = top_k(queries[torch.from_numpy(used).to(queries.device)], candidates, max(ks), exclude=hidden)
    metrics.update(coverage(top, candidates.shape[0], ks, prefix))
    if breakdown:
        metrics.update(retrieval_metrics(ranks[pairs.repeat], ks, prefix + REPEAT, mrr=False))
        metrics.update(retrieval_metrics(explore, ks, prefix + EXPLORE, mrr=False))
        if not pairs.warm.all():  # with every buyer warm the split adds nothing to the whole
            metrics.update(retrieval_metrics(ranks[~pairs.warm], ks, prefix + COLD, mrr=False))
            metrics.update(retrieval_metrics(ranks[pairs.warm], ks, prefix + WARM, mrr=False))
    return metrics


def list_metrics(
    full: np.ndarray,
    explore: np.ndarray,
    list_of: np.ndarray,
    pairs: SplitPairs,
    evaluation: EvaluationSpec,
    prefix: str,
) -> dict[str, float]:
    """Recall and NDCG of per-buyer lists: all (or explore-counted with exclude_seen), repeat and explore.

    full, explore: [L, k] lists with and without each buyer's past products; list_of: [n] each pair's list row."""
    ks, new = evaluation.ks, ~pairs.repeat
    all_ranks = list_ranks(full, list_of, pairs.product)
    explore_ranks = list_ranks(explore, list_of[new], pairs.product[new])
    metrics = retrieval_metrics(explore_ranks if evaluation.exclude_seen else all_ranks, ks, prefix, mrr=False)
    metrics.update(retrieval_metrics(all_ranks[pairs.repeat], ks, prefix + REPEAT, mrr=False))
    metrics.update(retrieval_metrics(explore_ranks, ks, prefix + EXPLORE, mrr=False))
    return metrics


def baseline_metrics(
    data: EncodedData,
    pairs: SplitPairs,
    evaluation: EvaluationSpec,
    prefix: str = "",
    baselines: Baselines | None = None,
) -> dict:
    """Recall and NDCG of every baseline's lists: all (or explore-counted with exclude_seen), repeat, explore.
    baselines: the baselines of `data`'s training split, when already made (else EASE is fitted here)."""
    k = max(evaluation.ks)
    if baselines is None:
        ease = partial(fit_ease, data.history, data.train_counts, evaluation.ease_lambda, evaluation.ease_products)
        baselines = Baselines(data.history, data.train_counts, ease)
    buyers, list_of = np.unique(pairs.buyer, return_inverse=True)
    metrics: dict[str, float] = {}
    explore_lists: dict[str, np.ndarray] = {}  # two baselines share each explore list: made once
    for name in BASELINES:
        same = Baselines.explore_alike.get(name, name)
        if same not in explore_lists:
            explore_lists[same] = baselines.lists(same, buyers, k, explore=True)
        full = baselines.lists(name, buyers, k)
        metrics.update(list_metrics(full, explore_lists[same], list_of, pairs, evaluation, f"{prefix}{name}_"))
    return metrics


def mean_baseline_rmse(train_labels: torch.Tensor, labels: torch.Tensor) -> float:
    """The RMSE of predicting the training split's mean target for every row: what a ranking model must beat."""
    mean = float(train_labels.double().mean())
    return rating_metrics(np.full(len(labels), mean), labels.numpy())["rmse"]


def evaluate_split(
    model: TwoTowerModel,
    data: EncodedData,
    rows: SplitRows,
    evaluation: EvaluationSpec,
    *,
    retrieval_prefix: str = "",
    rating_prefix: str = "",
    baseline: bool = True,
    breakdown: bool = False,
    device: str = "cpu",
) -> dict[str, float]:
    """Metrics of `model` on `rows`, keys prefixed as asked (e.g. 'val_' or 'test_').

    baseline: also score the four baselines; breakdown: also the repeat, explore, cold and warm subsets.
    """
    if len(rows) == 0:
        return {}
    model.eval()
    queries = embed(model.query_tower, data.query_table, device)
    candidates = embed(model.candidate_tower, data.catalog, device)
    metrics: dict[str, float] = {}
    if model.spec.measures_retrieval:
        pairs = SplitPairs.of(data, rows)
        metrics.update(
            model_metrics(queries, candidates, data, pairs, evaluation, retrieval_prefix, breakdown=breakdown)
        )
        if baseline:
            metrics.update(baseline_metrics(data, pairs, evaluation, retrieval_prefix))
    if model.spec.measures_ranking and rows.labels is not None:
        predictions = predict_pairs(model, queries, candidates, rows)
        metrics.update(rating_metrics(predictions, rows.labels.numpy(), rating_prefix))
        if baseline and data.train.labels is not None and len(data.train):
            metrics[f"{rating_prefix}rmse_mean_baseline"] = mean_baseline_rmse(data.train.labels, rows.labels)
    model.train()
    return metrics


def _sub_csr(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = csr
    counts = indptr[rows + 1] - indptr[rows]
    parts = [indices[indptr[r] : indptr[r + 1]] for r in rows]
    return np.concatenate([[0], np.cumsum(counts)]), (np.concatenate(parts) if parts else np.zeros(0, np.int64))
