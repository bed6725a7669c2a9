"""Experiment tracking outside the platform's own database (MLflow).

Import :mod:`tandem.tracking.mlflow` only where MLflow is wanted: importing it imports MLflow.
"""
