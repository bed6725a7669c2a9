"""Optimisers: Adagrad (with Keras' initial accumulator, as TensorFlow Recommenders uses), Adam and SGD.

With sparse embeddings, id tables get sparse gradients: Adagrad and SGD take them directly, Adam pairs
SparseAdam for the tables with Adam for the dense weights.
"""

from __future__ import annotations

import torch
from torch import nn

from tandem.spec import TrainingSpec


def _split_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    sparse, dense = [], []
    for module in model.modules():
        is_sparse = isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.sparse
        for p in module.parameters(recurse=False):
            (sparse if is_sparse else dense).append(p)
    return sparse, dense


def make_optimizers(model: nn.Module, spec: TrainingSpec) -> list[torch.optim.Optimizer]:
    """One or two optimisers that together update every parameter of `model`."""
    sparse, dense = _split_params(model)
    lr, wd = spec.learning_rate, spec.weight_decay
    if spec.optimizer == "adagrad":
        return [torch.optim.Adagrad(sparse + dense, lr=lr, initial_accumulator_value=0.1, eps=1e-7, weight_decay=wd)]
    if spec.optimizer == "sgd":
        return [torch.optim.SGD(sparse + dense, lr=lr, weight_decay=wd)]
    optimizers: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr, weight_decay=wd)]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=lr))
    return optimizers
