"""The blocked in-batch softmax against the dense form it replaced: loss and gradients on random batches."""

from __future__ import annotations

import pytest
import torch

from tandem.models.blocked_softmax import blocked_softmax_loss


def _dense_loss(scores, query_index, candidate_index, counts, log_q, remove_hits):
    """The loss as the engine computed it before blocking: the whole [Uq, Uc] score matrix, then per-row terms."""
    bias = counts.to(scores.dtype).log()
    if log_q is not None:
        bias = bias - log_q
    lse = torch.logsumexp(scores + bias.unsqueeze(0), dim=1)
    positive = scores[query_index, candidate_index]
    if log_q is not None:
        positive = positive - log_q[candidate_index]
    row_lse = lse[query_index]
    if remove_hits:
        extra = (counts[candidate_index] - 1).to(scores.dtype)
        share = extra * torch.exp(positive - row_lse)
        row_lse = row_lse + torch.log1p(-share.clamp(max=1 - 1e-7))
    return (row_lse - positive).sum()


def _batch(seed, batch, n_queries, n_products, dim, dtype):
    """Distinct-row form of a random batch in which buyers, products and buyer-product pairs repeat."""
    g = torch.Generator().manual_seed(seed)
    query_index = torch.randint(0, n_queries, (batch,), generator=g)
    products = torch.randint(0, n_products, (batch,), generator=g)
    products[: batch // 4] = products[batch // 4 : batch // 2]  # more duplicates, some of whole pairs
    query_index[: batch // 8] = query_index[batch // 4 : batch // 4 + batch // 8]
    _, query_index = torch.unique(query_index, return_inverse=True)
    _, candidate_index, counts = torch.unique(products, return_inverse=True, return_counts=True)
    queries = torch.randn(int(query_index.max()) + 1, dim, generator=g, dtype=dtype)
    candidates = torch.randn(len(counts), dim, generator=g, dtype=dtype)
    log_q = torch.log(torch.rand(len(counts), generator=g, dtype=dtype) * 0.9 + 0.05)
    return queries, candidates, query_index, candidate_index, counts, log_q


SHAPES = [(40, 12, 9, 3), (300, 120, 70, 8), (1000, 400, 900, 16)]
# block_elements: one block of whole rows, several blocks of whole rows, rows split into column chunks
BLOCKS = [1 << 20, 256, 64]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_elements", BLOCKS)
@pytest.mark.parametrize(("logq", "remove_hits"), [(False, False), (True, False), (False, True), (True, True)])
def test_blocked_loss_and_gradients_equal_the_dense_form(shape, block_elements, logq, remove_hits):
    """In float64 the loss and both gradients agree with the dense form to 1e-10 relative."""
    queries, candidates, q_idx, c_idx, counts, log_q = _batch(3, *shape, torch.float64)
    log_q = log_q if logq else None
    q1, c1 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()
    q2, c2 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()

    got = blocked_softmax_loss(
        q1, c1, q_idx, c_idx, counts, candidate_log_q=log_q, remove_accidental_hits=remove_hits,
        block_elements=block_elements,
    )  # fmt: skip
    (2.5 * got).backward()
    expected = _dense_loss(q2 @ c2.T, q_idx, c_idx, counts, log_q, remove_hits)
    (2.5 * expected).backward()

    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(q1.grad, q2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("block_elements", BLOCKS)
def test_blocked_loss_in_float32_agrees_with_the_dense_form_to_float32_rounding(block_elements):
    """In float32 (training's precision) the blocked loss and gradients stay within 1e-5 of the dense form's."""
    queries, candidates, q_idx, c_idx, counts, log_q = _batch(8, 2000, 700, 800, 32, torch.float32)
    q1, c1 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()
    q2, c2 = queries.clone().requires_grad_(), candidates.clone().requires_grad_()

    got = blocked_softmax_loss(
        q1, c1, q_idx, c_idx, counts, candidate_log_q=log_q, remove_accidental_hits=True,
        block_elements=block_elements,
    )  # fmt: skip
    got.backward()
    expected = _dense_loss(q2 @ c2.T, q_idx, c_idx, counts, log_q, True)
    expected.backward()

    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(q1.grad, q2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-4, atol=1e-5)


def test_blocked_loss_without_gradients_gives_the_same_value():
    """Under no_grad the sweep skips the gradient products and returns the same loss."""
    queries, candidates, q_idx, c_idx, counts, _ = _batch(1, 300, 120, 70, 8, torch.float64)
    with torch.no_grad():
        plain = blocked_softmax_loss(queries, candidates, q_idx, c_idx, counts, block_elements=256)
    tracked = blocked_softmax_loss(
        queries.clone().requires_grad_(), candidates, q_idx, c_idx, counts, block_elements=256
    )
    assert plain.item() == pytest.approx(tracked.item(), rel=1e-12)
