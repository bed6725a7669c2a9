"""Tasks own a loss: in-batch softmax retrieval and ranking regression/classification.

The retrieval loss is TensorFlow Recommenders' in-batch softmax (each row's positive is its own product;
every other row's product is a negative), computed exactly but over the *distinct* queries and products of
the batch: a batch of B rows with Uq distinct query rows and Uc distinct products costs O(Uq × Uc × d)
instead of O(B² × d). The duplicate columns of the B × B form are folded in as `log(count)` per distinct
product, which is the same sum of exponentials.

The same loss over other candidate sets: `catalog_candidates` gives every product of the catalog once (a full
softmax, count 1 each, no sampling to correct), or, for catalogs above a size, a uniform sample shared by the
batch plus the batch's own products.
"""

from __future__ import annotations

import torch
from torch import nn


def in_batch_softmax_loss(
    scores: torch.Tensor,
    query_index: torch.Tensor,
    candidate_index: torch.Tensor,
    candidate_counts: torch.Tensor,
    *,
    candidate_log_q: torch.Tensor | None = None,
    remove_accidental_hits: bool = False,
) -> torch.Tensor:
    """Per-row in-batch softmax cross-entropy from distinct-row scores.

    scores: [Uq, Uc] logits of distinct queries against distinct candidates (temperature applied).
    query_index, candidate_index: [B] each row's distinct query and candidate.
    candidate_counts: [Uc] how many rows of the batch hold each distinct candidate.
    candidate_log_q: [Uc] log sampling probabilities, subtracted from every logit (log-Q correction).
    With `remove_accidental_hits`, the other rows holding a row's own product are not its negatives (as in
    TensorFlow Recommenders, the row's own column stays). Returns [B] losses.
    """
    # One column bias carries both the duplicate count and the log-Q correction, so the [Uq, Uc] matrix
    # is passed over once before the log-sum-exp.
    bias = candidate_counts.to(scores.dtype).log()
    if candidate_log_q is not None:
        bias = bias - candidate_log_q
    lse = torch.logsumexp(scores + bias.unsqueeze(0), dim=1)  # [Uq]
    positive = scores[query_index, candidate_index]  # [B]
    if candidate_log_q is not None:
        positive = positive - candidate_log_q[candidate_index]
    row_lse = lse[query_index]
    if remove_accidental_hits:
        # Drop (count - 1) copies of the row's own product from its denominator: exp(lse) - (n - 1) exp(pos).
        extra = (candidate_counts[candidate_index] - 1).to(scores.dtype)
        share = extra * torch.exp(positive - row_lse)
        row_lse = row_lse + torch.log1p(-share.clamp(max=1 - 1e-7))
    return row_lse - positive


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
        scores = query_embeddings @ candidate_embeddings.T
        losses = in_batch_softmax_loss(
            scores,
            query_index,
            candidate_index,
            candidate_counts,
            candidate_log_q=candidate_log_q,
            remove_accidental_hits=self.remove_accidental_hits,
        )
        return losses.sum() if self.reduction == "sum" else losses.mean()


class RankingTask(nn.Module):
    """A ranking loss on predicted scores: mean squared error, Huber, or binary cross-entropy on logits."""

    def __init__(self, loss: str = "mse", *, huber_delta: float = 1.0) -> None:
        super().__init__()
        self.loss = loss
        self.huber_delta = huber_delta

    def forward(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """predictions, labels: [B]; for 'bce', predictions are logits."""
        if self.loss == "mse":
            return nn.functional.mse_loss(predictions, labels)
        if self.loss == "huber":
            return nn.functional.huber_loss(predictions, labels, delta=self.huber_delta)
        return nn.functional.binary_cross_entropy_with_logits(predictions, labels)

    def output(self, predictions: torch.Tensor) -> torch.Tensor:
        """Turn raw head outputs into predictions on the target's scale."""
        return torch.sigmoid(predictions) if self.loss == "bce" else predictions
