"""Tandem: retrieval, ranking and multitask recommendation models for B2B catalogs."""

__version__ = "0.1.0"
