"""The names of the metrics a run reports, and the default cut-offs: one list that the engine, the CLI and the
platform import (no torch, no Django)."""

from __future__ import annotations

# The cut-offs of the seed's retrieval metrics, reported unless a spec names others.
DEFAULT_KS = (5, 10, 50, 100)


def recall_at(k: int) -> str:
    """The name of recall at cut-off `k`."""
    return f"recall_at_{k}"


# The seed's eight headline metrics, in reading order: retrieval (recall at each default K), then ranking
# (validation errors, then test errors).
RETRIEVAL_HEADLINE = tuple(recall_at(k) for k in DEFAULT_KS)
RANKING_HEADLINE = ("rmse", "mae", "test_rmse", "test_mae")
HEADLINE = RETRIEVAL_HEADLINE + RANKING_HEADLINE
