"""Metrics, full-catalog top-K and the evaluation of a trained model against a popularity baseline."""

from tandem.evaluation.metrics import coverage, rating_metrics, retrieval_metrics
from tandem.evaluation.topk import top_k, true_ranks

__all__ = ["coverage", "rating_metrics", "retrieval_metrics", "top_k", "true_ranks"]
