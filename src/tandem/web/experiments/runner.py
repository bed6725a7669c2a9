"""The worker's side of an experiment: claim it, run the engine with callbacks that record progress, store results.

Every write of a running experiment is conditional on (status = running, attempt = this run's attempt).
When such a write matches no row, the run is no longer ours (cancelled, declared dead, or re-run) and it
stops at the next training step; its results are never written over someone else's.

A heartbeat thread refreshes `heartbeat_at` every few seconds during the whole run (data loading and
evaluation included), so a killed worker is recognised by its silence (see :mod:`reaper`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from tandem.web import engine, storage
from tandem.web.experiments import signals
from tandem.web.experiments.models import METRIC_FIELDS, Experiment, Status

logger = logging.getLogger("tandem.web.experiments")


class RunStopped(Exception):
    """The experiment stopped being this run's (cancelled, declared dead, re-run): stop training."""


def worker_name() -> str:
    """host:pid of this process, recorded on the experiment it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def json_safe(value: Any) -> Any:
    """NaN and infinities become None: JSON has no such numbers and PostgreSQL refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return value


def _mine(experiment_id: int, attempt: int):
    return Experiment.objects.filter(pk=experiment_id, attempt=attempt, status=Status.RUNNING)


class Heartbeat(threading.Thread):
    """Writes heartbeat_at, the current epoch and step every `interval` seconds; sets `lost` when the run is not ours."""

    def __init__(self, experiment_id: int, attempt: int, interval: float) -> None:
        super().__init__(name=f"heartbeat-{experiment_id}", daemon=True)
        self.experiment_id, self.attempt, self.interval = experiment_id, attempt, interval
        self.lost = threading.Event()
        self._stop_event = threading.Event()
        self.epoch, self.step, self.steps = 0, 0, 0

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.interval):
                self.beat()
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        try:
            n = _mine(self.experiment_id, self.attempt).update(
                heartbeat_at=timezone.now(),
                current_epoch=self.epoch,
                progress={"epoch": self.epoch, "step": self.step, "steps": self.steps},
            )
        except Exception:  # a busy database must not kill the run; the next beat retries
            logger.warning("heartbeat of experiment %s failed", self.experiment_id, exc_info=True)
            return
        if n == 0:
            self.lost.set()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class Recorder:
    """The engine callback that stops a run that is no longer ours and stores each epoch as it ends."""

    def __init__(self, experiment_id: int, attempt: int, heartbeat: Heartbeat) -> None:
        self.experiment_id, self.attempt, self.heartbeat = experiment_id, attempt, heartbeat
        self.history: list[dict[str, Any]] = []
        self.weight_stats: list[dict[str, Any]] = []

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        self.heartbeat.epoch, self.heartbeat.step, self.heartbeat.steps = epoch, step, steps
        if self.heartbeat.lost.is_set():
            raise RunStopped

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None:
        self.history.append(json_safe(record))
        self.weight_stats.append(json_safe(weights))
        self.heartbeat.epoch = epoch
        n = _mine(self.experiment_id, self.attempt).update(
            current_epoch=epoch, history=self.history, weight_stats=self.weight_stats, heartbeat_at=timezone.now()
        )
        if n == 0:
            raise RunStopped


class _Guarded:
    """Runs another callback (MLflow) so that its failure is noted instead of stopping the training."""

    def __init__(self, inner: Any, notes: list[str]) -> None:
        self.inner, self.notes, self.broken = inner, notes, False

    def _call(self, name: str, *args: Any) -> None:
        if self.broken:
            return
        try:
            getattr(self.inner, name)(*args)
        except Exception as e:
            self.broken = True
            self.notes.append(f"MLflow tracking stopped: {type(e).__name__}: {e}")
            logger.warning("MLflow tracking failed", exc_info=True)

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        self._call("on_step", epoch, step, steps)

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None:
        self._call("on_epoch_end", epoch, record, weights)


def claim(experiment_id: int, attempt: int) -> bool:
    """Move a pending experiment to running for this worker; False when it was cancelled or superseded."""
    now = timezone.now()
    n = Experiment.objects.filter(pk=experiment_id, attempt=attempt, status=Status.PENDING).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker_name()
    )
    return n == 1


def _fail(experiment_id: int, attempt: int, message: str, notes: list[str] | None = None) -> None:
    fields: dict[str, Any] = {"status": Status.FAILED, "finished_at": timezone.now(), "error": message}
    if notes:
        fields["notes"] = notes
    _mine(experiment_id, attempt).update(**fields)


def _problems_text(error: engine.SpecError) -> str:
    return "The spec or its data has problems:\n" + "\n".join(f"- {p.path}: {p.message}" for p in error.problems)


def _start_tracking(experiment: Experiment, spec: Any, notes: list[str]) -> Any | None:
    if not settings.MLFLOW_TRACKING_URI:
        return None
    try:
        from tandem.tracking.mlflow import MlflowTracker

        tracker = MlflowTracker(
            settings.MLFLOW_TRACKING_URI,
            experiment_name=settings.MLFLOW_EXPERIMENT_NAME,
            run_name=f"{experiment.name} (#{experiment.pk}.{experiment.attempt})",
            tags={
                "tandem.experiment_id": str(experiment.pk),
                "tandem.attempt": str(experiment.attempt),
                "tandem.organisation": experiment.organisation.name,
                **signals.extra_tags(experiment),
            },
            artifact_location=settings.MLFLOW_ARTIFACT_ROOT,
        )
        run_id = tracker.start(spec)
    except Exception as e:
        notes.append(f"MLflow tracking could not start: {type(e).__name__}: {e}")
        logger.warning("MLflow tracking could not start", exc_info=True)
        return None
    _mine(experiment.pk, experiment.attempt).update(mlflow_run_id=run_id)
    return tracker


def _end_tracking(tracker: Any | None, notes: list[str], **how: Any) -> None:
    if tracker is None:
        return
    try:
        if "result" in how:
            tracker.finish(how["result"], how["out"])
        else:
            tracker.fail(how["message"], killed=how.get("killed", False))
    except Exception as e:
        notes.append(f"MLflow tracking could not finish: {type(e).__name__}: {e}")
        logger.warning("MLflow tracking could not finish", exc_info=True)


def _data_files(spec: dict[str, Any]) -> list[str]:
    """The stored names of the files a spec's data section reads (the transactions, buyers and products)."""
    data = spec.get("data") or {}
    return [data[role]["path"] for role in ("transactions", "buyers", "products") if (data.get(role) or {}).get("path")]


def execute(experiment_id: int, attempt: int) -> str:
    """Run attempt `attempt` of an experiment to its end; returns the status it ended in (or 'skipped')."""
    try:
        return _execute(experiment_id, attempt)
    finally:
        signals.announce_end(experiment_id)


def _execute(experiment_id: int, attempt: int) -> str:
    if not claim(experiment_id, attempt):
        return "skipped"
    experiment = Experiment.objects.select_related("organisation").get(pk=experiment_id)
    heartbeat = Heartbeat(experiment_id, attempt, settings.TANDEM_HEARTBEAT_INTERVAL)
    heartbeat.start()
    notes: list[str] = []
    tracker = None
    try:
        spec = engine.parse(experiment.spec, base=storage.local_root(_data_files(experiment.spec)))
        tracker = _start_tracking(experiment, spec, notes)
        callbacks: list[Any] = [Recorder(experiment_id, attempt, heartbeat), *signals.extra_callbacks(experiment)]
        if tracker is not None:
            callbacks.append(_Guarded(tracker, notes))
        result = engine.run_spec(spec, callbacks)
        relative = f"experiments/{experiment.organisation_id}/{experiment_id}/attempt-{attempt}"
        out = result.save(storage.work_folder(relative))
        storage.store_folder(relative)
        _end_tracking(tracker, notes, result=result, out=out)
        metrics = json_safe(result.metrics)
        n = _mine(experiment_id, attempt).update(
            status=Status.COMPLETED,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            current_epoch=len(result.history),
            history=json_safe(result.history),
            weight_stats=json_safe(result.weight_stats),
            data_report=json_safe(result.data_report),
            notes=[*result.notes, *notes],
            artifacts_dir=relative,
            other_metrics={k: v for k, v in metrics.items() if k not in METRIC_FIELDS},
            **{m: metrics.get(m) for m in METRIC_FIELDS},
        )
        return Status.COMPLETED if n else "stopped"
    except RunStopped:
        _end_tracking(tracker, notes, message="cancelled or taken over", killed=True)
        return "stopped"
    except engine.SpecError as e:
        message = _problems_text(e)
    except engine.TandemError as e:
        message = str(e)
    except Exception as e:
        logger.exception("experiment %s failed", experiment_id)
        message = f"{type(e).__name__}: {e}"
    except BaseException:
        # The worker is being stopped (a second Ctrl-C, SystemExit): record why before going down.
        _fail(experiment_id, attempt, "The worker was stopped during the run; re-run the experiment.", notes)
        _end_tracking(tracker, notes, message="worker stopped")
        raise
    finally:
        heartbeat.stop()
    _end_tracking(tracker, notes, message=message)
    _fail(experiment_id, attempt, message, notes)
    return Status.FAILED
