"""Experiments: validated, queued, run by a worker through the engine, and recorded."""
