"""Training the second-stage ranker: a small MLP over standardised pair features, trained per buyer with one
of the ranking task's losses, and exported as the ONNX graph that evaluation and serving both run
(:mod:`tandem.recommend.ranker_graph`).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from tandem.export.onnx_graphs import export_graph
from tandem.models.tasks import RankingTask
from tandem.models.towers import mlp
from tandem.recommend.ranker_graph import INPUT, OUTPUT


class _Standardised(nn.Module):
    """(x - mean) / scale, then the MLP: [n, F] → [n]."""

    def __init__(self, net: nn.Sequential, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale).squeeze(1)


class _Mean(nn.Module):
    """The mean of several rankers' scores: [n, F] → [n]."""

    def __init__(self, members: list[_Standardised]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def train_ranker(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    layers: list[int],
    loss: str,
    epochs: int,
    learning_rate: float,
    groups_per_batch: int,
    seed: int,
    members: int = 1,
) -> tuple[bytes, list[float]]:
    """Fit the ranker on rows of (features [n, F], labels [n] in {0, 1}, groups [n]: the buyer list of each row)
    and return (its ONNX graph, the mean loss of each epoch). members > 1 trains that many rankers, seeded
    seed, seed + 1, ..., and the graph scores with the mean of theirs (what one seed's chance moves, the mean
    moves less)."""
    order = np.argsort(groups, kind="stable")
    x = torch.from_numpy(features[order].astype(np.float32))
    y = torch.from_numpy(labels[order].astype(np.float32))
    g = torch.from_numpy(np.unique(groups[order], return_inverse=True)[1].astype(np.int64))
    bounds = np.r_[0, np.flatnonzero(np.diff(g.numpy())) + 1, len(g)]
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), 1e-6)
    fitted, histories = [], []
    for member in range(members):
        torch.manual_seed(seed + member)
        model = _Standardised(mlp(features.shape[1], layers), mean, scale)
        histories.append(
            _fit(model, RankingTask(loss), x, y, g, bounds, epochs, learning_rate, groups_per_batch, seed + member)
        )
        fitted.append(model.eval())
    buffer = io.BytesIO()
    export_graph(
        _Mean(fitted),
        (torch.zeros(2, features.shape[1]),),
        buffer,
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "n"}, OUTPUT: {0: "n"}},
    )
    return buffer.getvalue(), [float(v) for v in np.mean(histories, axis=0)]


def _fit(
    model: nn.Module,
    task: RankingTask,
    x: torch.Tensor,
    y: torch.Tensor,
    g: torch.Tensor,
    bounds: np.ndarray,
    epochs: int,
    learning_rate: float,
    groups_per_batch: int,
    seed: int,
) -> list[float]:
    """Adam over batches of whole groups (rows sorted by group, group i is rows bounds[i]:bounds[i + 1]);
    the mean loss of each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    n_groups = len(bounds) - 1
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        losses = []
        picked = rng.permutation(n_groups)
        for start in range(0, n_groups, groups_per_batch):
            chosen = np.sort(picked[start : start + groups_per_batch])
            rows = np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in chosen])
            index = torch.from_numpy(rows)
            value = task(model(x[index]), y[index], g[index])
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            losses.append(float(value.detach()))
        history.append(float(np.mean(losses)) if losses else 0.0)
    return history
