"""Full-catalog retrieval: the rank of each true product among all candidates, and top-K lists.

Ranks are counted as TensorFlow Recommenders' FactorizedTopK counts hits: a test interaction is a hit at K
when fewer than K candidates score strictly higher than its true product (ties go in the interaction's
favour). Work is done in blocks of queries so that no queries × candidates matrix is held at once.
"""

from __future__ import annotations

import numpy as np
import torch

# Scores held at once, in elements (64 MiB of float32): bounds memory whatever the catalog size.
BLOCK_ELEMENTS = 1 << 24
# Above this many interactions per query, sorting each score row once beats comparing it per interaction.
SORT_WHEN_INTERACTIONS_PER_QUERY = 16


def _block_rows(n_candidates: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, n_candidates))


def _mask_seen(scores: torch.Tensor, start: int, exclude: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Set each query's excluded candidates to -inf in place. scores: [rows, Nc] for queries start.."""
    if exclude is None:
        return
    indptr, indices = exclude
    stop = start + scores.shape[0]
    lo, hi = indptr[start], indptr[stop]
    if hi == lo:
        return
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(indptr[start : stop + 1]))
    cols = indices[lo:hi]
    scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")


@torch.no_grad()
def true_ranks(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    query_of: np.ndarray,
    true_items: np.ndarray,
    *,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    block_elements: int = BLOCK_ELEMENTS,
) -> np.ndarray:
    """Rank (0 = best) of each interaction's true product among all candidates.

    queries: [Nq, d]; candidates: [Nc, d]; query_of, true_items: [Ni] query row and true candidate of each
    interaction. exclude: optional CSR (indptr [Nq + 1], indices) of candidates each query may not retrieve
    (e.g. its training products); an interaction's own true product always keeps its score.
    Returns int64 [Ni].
    """
    n_candidates = candidates.shape[0]
    ranks = np.zeros(len(query_of), dtype=np.int64)
    order = np.argsort(query_of, kind="stable")
    sorted_queries = query_of[order]
    rows_per_block = _block_rows(n_candidates, block_elements)
    candidates_t = candidates.T.contiguous()
    for start in range(0, queries.shape[0], rows_per_block):
        stop = min(start + rows_per_block, queries.shape[0])
        lo, hi = np.searchsorted(sorted_queries, [start, stop])
        if lo == hi:
            continue
        scores = queries[start:stop] @ candidates_t  # [rows, Nc]
        picked = order[lo:hi]
        local = torch.from_numpy(sorted_queries[lo:hi] - start)
        true_scores = scores[local, torch.from_numpy(true_items[picked])]
        _mask_seen(scores, start, exclude)
        if hi - lo >= SORT_WHEN_INTERACTIONS_PER_QUERY * (stop - start):
            ranks[picked] = _ranks_by_sorting(scores, local, true_scores)
            continue
        # Compare in chunks of interactions so the gathered rows stay within the block budget.
        for s in range(0, hi - lo, rows_per_block):
            sl = slice(s, min(s + rows_per_block, hi - lo))
            above = (scores[local[sl]] > true_scores[sl].unsqueeze(1)).sum(dim=1)
            ranks[picked[sl]] = above.cpu().numpy()
    return ranks


def _ranks_by_sorting(scores: torch.Tensor, local: torch.Tensor, true_scores: torch.Tensor) -> np.ndarray:
    """Count higher scores by binary search in each query's sorted row: cheaper than comparing the whole
    row once per interaction when queries have many interactions. local must be sorted ascending."""
    sorted_scores = torch.sort(scores, dim=1).values
    n = scores.shape[1]
    local_np = local.numpy()
    bounds = np.flatnonzero(np.diff(local_np)) + 1
    out = np.empty(len(local_np), dtype=np.int64)
    for a, b in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(local_np)]]), strict=True):
        row = sorted_scores[int(local_np[a])]
        out[a:b] = (n - torch.searchsorted(row, true_scores[a:b].contiguous(), right=True)).cpu().numpy()
    return out


@torch.no_grad()
def top_k(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    *,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    block_elements: int = BLOCK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k candidates per query, best first: (scores [Nq, k] float32, indices [Nq, k] int64)."""
    k = min(k, candidates.shape[0])
    rows_per_block = _block_rows(candidates.shape[0], block_elements)
    candidates_t = candidates.T.contiguous()
    out_scores, out_idx = [], []
    for start in range(0, queries.shape[0], rows_per_block):
        scores = queries[start : start + rows_per_block] @ candidates_t
        _mask_seen(scores, start, exclude)
        values, indices = torch.topk(scores, k, dim=1)
        out_scores.append(values.cpu().numpy())
        out_idx.append(indices.cpu().numpy())
    if not out_scores:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(out_scores), np.concatenate(out_idx)
