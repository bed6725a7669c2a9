"""The optimisers give torch.optim's numbers: the same parameters after the same steps, dense and sparse gradients,
and the cosine schedule's learning rates."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from tandem.training import optim


def _model(sparse: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({"table": nn.Embedding(50, 6, sparse=sparse), "layer": nn.Linear(6, 3)})


def _train(model: nn.Module, optimizers: list, steps: int = 6) -> nn.Module:
    """A few steps of a loss that touches some table rows (repeated ones too) and the dense layer."""
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        rows = torch.randint(0, 50, (40,), generator=generator)
        target = torch.randn(40, 3, generator=generator)
        loss = ((model["layer"](model["table"](rows)) - target) ** 2).mean()
        for o in optimizers:
            o.zero_grad()
        loss.backward()
        for o in optimizers:
            o.step()
    return model


def _split(model: nn.Module) -> tuple[list, list]:
    return list(model["table"].parameters()), list(model["layer"].parameters())


CASES = {
    "adagrad": (
        lambda s, d: [optim.Adagrad(s + d, lr=0.1, initial_accumulator_value=0.1, eps=1e-7, weight_decay=0.0)],
        lambda s, d: [torch.optim.Adagrad(s + d, lr=0.1, initial_accumulator_value=0.1, eps=1e-7)],
    ),
    "sgd": (lambda s, d: [optim.SGD(s + d, lr=0.3)], lambda s, d: [torch.optim.SGD(s + d, lr=0.3)]),
    "adam": (
        lambda s, d: [optim.Adam(d, lr=0.01), optim.SparseAdam(s, lr=0.01)],
        lambda s, d: [torch.optim.Adam(d, lr=0.01), torch.optim.SparseAdam(s, lr=0.01)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("sparse", [False, True])
def test_each_optimiser_takes_torch_optims_steps(name: str, sparse: bool) -> None:
    if name == "adam" and not sparse:
        ours, theirs = (lambda s, d: [optim.Adam(s + d, lr=0.01)]), (lambda s, d: [torch.optim.Adam(s + d, lr=0.01)])
    else:
        ours, theirs = CASES[name]
    mine, reference = _model(sparse), _model(sparse)
    _train(mine, ours(*_split(mine)))
    with torch.sparse.check_sparse_tensor_invariants(enable=False):  # torch.optim's sparse paths warn otherwise
        _train(reference, theirs(*_split(reference)))
    start = _model(sparse)
    states = (mine.state_dict().items(), reference.state_dict().values(), start.state_dict().values())
    for (key, a), b, s in zip(*states, strict=True):
        assert not torch.equal(a, s), key  # the steps moved it
        assert torch.equal(a, b), key


def test_weight_decay_matches_on_dense_gradients() -> None:
    mine, reference = _model(False), _model(False)
    _train(mine, [optim.Adam(list(mine.parameters()), lr=0.01, weight_decay=0.1)])
    _train(reference, [torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=0.1)])
    assert all(torch.equal(a, b) for a, b in zip(mine.parameters(), reference.parameters(), strict=True))


def test_the_cosine_schedule_is_torchs() -> None:
    model = copy.deepcopy(_model(False))
    ours = optim.SGD(list(model.parameters()), lr=0.2)
    theirs = torch.optim.SGD(_model(False).parameters(), lr=0.2)
    mine, reference = optim.CosineSchedule(ours, 10), torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=10)
    lrs = []
    for _ in range(10):
        mine.step()
        theirs.step()
        reference.step()
        lrs.append((ours.lr, theirs.param_groups[0]["lr"]))
    assert [a for a, _ in lrs] == pytest.approx([b for _, b in lrs], abs=1e-12)
    assert lrs[4][0] == pytest.approx(0.1 * (1 + math.cos(math.pi / 2)))
    assert lrs[-1][0] == pytest.approx(0.0, abs=1e-15)
