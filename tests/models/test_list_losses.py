"""Pairwise and listwise ranking losses against hand computations."""

import math

import pytest
import torch

from tandem.models.tasks import RankingTask, lambdarank_loss, sampled_pairs, softmax_list_loss


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_softmax_list_loss_by_hand() -> None:
    scores = torch.tensor([2.0, 1.0, 0.0, 0.5, -0.5, 3.0])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    groups = torch.tensor([7, 7, 7, 9, 9, 4])  # group 9 and 4 have no positive: left out
    lse = math.log(math.exp(2.0) + math.exp(1.0) + math.exp(0.0))
    expected = 0.5 * ((lse - 2.0) + (lse - 0.0))
    assert softmax_list_loss(scores, labels, groups).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_and_hinge_with_one_negative_per_group() -> None:
    scores = torch.tensor([1.5, 0.5, -1.0, 0.2])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1])  # one negative per group: the draw is forced
    bpr = RankingTask("bpr", negatives=3)(scores, labels, groups).item()
    assert bpr == pytest.approx(-0.5 * (_log_sigmoid(1.0) + _log_sigmoid(1.2)), rel=1e-6)
    hinge = RankingTask("hinge", negatives=2, margin=1.0)(scores, labels, groups).item()
    assert hinge == pytest.approx(0.5 * (max(0.0, 1 - 1.0) + max(0.0, 1 - 1.2)), abs=1e-7)
    hinge = RankingTask("hinge", margin=2.0)(scores, labels, groups).item()
    assert hinge == pytest.approx(0.5 * (1.0 + 0.8), rel=1e-6)


def test_sampled_negatives_stay_in_their_group() -> None:
    torch.manual_seed(0)
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])  # group 2 has no negative
    better, worse = sampled_pairs(groups, labels, 50)
    assert set(better.tolist()) == {0, 4}
    assert torch.equal(groups[better], groups[worse])
    assert bool((labels[worse] == 0).all())
    assert set(worse[better == 4].tolist()) == {3, 5, 6}


def test_lambdarank_by_hand() -> None:
    scores = torch.tensor([0.0, 1.0, 2.0])  # current ranking: row 2, row 1, row 0
    labels = torch.tensor([1.0, 0.0, 0.0])
    groups = torch.zeros(3, dtype=torch.long)
    better, worse = torch.tensor([0, 0]), torch.tensor([1, 2])
    ideal = 1.0  # one relevant row at rank 0
    d = [1 / math.log2(2 + r) for r in (2, 1, 0)]  # discounts of rows 0, 1, 2
    expected = 0.5 * (
        abs(d[0] - d[1]) / ideal * math.log1p(math.exp(1.0)) + abs(d[0] - d[2]) / ideal * math.log1p(math.exp(2.0))
    )
    assert lambdarank_loss(scores, labels, groups, better, worse).item() == pytest.approx(expected, rel=1e-6)


def test_list_losses_need_groups_and_learn_an_order() -> None:
    with pytest.raises(ValueError, match="groups"):
        RankingTask("softmax")(torch.zeros(2), torch.ones(2))
    torch.manual_seed(0)
    x = torch.randn(400, 3)
    labels = (x[:, 0] > 0.8).float()
    groups = torch.arange(400) // 20
    for loss in ("bpr", "hinge", "softmax", "lambdarank"):
        w = torch.zeros(3, requires_grad=True)
        task = RankingTask(loss)
        opt = torch.optim.SGD([w], lr=0.5)
        for _ in range(60):
            opt.zero_grad()
            task(x @ w, labels, groups).backward()
            opt.step()
        assert w[0] > 3 * w[1:].abs().max(), loss
