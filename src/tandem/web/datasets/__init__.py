"""Uploaded transactions (with optional buyer and product tables), profiled with DuckDB."""
