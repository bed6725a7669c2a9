"""Full-catalog ranks and top-K lists against a brute-force Python computation.

Embeddings are small integers, so scores are exact and many of them tie: the expected ranks check the
TensorFlow Recommenders counting rule (a hit at K when fewer than K candidates score strictly higher).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tandem.evaluation.topk import BLOCK_ELEMENTS, top_k, true_ranks

N_QUERIES, N_CANDIDATES, DIM = 9, 13, 3
# Few interactions per query are counted by comparing score rows; many (here about 50 per query) by sorting them.
N_INTERACTIONS = [60, 400]

# 1 and 13 force one query per block, 30 two per block, 64 several; the default holds everything at once.
BLOCKS = [1, 13, 30, 64, BLOCK_ELEMENTS]


def _integer_embeddings(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(-2, 3, size=(N_QUERIES, DIM)), rng.integers(-2, 3, size=(N_CANDIDATES, DIM))


def _interactions(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Unsorted query rows (the last query has none) and random true candidates."""
    rng = np.random.default_rng(seed + 100)
    return rng.integers(0, N_QUERIES - 1, size=n), rng.integers(0, N_CANDIDATES, size=n)


def _seen_lists(seed: int, query_of: np.ndarray, true_items: np.ndarray) -> list[list[int]]:
    """Random seen candidates per query; each query also 'saw' the true item of its first interaction."""
    rng = np.random.default_rng(seed + 200)
    seen = [
        sorted(rng.choice(N_CANDIDATES, size=int(rng.integers(0, 6)), replace=False).tolist()) for _ in range(N_QUERIES)
    ]
    for q, t in zip(query_of, true_items, strict=True):
        if int(t) not in seen[q]:
            seen[q] = sorted([*seen[q], int(t)])
            break
    return seen


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    for i, items in enumerate(lists):
        indptr[i + 1] = indptr[i] + len(items)
    indices = np.array([c for items in lists for c in items], dtype=np.int64)
    return indptr, indices


def _score(q: list[int], c: list[int]) -> int:
    return sum(a * b for a, b in zip(q, c, strict=True))


def _brute_force_ranks(queries, candidates, query_of, true_items, seen=None) -> list[int]:
    """For each interaction: how many candidates the query may retrieve score strictly above its true item."""
    ranks = []
    for q, t in zip(query_of.tolist(), true_items.tolist(), strict=True):
        true_score = _score(queries[q].tolist(), candidates[t].tolist())
        hidden = set(seen[q]) - {t} if seen is not None else set()
        above = 0
        for j in range(len(candidates)):
            if j not in hidden and _score(queries[q].tolist(), candidates[j].tolist()) > true_score:
                above += 1
        ranks.append(above)
    return ranks


def _count_ties(queries, candidates, query_of, true_items) -> int:
    """Interactions whose true item shares its score with another candidate (the data must exercise ties)."""
    scores = queries @ candidates.T
    ties = 0
    for q, t in zip(query_of, true_items, strict=True):
        ties += int((scores[q] == scores[q, t]).sum() > 1)
    return ties


@pytest.mark.parametrize("n_interactions", N_INTERACTIONS)
@pytest.mark.parametrize("block_elements", BLOCKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_ranks_count_candidates_scoring_strictly_higher(seed, block_elements, n_interactions):
    """The rank of a true item is the number of candidates that score strictly higher; ties do not count."""
    queries, candidates = _integer_embeddings(seed)
    query_of, true_items = _interactions(seed, n_interactions)
    assert _count_ties(queries, candidates, query_of, true_items) > 5

    ranks = true_ranks(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        query_of,
        true_items,
        block_elements=block_elements,
    )

    assert ranks.dtype == np.int64
    assert ranks.tolist() == _brute_force_ranks(queries, candidates, query_of, true_items)


@pytest.mark.parametrize("n_interactions", N_INTERACTIONS)
@pytest.mark.parametrize("block_elements", BLOCKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_ranks_exclude_seen_candidates_except_the_true_item(seed, block_elements, n_interactions):
    """Excluded candidates never outrank a true item, and a true item that was seen keeps its own score."""
    queries, candidates = _integer_embeddings(seed)
    query_of, true_items = _interactions(seed, n_interactions)
    seen = _seen_lists(seed, query_of, true_items)
    assert any(int(t) in seen[q] for q, t in zip(query_of, true_items, strict=True))

    ranks = true_ranks(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        query_of,
        true_items,
        exclude=_csr(seen),
        block_elements=block_elements,
    )

    expected = _brute_force_ranks(queries, candidates, query_of, true_items, seen)
    assert ranks.tolist() == expected
    assert expected != _brute_force_ranks(queries, candidates, query_of, true_items)  # exclusion mattered


def test_true_ranks_of_no_interactions_is_empty():
    """No interactions give an empty int64 array."""
    queries, candidates = _integer_embeddings(0)
    ranks = true_ranks(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
    )
    assert ranks.shape == (0,)
    assert ranks.dtype == np.int64


def _brute_force_top_scores(queries, candidates, k, seen=None) -> list[list[float]]:
    """Each query's k best scores, best first, over the candidates it may retrieve."""
    out = []
    for q in range(len(queries)):
        allowed = [j for j in range(len(candidates)) if seen is None or j not in seen[q]]
        scores = sorted((float(_score(queries[q].tolist(), candidates[j].tolist())) for j in allowed), reverse=True)
        out.append(scores[:k])
    return out


@pytest.mark.parametrize("block_elements", BLOCKS)
def test_top_k_returns_the_best_scores_first_with_their_candidates(block_elements):
    """Top-k scores are the k highest, best first, and each index points at a candidate with that score."""
    queries, candidates = _integer_embeddings(3)
    k = 4

    scores, indices = top_k(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        k,
        block_elements=block_elements,
    )

    assert scores.shape == (N_QUERIES, k)
    assert indices.shape == (N_QUERIES, k)
    assert scores.tolist() == _brute_force_top_scores(queries, candidates, k)
    for q in range(N_QUERIES):
        assert len(set(indices[q].tolist())) == k
        for score, j in zip(scores[q].tolist(), indices[q].tolist(), strict=True):
            assert score == _score(queries[q].tolist(), candidates[j].tolist())


@pytest.mark.parametrize("block_elements", BLOCKS)
def test_top_k_never_returns_excluded_candidates(block_elements):
    """With `exclude`, each query's top-k comes only from candidates it has not seen."""
    queries, candidates = _integer_embeddings(4)
    query_of, true_items = _interactions(4)
    seen = _seen_lists(4, query_of, true_items)
    k = 5

    scores, indices = top_k(
        torch.tensor(queries, dtype=torch.float32),
        torch.tensor(candidates, dtype=torch.float32),
        k,
        exclude=_csr(seen),
        block_elements=block_elements,
    )

    assert scores.tolist() == _brute_force_top_scores(queries, candidates, k, seen)
    for q in range(N_QUERIES):
        assert not set(indices[q].tolist()) & set(seen[q])


def test_top_k_larger_than_the_catalog_returns_every_candidate():
    """A k above the catalog size is cut to the catalog size."""
    queries, candidates = _integer_embeddings(5)
    scores, indices = top_k(
        torch.tensor(queries, dtype=torch.float32), torch.tensor(candidates, dtype=torch.float32), N_CANDIDATES + 10
    )
    assert scores.shape == (N_QUERIES, N_CANDIDATES)
    assert all(sorted(row) == list(range(N_CANDIDATES)) for row in indices.tolist())
