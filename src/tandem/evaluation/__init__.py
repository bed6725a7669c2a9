"""Metrics, full-catalog top-K, the list baselines and the evaluation of a trained model beside them.

Modules: `metrics` (metrics from ranks and lists, and their stored names), `topk` (full-catalog ranks and
top-K), `baselines` (popularity, buy-again, EASE and buy-again then EASE lists; numpy, so serving uses them
too) and `evaluate` (a model on a split).
"""
