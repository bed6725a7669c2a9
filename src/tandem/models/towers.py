"""Towers: a tower embeds each of its inputs, concatenates them, and runs an MLP (the last size is the output).

A query tower's weighted bags (purchase histories) own no table: they pool rows of the candidate tower's table
for the same column, attached by `Tower.share_tables`, so a buyer is described by the embeddings of what it bought.
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.features.pipeline import InputSpec

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp(in_dim: int, layers: list[int], activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """Dense layers with an activation between them (none after the last), Glorot-initialised like Keras."""
    modules: list[nn.Module] = []
    for i, size in enumerate(layers):
        linear = nn.Linear(in_dim, size)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        modules.append(linear)
        if i < len(layers) - 1:
            modules.append(ACTIVATIONS[activation]())
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
        in_dim = size
    return nn.Sequential(*modules)


class WeightedBag(nn.Module):
    """A weighted mean of rows of a shared embedding table: rows [n, L], weights [n, L] (0 pads) → [n, dim]."""

    def __init__(self) -> None:
        super().__init__()
        self.table: nn.Embedding | None = None

    def _sums(self, rows: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.table is None:
            raise RuntimeError("a weighted bag pools a shared table; call Tower.share_tables first")
        summed = nn.functional.embedding_bag(
            rows, self.table.weight, per_sample_weights=weights, mode="sum", sparse=self.table.sparse
        )
        return summed, weights.sum(dim=1)

    def forward(self, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        summed, total = self._sums(rows, weights)
        return summed / total.clamp(min=1e-12).unsqueeze(1)

    def leave_out(
        self,
        rows: torch.Tensor,
        weights: torch.Tensor,
        of: torch.Tensor,
        own_rows: torch.Tensor,
        own_weights: torch.Tensor,
    ) -> torch.Tensor:
        """Per batch row i, the bag of distinct row `of[i]` less `own_weights[i]` of table row `own_rows[i]`
        (when the bag holds it): [B, dim]. The bags are pooled once per distinct row, then corrected per row."""
        summed, total = self._sums(rows, weights)
        held = (rows[of] == own_rows.unsqueeze(1)).any(dim=1)
        taken = torch.where(held, own_weights, torch.zeros_like(own_weights))
        left = total[of] - taken
        pooled = (summed[of] - taken.unsqueeze(1) * self.table(own_rows)) / left.clamp(min=1e-12).unsqueeze(1)
        # What rounding leaves of a bag whose only entry was taken out must not count (pooling divides by it).
        return torch.where((left > 1e-6 * total[of]).unsqueeze(1), pooled, torch.zeros_like(pooled))


class Tower(nn.Module):
    """Maps a dict of encoded inputs (``[n]`` indices, ``[n, L]`` token bags, ``[n, w]`` floats) to ``[n, d]``."""

    def __init__(
        self,
        inputs: list[InputSpec],
        layers: list[int],
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        init_scale: float = 0.05,
        sparse: bool = False,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.inputs = inputs
        self.embeddings = nn.ModuleDict()
        width = 0
        for spec in inputs:
            if spec.output == "dense":
                width += spec.size
                continue
            if spec.output == "weighted_bag":
                self.embeddings[spec.name] = WeightedBag()
                width += spec.embedding_dim
                continue
            if spec.output == "index":
                table = nn.Embedding(spec.size, spec.embedding_dim, sparse=sparse)
            else:
                table = nn.EmbeddingBag(spec.size, spec.embedding_dim, mode="mean", padding_idx=0, sparse=sparse)
            nn.init.uniform_(table.weight, -init_scale, init_scale)  # Keras' default embedding initialiser
            self.embeddings[spec.name] = table
            width += spec.embedding_dim
        self.mlp = mlp(width, layers, activation, dropout)
        self.output_dim = layers[-1] if layers else width
        self.normalize = normalize

    @property
    def tensor_names(self) -> list[str]:
        """The encoded arrays the tower reads, in input order."""
        return [name for spec in self.inputs for name in spec.tensors]

    def share_tables(self, other: Tower) -> None:
        """Point each weighted bag at `other`'s table of the feature it shares (the candidate tower's)."""
        for spec in self.inputs:
            if spec.output == "weighted_bag":
                table = other.embeddings[spec.shares]
                if table.num_embeddings != spec.size or table.embedding_dim != spec.embedding_dim:
                    raise ValueError(
                        f"'{spec.name}' pools '{spec.shares}' ({table.num_embeddings} × {table.embedding_dim}), "
                        f"but was fitted for {spec.size} × {spec.embedding_dim}"
                    )
                self.embeddings[spec.name].table = table

    def forward(
        self,
        x: dict[str, torch.Tensor],
        rows: torch.Tensor | None = None,
        leave_out: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Embed the distinct rows `x`: [n, d]. With `rows` [B], embed each batch row from its distinct row instead,
        its weighted bags less `leave_out[name]` (each row's own table row and weight, [B] each): [B, d]."""
        parts = []
        for spec in self.inputs:
            value = x[spec.name]
            if spec.output == "weighted_bag" and rows is not None and leave_out and spec.name in leave_out:
                parts.append(
                    self.embeddings[spec.name].leave_out(value, x[spec.tensors[1]], rows, *leave_out[spec.name])
                )
                continue
            if spec.output == "dense":
                part = value
            elif spec.output == "weighted_bag":
                part = self.embeddings[spec.name](value, x[spec.tensors[1]])
            else:
                part = self.embeddings[spec.name](value)
            parts.append(part if rows is None else part[rows])
        out = self.mlp(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        return nn.functional.normalize(out, dim=1) if self.normalize else out
