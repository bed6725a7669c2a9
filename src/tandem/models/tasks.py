"""Tasks own a loss: in-batch softmax retrieval, and ranking by regression, classification, pairs or lists.

The retrieval loss is TensorFlow Recommenders' in-batch softmax (each row's positive is its own product;
every other row's product is a negative), computed exactly but over the *distinct* queries and products of
the batch: a batch of B rows with Uq distinct query rows and Uc distinct products costs O(Uq × Uc × d)
instead of O(B² × d). The duplicate columns of the B × B form are folded in as `log(count)` per distinct
product, which is the same sum of exponentials. It is computed a block of queries at a time, so the
[Uq, Uc] score matrix never exists whole (`blocked_softmax.py`).

The same loss over other candidate sets: `catalog_candidates` gives every product of the catalog once (a full
softmax, count 1 each, no sampling to correct), or, for catalogs above a size, a uniform sample shared by the
batch plus the batch's own products.
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.models.blocked_softmax import blocked_softmax_loss


def catalog_candidates(
    products: torch.Tensor, n_catalog: int, *, max_products: int, sampled: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates for a softmax over the catalog: (catalog rows [Uc], each batch row's candidate [B]).

    products: [B] catalog rows of the batch's positives. The whole catalog when it has at most `max_products`
    rows; otherwise `sampled` rows drawn uniformly without replacement, plus the positives. Each candidate is
    listed once, so its count is 1.
    """
    if n_catalog <= max_products:
        return torch.arange(n_catalog), products
    drawn = torch.randperm(n_catalog, generator=generator)[:sampled]
    rows, inverse = torch.unique(torch.cat([products, drawn]), return_inverse=True)
    return rows, inverse[: len(products)]


class RetrievalTask(nn.Module):
    """In-batch softmax retrieval with temperature, log-Q correction and accidental-hit removal."""

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        remove_accidental_hits: bool = False,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.remove_accidental_hits = remove_accidental_hits
        self.reduction = reduction

    def forward(
        self,
        query_embeddings: torch.Tensor,
        candidate_embeddings: torch.Tensor,
        query_index: torch.Tensor,
        candidate_index: torch.Tensor,
        candidate_counts: torch.Tensor,
        candidate_log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query_embeddings: [Uq, d]; candidate_embeddings: [Uc, d]; indexes [B]; counts, log_q: [Uc]."""
        if self.temperature != 1.0:  # scaling the [Uq, d] queries is cheaper than the [Uq, Uc] scores
            query_embeddings = query_embeddings / self.temperature
        loss = blocked_softmax_loss(
            query_embeddings,
            candidate_embeddings,
            query_index,
            candidate_index,
            candidate_counts,
            candidate_log_q=candidate_log_q,
            remove_accidental_hits=self.remove_accidental_hits,
        )
        return loss if self.reduction == "sum" else loss / len(query_index)


LIST_LOSSES = ("bpr", "hinge", "softmax", "lambdarank")


def sampled_pairs(groups: torch.Tensor, labels: torch.Tensor, negatives: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(better, worse) row indices: each row with a positive label against `negatives` rows of its own group
    with label 0, drawn uniformly with replacement (torch's generator). Groups without a zero label give none."""
    neg = torch.nonzero(labels <= 0).squeeze(1)
    pos = torch.nonzero(labels > 0).squeeze(1)
    if len(neg) == 0 or len(pos) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=labels.device)
        return empty, empty
    neg = neg[torch.argsort(groups[neg], stable=True)]
    neg_groups = groups[neg]
    start = torch.searchsorted(neg_groups, groups[pos])
    count = torch.searchsorted(neg_groups, groups[pos], right=True) - start
    pos, start, count = pos[count > 0], start[count > 0], count[count > 0]
    draw = (torch.rand(len(pos), negatives, device=labels.device) * count.unsqueeze(1)).long()
    worse = neg[start.unsqueeze(1) + draw.clamp(max=count.unsqueeze(1) - 1)]
    return pos.repeat_interleave(negatives), worse.reshape(-1)


def softmax_list_loss(scores: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """ListNet with the labels as the target distribution: per group, -sum (y_i / sum y) log softmax(s)_i;
    the mean over groups with a positive label."""
    _, g = torch.unique(groups, return_inverse=True)
    n = int(g.max()) + 1
    top = torch.full((n,), float("-inf"), dtype=scores.dtype, device=scores.device)
    top = top.scatter_reduce(0, g, scores.detach(), "amax").detach()
    lse = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add(0, g, torch.exp(scores - top[g]))
    lse = lse.log() + top
    mass = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add(0, g, labels)
    cross = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add(0, g, labels * (lse[g] - scores))
    kept = mass > 0
    return (cross[kept] / mass[kept]).mean() if kept.any() else scores.sum() * 0.0


def _ranks_in_group(scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """0-based position of each row when its group is sorted by score, best first (ties by row order)."""
    by_score = torch.argsort(-scores.detach(), stable=True)
    order = by_score[torch.argsort(groups[by_score], stable=True)]
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups)
    ranks = torch.empty_like(groups)
    ranks[order] = torch.arange(len(order), device=groups.device) - first
    return ranks


def _ideal_dcg(labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per row: the best DCG its group could reach with linear gains."""
    ranks = _ranks_in_group(labels, groups)
    _, g = torch.unique(groups, return_inverse=True)
    gains = labels / torch.log2(ranks.to(labels.dtype) + 2.0)
    return torch.zeros(int(g.max()) + 1, dtype=labels.dtype, device=labels.device).index_add(0, g, gains)[g]


def lambdarank_loss(
    scores: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, better: torch.Tensor, worse: torch.Tensor
) -> torch.Tensor:
    """LambdaRank: the pairwise logistic loss of each (better, worse) pair weighted by how much NDCG would
    change if the two swapped places in the current ranking, |Δgain × Δdiscount| / ideal DCG; mean over pairs."""
    if len(better) == 0:
        return scores.sum() * 0.0
    discount = 1.0 / torch.log2(_ranks_in_group(scores, groups).to(scores.dtype) + 2.0)
    ideal = _ideal_dcg(labels, groups)[better]
    weight = (labels[better] - labels[worse]).abs() * (discount[better] - discount[worse]).abs() / ideal
    return (weight * nn.functional.softplus(scores[worse] - scores[better])).mean()


class RankingTask(nn.Module):
    """A ranking loss on predicted scores: pointwise (mean squared error, Huber, binary cross-entropy on logits),
    pairwise over sampled negatives of the same group (BPR, hinge), or listwise per group (softmax / ListNet,
    LambdaRank). A group is the rows of one buyer: the list the ranking is judged on."""

    def __init__(self, loss: str = "mse", *, huber_delta: float = 1.0, negatives: int = 4, margin: float = 1.0) -> None:
        super().__init__()
        self.loss = loss
        self.huber_delta = huber_delta
        self.negatives = negatives
        self.margin = margin

    def forward(
        self, predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor | None = None
    ) -> torch.Tensor:
        """predictions, labels: [B]; for 'bce', predictions are logits. groups: [B] group of each row, needed
        by the pairwise and listwise losses."""
        if self.loss == "mse":
            return nn.functional.mse_loss(predictions, labels)
        if self.loss == "huber":
            return nn.functional.huber_loss(predictions, labels, delta=self.huber_delta)
        if self.loss == "bce":
            return nn.functional.binary_cross_entropy_with_logits(predictions, labels)
        if groups is None:
            raise ValueError(f"ranking loss '{self.loss}' compares rows of a group; no groups were given")
        if self.loss == "softmax":
            return softmax_list_loss(predictions, labels, groups)
        better, worse = sampled_pairs(groups, labels, self.negatives)
        if self.loss == "lambdarank":
            return lambdarank_loss(predictions, labels, groups, better, worse)
        if len(better) == 0:
            return predictions.sum() * 0.0
        gap = predictions[better] - predictions[worse]
        if self.loss == "bpr":
            return nn.functional.softplus(-gap).mean()
        return torch.relu(self.margin - gap).mean()

    def output(self, predictions: torch.Tensor) -> torch.Tensor:
        """Turn raw head outputs into predictions on the target's scale (list losses give scores)."""
        return torch.sigmoid(predictions) if self.loss == "bce" else predictions
