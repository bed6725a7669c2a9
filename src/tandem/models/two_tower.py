"""The model: a query (buyer) tower, a candidate (product) tower, an optional rating head, and its tasks.

One class serves the three model types. `compute_loss` is the single override point, as in TensorFlow
Recommenders: retrieval-only uses the retrieval task, ranking-only the ranking task, and multitask the sum
`retrieval_weight * L_retrieval + ranking_weight * L_ranking` over the shared towers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tandem.features.pipeline import InputSpec
from tandem.models.tasks import RankingTask, RetrievalTask
from tandem.models.towers import Tower, mlp
from tandem.spec import ModelSpec


@dataclass
class Batch:
    """One training batch in distinct-row form.

    query_inputs: encoded inputs of the Uq distinct query rows; query_index: [B] row → distinct query.
    candidate_inputs: encoded inputs of the Uc distinct products; candidate_index: [B] row → distinct product.
    candidate_counts: [Uc] rows per distinct product; candidate_log_q: [Uc] log sampling probability or None.
    labels: [B] ranking targets or None.
    leave_out: per history bag, each row's own (table row [B], weight [B]) to take out of its query's bag; then
    every row is embedded as its own query.
    candidate_rows: [Uc] catalog row of each distinct product. With data-parallel training a batch is one rank's
    share of the global batch: `share` is its fraction of the global rows (mean losses are weighted by it), and
    `gather_candidates` (see `tandem.training.distributed.global_candidates`) turns the rank's distinct
    candidates into the global batch's, so the softmax is the one-process softmax.
    """

    query_inputs: dict[str, torch.Tensor]
    query_index: torch.Tensor
    candidate_inputs: dict[str, torch.Tensor]
    candidate_index: torch.Tensor
    candidate_counts: torch.Tensor
    candidate_log_q: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    leave_out: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    candidate_rows: torch.Tensor | None = None
    share: float = 1.0
    gather_candidates: Callable[..., tuple[torch.Tensor, ...]] | None = None


class TwoTowerModel(nn.Module):
    """Shared buyer and product towers with a retrieval task, a ranking task, or both."""

    def __init__(
        self, spec: ModelSpec, query_inputs: list[InputSpec], candidate_inputs: list[InputSpec], *, sparse: bool = False
    ) -> None:
        super().__init__()
        self.spec = spec
        common = dict(
            activation=spec.activation, dropout=spec.dropout, init_scale=spec.embedding_init_scale, sparse=sparse
        )
        self.query_tower = Tower(query_inputs, spec.buyer_tower_layers, normalize=spec.normalize_embeddings, **common)
        self.candidate_tower = Tower(
            candidate_inputs, spec.product_tower_layers, normalize=spec.normalize_embeddings, **common
        )
        self.query_tower.share_tables(self.candidate_tower)
        if self.query_tower.output_dim != self.candidate_tower.output_dim:
            raise ValueError(
                f"the towers' output sizes differ (buyer {self.query_tower.output_dim}, product "
                f"{self.candidate_tower.output_dim}); set the last tower layers or the embedding dims to agree"
            )
        self.retrieval_weight = {"retrieval": 1.0, "ranking": 0.0}.get(spec.type, spec.retrieval_weight)
        self.ranking_weight = {"retrieval": 0.0, "ranking": 1.0}.get(spec.type, spec.ranking_weight)
        self.retrieval_task = RetrievalTask(
            temperature=spec.temperature,
            remove_accidental_hits=spec.remove_accidental_hits,
            reduction=spec.retrieval_loss_reduction,
        )
        self.ranking_task = RankingTask(spec.ranking_loss, huber_delta=spec.huber_delta)
        self.rating_head: nn.Sequential | None = None
        if spec.type != "retrieval":  # a zero-weight ranking task still has its head, so its loss can be logged
            dim = self.query_tower.output_dim
            head_in = 2 * dim if spec.rating_head_input == "concat" else 3 * dim
            self.rating_head = mlp(head_in, spec.rating_head_layers, spec.activation, spec.dropout)

    @property
    def has_retrieval(self) -> bool:
        """The spec's own definition (type and loss weight): this model learns, is evaluated and served for retrieval."""
        return self.spec.has_retrieval

    @property
    def has_ranking(self) -> bool:
        """The spec's own definition: this model learns, is evaluated and served for ranking."""
        return self.spec.has_ranking

    def rate(self, query_embeddings: torch.Tensor, candidate_embeddings: torch.Tensor) -> torch.Tensor:
        """Raw rating-head outputs for aligned pairs: [n, d] and [n, d] → [n]."""
        parts = [query_embeddings, candidate_embeddings]
        if self.spec.rating_head_input == "concat_product":
            parts.append(query_embeddings * candidate_embeddings)
        return self.rating_head(torch.cat(parts, dim=1)).squeeze(1)

    def predict_rating(self, query_embeddings: torch.Tensor, candidate_embeddings: torch.Tensor) -> torch.Tensor:
        """Predictions on the target's scale for aligned pairs."""
        return self.ranking_task.output(self.rate(query_embeddings, candidate_embeddings))

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total loss, and for logging each task's loss and their weighted total per example (detached).

        A summed retrieval loss grows with the batch; the logged one is divided by the batch's rows, so that the
        progress bar, the history and the pages read the same per-example values whatever the batch size.
        """
        if batch.leave_out:
            queries = self.query_tower(batch.query_inputs, batch.query_index, batch.leave_out)  # one per row
            query_index = torch.arange(len(batch.query_index), device=queries.device)
        else:
            queries = self.query_tower(batch.query_inputs)
            query_index = batch.query_index
        candidates = self.candidate_tower(batch.candidate_inputs)
        total = queries.new_zeros(())
        logged = queries.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        if self.spec.type != "ranking":  # logged even at weight 0
            retrieval = (candidates, batch.candidate_index, batch.candidate_counts, batch.candidate_log_q)
            if batch.gather_candidates is not None:
                retrieval = batch.gather_candidates(candidates, batch.candidate_rows, *retrieval[2:], retrieval[1])
            loss = self.retrieval_task(queries, retrieval[0], query_index, retrieval[1], retrieval[2], retrieval[3])
            if self.retrieval_task.reduction == "sum":
                rows = len(batch.query_index) / batch.share  # the global batch's rows
            else:
                loss, rows = loss * batch.share, 1
            parts["retrieval_loss"] = loss.detach() / rows
            if self.retrieval_weight:
                total = total + self.retrieval_weight * loss
                logged = logged + self.retrieval_weight * parts["retrieval_loss"]
        if self.rating_head is not None:
            raw = self.rate(queries[query_index], candidates[batch.candidate_index])
            loss = self.ranking_task(raw, batch.labels, batch.query_index) * batch.share
            parts["ranking_loss"] = loss.detach()
            if self.ranking_weight:
                total = total + self.ranking_weight * loss
                logged = logged + self.ranking_weight * parts["ranking_loss"]
        parts["loss"] = logged
        return total, parts

    def tower_groups(self) -> dict[str, nn.Module]:
        """The parts whose weights are summarised per epoch."""
        groups: dict[str, nn.Module] = {"query_tower": self.query_tower, "candidate_tower": self.candidate_tower}
        if self.rating_head is not None:
            groups["rating_head"] = self.rating_head
        return groups
