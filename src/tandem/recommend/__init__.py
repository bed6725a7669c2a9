"""Two-stage recommendation: candidates from several sources, re-ranked by a ranker learned on pair features."""

from __future__ import annotations

from tandem.spec import RecommendSpec


def recommended_settings(category: str | None = None) -> RecommendSpec:
    """The recommended second stage for purchase data with timestamps and a time split: the buyer's history,
    100 EASE neighbours and 100 popular products re-ranked by the mean of four rankers learned over two training
    windows (LambdaRank; the lists of new products by four more, learned with the softmax loss). category: a
    product column (e.g. a subclass) whose share of the buyer's orders is a feature."""
    return RecommendSpec(category=category)
