"""The retrieval task (in-batch softmax over distinct rows) and the ranking task against naive formulas."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tandem.models.tasks import RankingTask, RetrievalTask, catalog_candidates


def _random_batch(seed: int, batch: int = 14, n_queries: int = 4, n_products: int = 5, dim: int = 3):
    """A batch in distinct-row form with repeated buyers and products (and repeated buyer–product pairs)."""
    g = torch.Generator().manual_seed(seed)
    query_index = torch.randint(0, n_queries, (batch,), generator=g)
    product_of_row = torch.randint(0, n_products, (batch,), generator=g)
    # Fold rows into sorted distinct products, as the training loop does.
    distinct, candidate_index, counts = torch.unique(product_of_row, return_inverse=True, return_counts=True)
    queries = torch.randn(n_queries, dim, generator=g, dtype=torch.float64)
    candidates = torch.randn(len(distinct), dim, generator=g, dtype=torch.float64)
    log_q = torch.log(torch.rand(len(distinct), generator=g, dtype=torch.float64) * 0.9 + 0.05)
    assert len(torch.unique(query_index)) < batch and len(distinct) < batch  # the batch repeats both sides
    return queries, candidates, query_index, candidate_index, counts, log_q


def _naive_cross_entropy(
    queries, candidates, query_index, candidate_index, *, temperature, log_q, remove_hits, reduction
):
    """The same loss with torch's own cross_entropy on the B × B matrix (masked entries set to -inf)."""
    scores = queries[query_index] @ candidates[candidate_index].T / temperature
    if log_q is not None:
        scores = scores - log_q[candidate_index].unsqueeze(0)
    if remove_hits:
        same = candidate_index.unsqueeze(0) == candidate_index.unsqueeze(1)
        same.fill_diagonal_(False)
        scores = scores.masked_fill(same, float("-inf"))
    labels = torch.arange(len(query_index))
    return torch.nn.functional.cross_entropy(scores, labels, reduction=reduction)


OPTIONS = list(itertools.product([1.0, 0.3], [False, True], [False, True], ["sum", "mean"]))


@pytest.mark.parametrize(("temperature", "logq", "remove_hits", "reduction"), OPTIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_loss_equals_the_naive_batch_by_batch_softmax(seed, temperature, logq, remove_hits, reduction):
    """The distinct-row loss equals cross-entropy over the B × B scores with identity labels."""
    queries, candidates, q_idx, c_idx, counts, log_q = _random_batch(seed)
    task = RetrievalTask(temperature=temperature, remove_accidental_hits=remove_hits, reduction=reduction)

    got = task(queries, candidates, q_idx, c_idx, counts, log_q if logq else None)

    expected = _naive_cross_entropy(
        queries, candidates, q_idx, c_idx, temperature=temperature, log_q=log_q if logq else None,
        remove_hits=remove_hits, reduction=reduction,
    )  # fmt: skip
    assert got.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("temperature", "logq", "remove_hits", "reduction"), OPTIONS)
def test_retrieval_loss_gradients_equal_the_naive_gradients(temperature, logq, remove_hits, reduction):
    """Gradients of the distinct-row loss with respect to both towers' outputs equal the naive B × B gradients."""
    queries, candidates, q_idx, c_idx, counts, log_q = _random_batch(5)
    task = RetrievalTask(temperature=temperature, remove_accidental_hits=remove_hits, reduction=reduction)
    q1, c1 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()
    q2, c2 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()

    task(q1, c1, q_idx, c_idx, counts, log_q if logq else None).backward()
    _naive_cross_entropy(
        q2, c2, q_idx, c_idx, temperature=temperature, log_q=log_q if logq else None,
        remove_hits=remove_hits, reduction=reduction,
    ).backward()  # fmt: skip

    torch.testing.assert_close(q1.grad, q2.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-9, atol=1e-12)


def test_removing_accidental_hits_when_every_row_holds_one_product_leaves_zero_loss():
    """When all rows share one product and accidental hits are removed, each row has no negatives and no loss."""
    queries = torch.randn(3, 4, dtype=torch.float64)
    candidates = torch.randn(1, 4, dtype=torch.float64)
    q_idx = torch.tensor([0, 1, 2, 0])
    c_idx = torch.zeros(4, dtype=torch.long)
    counts = torch.tensor([4])
    loss = RetrievalTask(remove_accidental_hits=True)(queries, candidates, q_idx, c_idx, counts)
    assert loss.item() == pytest.approx(0.0, abs=1e-9)


def test_retrieval_loss_of_a_two_row_batch_worked_by_hand():
    """A 2-row batch with scores [[2, 0], [1, 3]] gives log(1 + e^-2) + log(1 + e^-2) summed."""
    queries = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    candidates = torch.eye(2, dtype=torch.float64)
    loss = RetrievalTask()(queries, candidates, torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert loss.item() == pytest.approx(2 * math.log(1 + math.exp(-2)))


def test_mse_ranking_loss_is_the_mean_squared_error():
    """The 'mse' loss is the mean of squared differences."""
    predictions = torch.tensor([1.0, 2.5, 4.0])
    labels = torch.tensor([2.0, 2.0, 5.0])
    assert RankingTask("mse")(predictions, labels).item() == pytest.approx((1 + 0.25 + 1) / 3)


def test_huber_ranking_loss_is_quadratic_near_zero_and_linear_beyond_delta():
    """The 'huber' loss is ½e² for |e| ≤ delta and delta·(|e| − ½delta) beyond, averaged."""
    predictions = torch.tensor([0.0, 0.0])
    labels = torch.tensor([0.5, 3.0])
    expected = (0.5 * 0.5**2 + 2.0 * (3.0 - 0.5 * 2.0)) / 2
    assert RankingTask("huber", huber_delta=2.0)(predictions, labels).item() == pytest.approx(expected)


def test_bce_ranking_loss_reads_predictions_as_logits():
    """The 'bce' loss is binary cross-entropy of sigmoid(logit), and its output is the sigmoid."""
    logits = torch.tensor([0.0, 2.0, -1.0])
    labels = torch.tensor([1.0, 0.0, 1.0])
    expected = (
        -sum(
            y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z)))
            for z, y in zip(logits.tolist(), labels.tolist(), strict=True)
        )
        / 3
    )
    task = RankingTask("bce")
    assert task(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert task.output(logits).tolist() == pytest.approx([0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))])


def test_regression_ranking_output_is_the_raw_prediction():
    """For 'mse' and 'huber' the output on the target's scale is the head's raw value."""
    raw = torch.tensor([-1.0, 3.5])
    assert RankingTask("mse").output(raw).tolist() == [-1.0, 3.5]
    assert RankingTask("huber").output(raw).tolist() == [-1.0, 3.5]


def test_catalog_softmax_is_the_cross_entropy_over_every_product():
    """With the whole catalog as candidates (count 1 each), a row's loss is -log softmax over all products."""
    g = torch.Generator().manual_seed(5)
    queries = torch.randn(3, 4, generator=g, dtype=torch.float64)
    catalog = torch.randn(6, 4, generator=g, dtype=torch.float64)
    query_index = torch.tensor([0, 1, 2, 0, 2])
    products = torch.tensor([5, 0, 5, 2, 3])
    rows, candidate_index = catalog_candidates(
        products, 6, max_products=6, sampled=2, generator=torch.Generator().manual_seed(0)
    )
    assert rows.tolist() == list(range(6)) and torch.equal(candidate_index, products)
    task = RetrievalTask(temperature=0.5)
    loss = task(queries, catalog[rows], query_index, candidate_index, torch.ones(6, dtype=torch.int64))
    expected = 0.0
    for q, p in zip(query_index.tolist(), products.tolist(), strict=True):
        logits = [float(queries[q] @ catalog[j]) / 0.5 for j in range(6)]
        expected -= logits[p] - math.log(sum(math.exp(x) for x in logits))
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_catalog_candidates_above_the_size_sample_shared_negatives_and_keep_the_positives():
    """A catalog larger than max_products gives `sampled` uniform rows plus the batch's own, each once."""
    products = torch.tensor([7, 3, 7, 95])
    rows, candidate_index = catalog_candidates(
        products, 100, max_products=50, sampled=10, generator=torch.Generator().manual_seed(1)
    )
    assert len(torch.unique(rows)) == len(rows) and 10 <= len(rows) <= 13
    assert torch.equal(rows[candidate_index], products)
    again, _ = catalog_candidates(
        products, 100, max_products=50, sampled=10, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(rows, again)  # seeded
