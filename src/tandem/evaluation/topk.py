"""Full-catalog retrieval: the rank of each true product among all candidates, and top-K lists.

Ranks are counted as TensorFlow Recommenders' FactorizedTopK counts hits: a test interaction is a hit at K
when fewer than K candidates score strictly higher than its true product (ties go in the interaction's
favour). Work is done in blocks of queries so that no queries × candidates matrix is held at once.

Speed (bench/eval_bench.py measures it against the bare blocked matrix product):
- one score buffer is reused for every block: a fresh 64 MiB tensor per block costs page faults comparable
  to the product itself;
- comparisons turn scores into 1.0/0.0 in place and sum them with a matrix–vector product, several times
  faster than summing booleans, and without copying rows when each query has one interaction;
- for catalogs too large to stay in cache (CHUNK_CATALOGS_ABOVE), true_ranks also blocks the candidates, so
  a chunk of candidate embeddings stays in cache while a whole block of queries is scored against it,
  instead of the whole catalog being streamed from memory once per few query rows;
- top-k first keeps the k best groups of candidates (by each group's maximum), so torch.topk only sees a
  small part of each long row.
"""

from __future__ import annotations

import numpy as np
import torch

# Scores held at once, in elements (64 MiB of float32): bounds memory whatever the catalog size.
BLOCK_ELEMENTS = 1 << 24
# Above this many interactions per query, sorting each score row once beats comparing it per interaction
# (measured with 1,682 and 20,000 candidates: comparing wins below about 128; see bench/RESULTS.md).
SORT_WHEN_INTERACTIONS_PER_QUERY = 128
# Scores compared in one operation (16 MiB of float32, within the last-level cache): fewer, larger
# operations keep thread hand-offs rare on a busy machine.
COMPARE_ELEMENTS = 1 << 22
# Catalogs with more embedding values than this (8 MiB of float32) no longer stay in cache between query
# blocks, and true_ranks scores them a chunk at a time: at most CANDIDATE_CHUNK_ELEMENTS values per chunk
# (512 KiB, half an L2 cache) against at most MAX_BLOCK_ROWS queries (a [512, 4096] block at dimension 32).
CHUNK_CATALOGS_ABOVE = 1 << 21
CANDIDATE_CHUNK_ELEMENTS = 1 << 17
MAX_BLOCK_ROWS = 512
# Rows of at least this many times k candidates take the grouped top-k path; shorter rows use torch.topk.
GROUPED_TOP_K_FACTOR = 256
TOP_K_GROUP = 8


def _block_rows(n_candidates: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, n_candidates))


def _chunk_columns(n_candidates: int, dim: int) -> int:
    """Width of the candidate chunks: at most CANDIDATE_CHUNK_ELEMENTS values, and chunks of equal width
    (rounded up to 16 columns) so that padding the last one costs little. A chunk never holds more than a
    row of the whole catalog, which the row-blocked form holds at least."""
    widest = max(1, CANDIDATE_CHUNK_ELEMENTS // max(1, dim))
    if widest >= n_candidates:
        return n_candidates
    per_chunk = -(-n_candidates // -(-n_candidates // widest))  # ceil(n / number of chunks)
    return min(widest, -(-per_chunk // 16) * 16)


def _score_buffer(queries: torch.Tensor, candidates: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """One [rows, columns] buffer that every block's scores are written into."""
    dtype = torch.result_type(queries, candidates)
    return torch.empty((min(rows, queries.shape[0]), columns), dtype=dtype, device=queries.device)


def _seen_pairs(start: int, stop: int, exclude: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(row within the block, candidate) of every excluded candidate of queries start..stop."""
    if exclude is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    indptr, indices = exclude
    rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
    return rows, np.asarray(indices[indptr[start] : indptr[stop]], dtype=np.int64)


def _mask(scores: torch.Tensor, rows: np.ndarray, columns: np.ndarray) -> None:
    """Set the given entries of a score block to -inf in place."""
    if len(rows):
        index = (torch.from_numpy(rows).to(scores.device), torch.from_numpy(columns).to(scores.device))
        scores[index] = float("-inf")


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
    if len(query_of) == 0:
        return ranks
    order = np.argsort(query_of, kind="stable")
    sorted_queries = query_of[order]
    columns = _chunk_columns(n_candidates, candidates.shape[1])
    busy = len(query_of) >= SORT_WHEN_INTERACTIONS_PER_QUERY * len(np.unique(sorted_queries))
    if columns < n_candidates and candidates.numel() > CHUNK_CATALOGS_ABOVE and not busy:
        rows = max(1, min(MAX_BLOCK_ROWS, block_elements // columns))
        count = _ChunkedCounter(queries, candidates, columns, rows)
    else:
        rows = _block_rows(n_candidates, block_elements)
        count = _RowCounter(queries, candidates, rows)
    for start in range(0, queries.shape[0], rows):
        stop = min(start + rows, queries.shape[0])
        lo, hi = np.searchsorted(sorted_queries, [start, stop])
        if lo < hi:
            picked = order[lo:hi]
            seen = _seen_pairs(start, stop, exclude)
            ranks[picked] = count(start, stop, sorted_queries[lo:hi] - start, true_items[picked], seen)
    return ranks


class _RowCounter:
    """Ranks from one [rows, Nc] product per block of queries (the true scores come from it too)."""

    def __init__(self, queries: torch.Tensor, candidates: torch.Tensor, rows: int) -> None:
        self.queries = queries
        self.candidates_t = candidates.T.contiguous()
        self.buffer = _score_buffer(queries, candidates, rows, candidates.shape[0])

    def __call__(self, start: int, stop: int, local: np.ndarray, items: np.ndarray, seen) -> np.ndarray:
        scores = self.buffer[: stop - start]
        torch.mm(self.queries[start:stop], self.candidates_t, out=scores)  # [rows, Nc]
        local_t = torch.from_numpy(local).to(scores.device)
        true_scores = scores[local_t, torch.from_numpy(items).to(scores.device)]
        _mask(scores, *seen)
        if len(local) >= SORT_WHEN_INTERACTIONS_PER_QUERY * (stop - start):
            return _ranks_by_sorting(scores, local_t, true_scores)
        return _ranks_by_comparing(scores, local, true_scores)


class _ChunkedCounter:
    """Ranks from [rows, columns] products of a block of queries with each chunk of candidates.

    Every chunk product has the same shape (the candidates are padded to whole chunks), and counting needs
    each true score before the first chunk: it comes from one more product of that shape, the block's
    queries against its true items. The chunk pass reads the true scores again where they fall; should any
    differ in the last bit from the first product's, the block is counted again against the chunk pass's
    own values, so every interaction is compared with exactly the scores its candidates got.
    """

    def __init__(self, queries: torch.Tensor, candidates: torch.Tensor, columns: int, rows: int) -> None:
        n, d = candidates.shape
        self.queries, self.candidates, self.n, self.columns = queries, candidates, n, columns
        padded = -(-n // columns) * columns
        self.candidates_t = candidates.new_zeros((d, padded))
        self.candidates_t[:, :n] = candidates.T
        self.buffer = _score_buffer(queries, candidates, rows, columns)

    def __call__(self, start: int, stop: int, local: np.ndarray, items: np.ndarray, seen) -> np.ndarray:
        block = self.queries[start:stop]
        expected = self._true_scores(block, local, items)
        ranks, found = self._count(block, local, items, expected, seen)
        if not torch.equal(found, expected):
            ranks, _ = self._count(block, local, items, found, seen)
        return ranks

    def _true_scores(self, block: torch.Tensor, local: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """Each interaction's true score from a product of the block with its true items (padded to a
        multiple of 64 columns: narrower products may be computed another way and differ in the last bit)."""
        unique, position = np.unique(items, return_inverse=True)
        out = torch.empty(len(items), dtype=self.buffer.dtype, device=self.buffer.device)
        for first in range(0, len(unique), self.columns):
            group = unique[first : first + self.columns]
            width = min(self.columns, -(-len(group) // 64) * 64)
            chosen = self.candidates_t.new_zeros((self.candidates_t.shape[0], width))
            chosen[:, : len(group)] = self.candidates[torch.from_numpy(group).to(self.candidates.device)].T
            scores = self.buffer[: block.shape[0], :width]
            torch.mm(block, chosen, out=scores)
            mine = np.flatnonzero((position >= first) & (position < first + self.columns))
            index = (torch.from_numpy(local[mine]), torch.from_numpy(position[mine] - first))
            out[torch.from_numpy(mine)] = scores[tuple(i.to(scores.device) for i in index)]
        return out

    def _count(self, block, local, items, true_scores, seen) -> tuple[np.ndarray, torch.Tensor]:
        """(strictly higher scores per interaction, each true score as the chunk pass computed it)."""
        scores = self.buffer[: block.shape[0]]
        counts = np.zeros(len(items), dtype=np.int64)
        found = torch.empty_like(true_scores)
        chunk_of_item, chunk_of_seen = items // self.columns, seen[1] // self.columns
        for c, first in enumerate(range(0, self.n, self.columns)):
            torch.mm(block, self.candidates_t[:, first : first + self.columns], out=scores)
            here = np.flatnonzero(chunk_of_item == c)
            if len(here):
                index = (torch.from_numpy(local[here]), torch.from_numpy(items[here] - first))
                found[torch.from_numpy(here)] = scores[tuple(i.to(scores.device) for i in index)]
            mine = chunk_of_seen == c
            _mask(scores, seen[0][mine], seen[1][mine] - first)
            if first + self.columns > self.n:
                scores[:, self.n - first :] = float("-inf")  # padding columns
            counts += _ranks_by_comparing(scores, local, true_scores)
        return counts, found


def _ranks_by_comparing(scores: torch.Tensor, local: np.ndarray, true_scores: torch.Tensor) -> np.ndarray:
    """Per interaction, how many of its query's scores are strictly above its true score.

    scores: [rows, Nc], overwritten; local: [Ni] each interaction's row (sorted); true_scores: [Ni].
    Rows are turned into 1.0/0.0 in place (no booleans, and no gathered copy when each row has exactly one
    interaction) and summed by a matrix–vector product; counts stay exact in float32 below 2^24 candidates,
    above that the booleans are summed.
    """
    n_rows, n_candidates = scores.shape
    exact_in_float = scores.dtype == torch.float64 or (scores.dtype == torch.float32 and n_candidates < 1 << 24)
    ones = scores.new_ones(n_candidates)
    chunk = max(1, COMPARE_ELEMENTS // n_candidates)
    one_per_row = len(local) == n_rows and bool((local == np.arange(n_rows)).all())
    rows = None if one_per_row else scores.new_empty((min(chunk, len(local)), n_candidates))
    local_t = torch.from_numpy(local).to(scores.device)
    counts = torch.empty(len(local), dtype=scores.dtype if exact_in_float else torch.int64, device=scores.device)
    for s in range(0, len(local), chunk):
        e = min(s + chunk, len(local))
        if rows is None:
            block = scores[s:e]
        else:
            block = rows[: e - s]
            torch.index_select(scores, 0, local_t[s:e], out=block)
        threshold = true_scores[s:e].unsqueeze(1)
        if exact_in_float:
            torch.mv(block.gt_(threshold), ones, out=counts[s:e])
        else:
            counts[s:e] = (block > threshold).sum(dim=1)
    return counts.to(torch.int64).cpu().numpy()


def _ranks_by_sorting(scores: torch.Tensor, local: torch.Tensor, true_scores: torch.Tensor) -> np.ndarray:
    """Count higher scores by binary search in each query's sorted row: cheaper than comparing the whole
    row once per interaction when queries have many interactions. local must be sorted ascending."""
    sorted_scores = torch.sort(scores, dim=1).values
    n = scores.shape[1]
    local_np = local.cpu().numpy()
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
    n_queries = queries.shape[0]
    k = min(k, candidates.shape[0])
    if n_queries == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    rows_per_block = _block_rows(candidates.shape[0], block_elements)
    candidates_t = candidates.T.contiguous()
    buffer = _score_buffer(queries, candidates, rows_per_block, candidates.shape[0])
    out_scores = torch.empty((n_queries, k), dtype=buffer.dtype)
    out_idx = torch.empty((n_queries, k), dtype=torch.int64)
    for start in range(0, n_queries, rows_per_block):
        stop = min(start + rows_per_block, n_queries)
        scores = buffer[: stop - start]
        torch.mm(queries[start:stop], candidates_t, out=scores)
        _mask(scores, *_seen_pairs(start, stop, exclude))
        values, indices = _top_k_rows(scores, k)
        out_scores[start:stop] = values.cpu()
        out_idx[start:stop] = indices.cpu()
    return out_scores.numpy(), out_idx.numpy()


def _top_k_rows(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk(scores, k, dim=1) for long rows, faster: the k best lie within the k groups of candidates
    with the highest maxima (any candidate outside them has k group maxima at or above it), so only those
    groups and the leftover tail columns go to torch.topk. Group g holds columns g, g + G, g + 2G, ...
    (G = Nc // TOP_K_GROUP), which makes the group maxima one vectorised pass. Ties may pick other indices
    than torch.topk would, never other scores."""
    n_rows, n = scores.shape
    if k < 1 or n < GROUPED_TOP_K_FACTOR * k:
        return torch.topk(scores, k, dim=1)
    n_groups = n // TOP_K_GROUP
    maxima = scores[:, : n_groups * TOP_K_GROUP].view(n_rows, TOP_K_GROUP, n_groups).amax(dim=1)  # [rows, G]
    _, groups = _top_k_rows(maxima, k)  # [rows, k]
    offsets = torch.arange(TOP_K_GROUP, device=scores.device) * n_groups
    columns = (groups.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(n_rows, -1)
    tail = torch.arange(n_groups * TOP_K_GROUP, n, device=scores.device).expand(n_rows, -1)
    columns = torch.cat([columns, tail], dim=1)
    values, positions = torch.topk(torch.gather(scores, 1, columns), k, dim=1)
    return values, torch.gather(columns, 1, positions)
