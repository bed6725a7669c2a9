"""Optimisers: Adagrad (with Keras' initial accumulator, as TensorFlow Recommenders uses), Adam and SGD.

With sparse embeddings, id tables get sparse gradients: Adagrad and SGD take them directly, Adam pairs
SparseAdam for the tables with Adam for the dense weights.

The update rules are torch.optim's own (its single-tensor CPU paths, operation for operation, so a run gives the
same numbers), written here because torch.optim's `step` and `add_param_group` import torch._dynamo for the graph
breaks compiled code needs: about a second of every small run's start-up, for a loop that runs eagerly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tandem.spec import TrainingSpec


class Optimizer:
    """Parameters, a learning rate (`lr`, changed by a schedule) and per-parameter state, updated by `step`."""

    def __init__(self, params: list[nn.Parameter], lr: float) -> None:
        self.params = list(params)
        self.lr = self.initial_lr = lr
        self.state: dict[nn.Parameter, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                if p not in self.state:
                    self.state[p] = self.initial_state(p)
                self.update(p, p.grad, self.state[p])

    def initial_state(self, p: nn.Parameter) -> dict[str, Any]:
        return {"step": 0}

    def update(self, p: nn.Parameter, grad: torch.Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _sparse_like(grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A sparse tensor with `grad`'s (coalesced, so valid: no invariant checks) indices and these values."""
    return torch.sparse_coo_tensor(grad.indices(), values, grad.size(), check_invariants=False, is_coalesced=True)


class SGD(Optimizer):
    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.weight_decay = weight_decay

    def update(self, p: nn.Parameter, grad: torch.Tensor, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad.add(p, alpha=self.weight_decay)
        p.add_(grad, alpha=-self.lr)


class Adagrad(Optimizer):
    def __init__(
        self, params: list[nn.Parameter], lr: float, initial_accumulator_value: float, eps: float, weight_decay: float
    ) -> None:
        super().__init__(params, lr)
        self.initial_accumulator_value, self.eps, self.weight_decay = initial_accumulator_value, eps, weight_decay

    def initial_state(self, p: nn.Parameter) -> dict[str, Any]:
        return {"step": 0, "sum": torch.full_like(p, self.initial_accumulator_value)}

    def update(self, p: nn.Parameter, grad: torch.Tensor, state: dict[str, Any]) -> None:
        state["step"] += 1
        if self.weight_decay:
            if grad.is_sparse:
                raise RuntimeError("weight_decay option is not compatible with sparse gradients")
            grad = grad.add(p, alpha=self.weight_decay)
        total = state["sum"]
        if grad.is_sparse:
            grad = grad.coalesce()  # the update is non-linear, so each row once
            values = grad.values()
            total.add_(_sparse_like(grad, values.pow(2)))
            std = total.sparse_mask(grad).values().sqrt_().add_(self.eps)
            p.add_(_sparse_like(grad, values / std), alpha=-self.lr)
        else:
            total.addcmul_(grad, grad, value=1)
            p.addcdiv_(grad, total.sqrt().add_(self.eps), value=-self.lr)


class Adam(Optimizer):
    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = (0.9, 0.999), 1e-8, weight_decay

    def initial_state(self, p: nn.Parameter) -> dict[str, Any]:
        return {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def update(self, p: nn.Parameter, grad: torch.Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        state["step"] += 1
        step = float(state["step"])
        if self.weight_decay:
            grad = grad.add(p, alpha=self.weight_decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        p.addcdiv_(exp_avg, denom, value=-self.lr / (1 - beta1**step))


class SparseAdam(Adam):
    def __init__(self, params: list[nn.Parameter], lr: float) -> None:
        super().__init__(params, lr)

    def update(self, p: nn.Parameter, grad: torch.Tensor, state: dict[str, Any]) -> None:
        state["step"] += 1
        grad = grad.coalesce()  # the update is non-linear, so each row once
        values = grad.values()
        if values.numel() == 0:
            return
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        old_avg = exp_avg.sparse_mask(grad).values()
        avg_update = values.sub(old_avg).mul_(1 - beta1)
        exp_avg.add_(_sparse_like(grad, avg_update))
        old_sq = exp_avg_sq.sparse_mask(grad).values()
        sq_update = values.pow(2).sub_(old_sq).mul_(1 - beta2)
        exp_avg_sq.add_(_sparse_like(grad, sq_update))
        numer = avg_update.add_(old_avg)
        denom = sq_update.add_(old_sq).sqrt_().add_(self.eps)
        step = state["step"]
        step_size = self.lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        p.add_(_sparse_like(grad, -step_size * numer.div_(denom)))


class CosineSchedule:
    """The learning rate from its initial value down to 0 along half a cosine over `total` steps."""

    def __init__(self, optimizer: Optimizer, total: int) -> None:
        self.optimizer, self.total, self.done = optimizer, total, 0

    def step(self) -> None:
        self.done += 1
        self.optimizer.lr = self.optimizer.initial_lr * (1 + math.cos(math.pi * self.done / self.total)) / 2


def _split_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    sparse, dense = [], []
    for module in model.modules():
        is_sparse = isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.sparse
        for p in module.parameters(recurse=False):
            (sparse if is_sparse else dense).append(p)
    return sparse, dense


def make_optimizers(model: nn.Module, spec: TrainingSpec) -> list[Optimizer]:
    """One or two optimisers that together update every parameter of `model`."""
    sparse, dense = _split_params(model)
    lr, wd = spec.learning_rate, spec.weight_decay
    if spec.optimizer == "adagrad":
        return [Adagrad(sparse + dense, lr=lr, initial_accumulator_value=0.1, eps=1e-7, weight_decay=wd)]
    if spec.optimizer == "sgd":
        return [SGD(sparse + dense, lr=lr, weight_decay=wd)]
    optimizers: list[Optimizer] = [Adam(dense, lr=lr, weight_decay=wd)]
    if sparse:
        optimizers.append(SparseAdam(sparse, lr=lr))
    return optimizers
