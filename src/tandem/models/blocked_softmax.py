"""The in-batch softmax loss computed block by block, so the [Uq, Uc] score matrix never exists whole.

Why: at ~7,000 distinct queries and products per batch the score matrix is 196 MB, and eager PyTorch writes
and reads it several times per step (scores, bias, log-softmax, gather, backward), which cost five times the
three matrix products the loss needs. Here the queries go in row blocks of about `block_elements` scores (a
block stays in cache): each block's scores are one matrix product, exponentiated once in place (the same
exponentials give the log-sum-exp and the softmax weights); its log-sum-exp is taken online over
column chunks when a row does not fit in one block, and its gradient is formed on the spot (softmax weight
minus the positives) and multiplied out into the queries' and candidates' gradients, the two other products.
As in fused attention kernels, a block whose rows span several chunks has its scores recomputed for the
gradient; a block that holds whole rows reuses them. The loss is a scalar whose gradient is known once the
forward sweep ends, so the sweep computes it and `backward` only scales it by the incoming gradient.

The loss is today's distinct-row form (see `tasks.py`): one column bias of log(count) − log Q, the positive
with −log Q, and accidental hits removed as exp(lse) − (n − 1) exp(pos).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# 2^19 scores (2 MiB in float32) per block on the CPU: 2^18-2^20 were equally fast and 2^16 or 2^21 slower
# at 6,837 x 4,363 x 32 on this machine (the synthetic benchmark's batch); a GPU wants few large blocks (each one
# a kernel launch or more).
SOFTMAX_BLOCK_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 26}
MIN_ROWS = 16  # below this a block's products are matrix-vector products; chunk the columns instead
SHARE_MAX = 1 - 1e-7  # the accidental-hit share clamp of the dense form


def _scores(queries: torch.Tensor, candidates: torch.Tensor, bias: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
    """[r, c1 - c0] biased scores of a row block against a chunk of candidates."""
    return torch.addmm(bias[c0:c1], queries, candidates[c0:c1].T)


def _block_lse(
    queries: torch.Tensor, candidates: torch.Tensor, bias: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """(log-sum-exp [r] of a row block's biased scores, and when one chunk held them all, exp(scores - top) with
    the row maxima `top` [r], which the gradient reuses)."""
    n = len(candidates)
    if chunk >= n:
        scores = _scores(queries, candidates, bias, 0, n)
        top = scores.amax(dim=1)
        shifted = scores.sub_(top.unsqueeze(1)).exp_()
        return top + shifted.sum(dim=1).log(), (shifted, top)
    top = torch.full((len(queries),), float("-inf"), dtype=queries.dtype, device=queries.device)
    total = torch.zeros_like(top)
    for c0 in range(0, n, chunk):
        scores = _scores(queries, candidates, bias, c0, min(c0 + chunk, n))
        new_top = torch.maximum(top, scores.amax(dim=1))
        total = total * torch.exp(top - new_top) + torch.exp(scores - new_top.unsqueeze(1)).sum(dim=1)
        top = new_top
    return top + total.log(), None


@dataclass
class _Sweep:
    """What every row block of one loss reads: embeddings, batch rows grouped by query, block and chunk sizes."""

    queries: torch.Tensor
    candidates: torch.Tensor
    query_index: torch.Tensor
    candidate_index: torch.Tensor
    bias: torch.Tensor
    positive: torch.Tensor  # [B] each row's positive logit (with -log Q)
    extra: torch.Tensor | None  # [B] other rows holding the row's product, when accidental hits are removed
    order: torch.Tensor  # batch rows sorted by query
    bounds: list[int]  # block k's rows are order[bounds[k] : bounds[k + 1]]
    rows: int
    chunk: int
    with_grad: bool


def _sweep_blocks(s: _Sweep) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(summed loss, d loss / d queries, d loss / d candidates), one row block after the other."""
    n_q, n_c = len(s.queries), len(s.candidates)
    grad_q = torch.zeros_like(s.queries) if s.with_grad else None
    grad_c = torch.zeros_like(s.candidates) if s.with_grad else None
    total = s.queries.new_zeros(())
    for block in range(len(s.bounds) - 1):
        q0 = block * s.rows
        q1 = min(q0 + s.rows, n_q)
        block_q = s.queries[q0:q1]
        lse, kept = _block_lse(block_q, s.candidates, s.bias, s.chunk)
        members = s.order[s.bounds[block] : s.bounds[block + 1]]
        local = s.query_index[members] - q0
        row_lse = lse[local]
        pos = s.positive[members]
        weight = torch.ones_like(pos)  # d loss_i / d lse = -d loss_i / d pos
        if s.extra is not None:
            share = s.extra[members] * torch.exp(pos - row_lse)
            row_lse = row_lse + torch.log1p(-share.clamp(max=SHARE_MAX))
            weight = torch.where(share <= SHARE_MAX, 1.0 / (1.0 - share.clamp(max=SHARE_MAX)), weight)
        total = total + (row_lse - pos).sum()
        if not s.with_grad:
            continue
        row_weight = torch.zeros_like(lse).index_add_(0, local, weight)
        cols = s.candidate_index[members]
        for c0 in range(0, n_c, s.chunk):
            c1 = min(c0 + s.chunk, n_c)
            # In place on the block: softmax weights times each query's summed row weight, minus the positives.
            if kept is not None:
                shifted, top = kept
                grad = shifted.mul_((row_weight * torch.exp(top - lse)).unsqueeze(1))
            else:
                scores = _scores(block_q, s.candidates, s.bias, c0, c1)
                grad = scores.sub_(lse.unsqueeze(1)).exp_().mul_(row_weight.unsqueeze(1))
            inside = (cols >= c0) & (cols < c1)
            flat = local[inside] * (c1 - c0) + cols[inside] - c0
            grad.view(-1).index_add_(0, flat, -weight[inside])
            grad_q[q0:q1].addmm_(grad, s.candidates[c0:c1])
            grad_c[c0:c1].addmm_(grad.T, block_q)
    return total, grad_q, grad_c


def _blocked_loss(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    query_index: torch.Tensor,
    candidate_index: torch.Tensor,
    bias: torch.Tensor,
    positive_bias: torch.Tensor | None,
    extra: torch.Tensor | None,
    block_elements: int,
    with_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(summed loss, d loss / d queries, d loss / d candidates); see `blocked_softmax_loss` for the arguments."""
    n_q, n_c = len(queries), len(candidates)
    rows = max(MIN_ROWS, block_elements // max(n_c, 1))
    positive = (queries[query_index] * candidates[candidate_index]).sum(dim=1)
    if positive_bias is not None:
        positive = positive + positive_bias
    # Batch rows grouped by query, so each row block finds its batch rows as one slice.
    order = torch.argsort(query_index, stable=True)
    edges = torch.arange(0, n_q + rows, rows, device=query_index.device)
    bounds = torch.searchsorted(query_index[order], edges).tolist()
    sweep = _Sweep(
        queries, candidates, query_index, candidate_index, bias, positive, extra, order, bounds, rows,
        max(1, block_elements // rows), with_grad,
    )  # fmt: skip
    # One thread runs the blocks: their operations are too small to split across threads, and on a busy
    # machine every split waits for each thread to be scheduled (measured: 2 threads took 2-20x as long).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _sweep_blocks(sweep)
    finally:
        torch.set_num_threads(threads)


class _BlockedSoftmax(torch.autograd.Function):
    """The summed loss forward; its gradient, computed by the forward sweep, scaled on the way back."""

    @staticmethod
    def forward(ctx, queries, candidates, query_index, candidate_index, bias, positive_bias, extra, block_elements):
        with_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total, grad_q, grad_c = _blocked_loss(
            queries, candidates, query_index, candidate_index, bias, positive_bias, extra, block_elements, with_grad
        )
        if with_grad:
            ctx.save_for_backward(grad_q, grad_c)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_q, grad_c = ctx.saved_tensors
        return grad_output * grad_q, grad_output * grad_c, None, None, None, None, None, None


def blocked_softmax_loss(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    query_index: torch.Tensor,
    candidate_index: torch.Tensor,
    candidate_counts: torch.Tensor,
    *,
    candidate_log_q: torch.Tensor | None = None,
    remove_accidental_hits: bool = False,
    block_elements: int | None = None,
) -> torch.Tensor:
    """The in-batch softmax cross-entropy summed over the batch's rows, differentiable in both embeddings.

    queries: [Uq, d] distinct query embeddings (temperature applied); candidates: [Uc, d] distinct candidates.
    query_index, candidate_index: [B] each row's distinct query and candidate. candidate_counts: [Uc] rows per
    distinct candidate. candidate_log_q: [Uc] log sampling probabilities, subtracted from every logit (log-Q
    correction). With `remove_accidental_hits`, the other rows holding a row's own product are not its negatives
    (the row's own column stays, as in TensorFlow Recommenders). block_elements: scores per block (default: the
    device's `SOFTMAX_BLOCK_ELEMENTS`). Returns a 0-d tensor.
    """
    if block_elements is None:
        block_elements = SOFTMAX_BLOCK_ELEMENTS.get(queries.device.type, SOFTMAX_BLOCK_ELEMENTS["cuda"])
    bias = candidate_counts.to(queries.dtype).log()
    positive_bias = None
    if candidate_log_q is not None:
        log_q = candidate_log_q.to(queries.dtype)
        bias = bias - log_q
        positive_bias = -log_q[candidate_index]
    extra = (candidate_counts[candidate_index] - 1).to(queries.dtype) if remove_accidental_hits else None
    return _BlockedSoftmax.apply(
        queries, candidates, query_index, candidate_index, bias, positive_bias, extra, block_elements
    )
