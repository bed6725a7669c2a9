"""Mirror one engine run into MLflow: parameters (the flattened spec), per-epoch metrics, final metrics, artifacts.

:class:`MlflowTracker` is an engine :class:`~tandem.training.loop.Callback`, so it sees each epoch as it
ends. It talks to MLflow through an explicit ``MlflowClient`` (never the fluent API's process-global
"active run"), so several runs can be tracked from one process. This module knows nothing of Django.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

from tandem.spec import ExperimentSpec

# MLflow's limits on one log_batch call, and on a parameter's value.
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as dotted keys: {"model": {"top_k": 100}} → {"model.top_k": "100"}.

    Lists of scalars stay one value ("[64, 32]"); lists of mappings are numbered ("features.buyer.0.column").
    """
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
    else:
        text = "None" if value is None else str(value)
        out[prefix or "value"] = text[:MAX_PARAM_LENGTH]
    return out


def _numeric(values: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v):
            yield k, float(v)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowTracker:
    """One MLflow run for one engine run.

    Args:
        tracking_uri: where MLflow stores runs, e.g. ``sqlite:///data/mlflow.db`` or ``http://mlflow:5000``.
        experiment_name: the MLflow experiment the run goes in (created when missing).
        run_name: the run's display name.
        tags: extra run tags (e.g. the platform's experiment id).
        artifact_location: where a newly created MLflow experiment keeps artifacts (MLflow's default if None).

    Use: ``start(spec)`` → pass the tracker to ``tandem.run.run(callbacks=[...])`` → ``finish(result, out)``
    or ``fail(message)``.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        experiment_name: str = "tandem",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        artifact_location: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.artifact_location = artifact_location
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id: str | None = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
        except MlflowException:
            # Another worker created it between the two calls.
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return found.experiment_id

    def start(self, spec: ExperimentSpec) -> str:
        """Create the run and log the spec as parameters; returns the MLflow run id."""
        run = self.client.create_run(
            self._experiment_id(),
            run_name=self.run_name or spec.name,
            tags={"tandem.model_type": spec.model.type, **self.tags},
        )
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in sorted(flatten(spec.to_dict()).items())]
        for chunk in _chunks(params, PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)
        return self.run_id

    def _log(self, values: Mapping[str, Any], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in _numeric(values)]
        for chunk in _chunks(metrics, METRICS_PER_BATCH):
            self.client.log_batch(self._run(), metrics=chunk)

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("MlflowTracker.start(spec) must be called before logging")
        return self.run_id

    # The engine's Callback protocol.
    def on_step(self, epoch: int, step: int, steps: int) -> None:
        """Nothing per step: MLflow gets one point per epoch."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None:
        """Log the epoch's losses and validation metrics, and each tower's weight mean and deviation."""
        values = {k: v for k, v in record.items() if k != "epoch"}
        for tower, stats in weights.items():
            if isinstance(stats, Mapping):
                values.update({f"weights.{tower}.{k}": stats[k] for k in ("mean", "std") if k in stats})
        self._log(values, epoch)

    def finish(self, result: Any, out_dir: str | Path) -> None:
        """Log the final metrics and the saved run's spec and model, and close the run as FINISHED.

        `result` is the engine's RunResult; `out_dir` is where ``result.save`` wrote it.
        """
        out = Path(out_dir)
        self._log(result.metrics, step=len(result.history))
        if (out / "spec.yaml").exists():
            self.client.log_artifact(self._run(), str(out / "spec.yaml"))
        for name in ("metrics.json", "history.json", "data_report.json"):
            if (out / name).exists():
                self.client.log_artifact(self._run(), str(out / name), artifact_path="results")
        if (out / "model").is_dir():
            self.client.log_artifacts(self._run(), str(out / "model"), artifact_path="model")
        self.client.set_terminated(self._run(), status=RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, message: str, *, killed: bool = False) -> None:
        """Close the run as FAILED (or KILLED, for a cancelled run), with the reason as a tag."""
        if self.run_id is None:
            return
        self.client.set_tag(self.run_id, "tandem.error", message[:5000])
        status = RunStatus.KILLED if killed else RunStatus.FAILED
        self.client.set_terminated(self.run_id, status=RunStatus.to_string(status))
