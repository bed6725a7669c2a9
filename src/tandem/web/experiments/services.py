"""What the API (and later the pages) do with experiments: create and queue, cancel, re-run, delete, compare."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from tandem.web import engine, storage
from tandem.web.accounts.models import Organisation
from tandem.web.errors import Conflict
from tandem.web.experiments import limits
from tandem.web.experiments.forms import ExperimentForm
from tandem.web.experiments.models import ACTIVE, HIGHER_IS_BETTER, METRIC_FIELDS, Experiment, Status
from tandem.web.experiments.signals import announce_end

# What a new attempt starts from: everything a previous attempt wrote is cleared.
_FRESH = {
    "started_at": None,
    "finished_at": None,
    "heartbeat_at": None,
    "worker": "",
    "current_epoch": 0,
    "progress": {},
    "history": [],
    "weight_stats": [],
    "data_report": {},
    "notes": [],
    "other_metrics": {},
    "error": "",
    "artifacts_dir": "",
    "mlflow_run_id": "",
    **{m: None for m in METRIC_FIELDS},
}


def create_experiment(organisation: Organisation, user: AbstractBaseUser | None, data: Mapping[str, Any]) -> Experiment:
    """Validate (engine and platform rules, the model's size) and queue a new experiment.

    Raises ValidationError listing every problem, Conflict (409) while the dataset is not profiled, and
    OverBudget (429) when the organisation's queue is full.
    """
    defaults = model_to_dict(Experiment(), fields=ExperimentForm._meta.fields)
    form = ExperimentForm(data={**defaults, **dict(data)}, organisation=organisation, user=user)
    if not form.is_valid():
        errors = form.errors.as_data()
        not_ready = [e for e in errors.get("dataset", []) if e.code == "not_ready"]
        if not_ready:  # a state, not a wrong value: the same request succeeds once the dataset is profiled
            message = not_ready[0].messages[0]
            raise Conflict(message, code="dataset_not_ready", errors={"dataset": [message]})
        raise ValidationError(errors)
    limits.check_model_size(organisation, form.cleaned_data["dataset"], engine.parse(form.instance.spec))
    limits.check_queue(organisation)
    with transaction.atomic():
        experiment = form.save()
        queue(experiment)
    return experiment


def queue(experiment: Experiment) -> Experiment:
    """Start a new attempt: reset the results, set pending and enqueue the task (atomically with the caller)."""
    from tandem.web.experiments.tasks import run_experiment

    with transaction.atomic():
        attempt = experiment.attempt + 1
        fields = {**_FRESH, "status": Status.PENDING, "attempt": attempt, "queued_at": timezone.now()}
        Experiment.objects.filter(pk=experiment.pk).update(**fields)
        result = run_experiment.enqueue(experiment.pk, attempt)
        Experiment.objects.filter(pk=experiment.pk).update(task_id=str(result.id))
    experiment.refresh_from_db()
    return experiment


def cancel(experiment: Experiment) -> Experiment:
    """Cancel a pending or running experiment; a running one stops at its next training step."""
    n = Experiment.objects.filter(pk=experiment.pk, status__in=ACTIVE).update(
        status=Status.CANCELLED, finished_at=timezone.now(), error="Cancelled."
    )
    if n == 0:
        raise Conflict(f"Only a pending or running experiment can be cancelled; this one is {experiment.status}.",
                       code="not_active")  # fmt: skip
    if experiment.task_id:
        DBTaskResult.objects.filter(id=experiment.task_id, status=TaskResultStatus.READY).delete()
    announce_end(experiment.pk)
    experiment.refresh_from_db()
    return experiment


def rerun(experiment: Experiment) -> Experiment:
    """Run a failed or cancelled experiment again, with the same spec, as a new attempt (within the queue's budget)."""
    if experiment.status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(
            f"Only a failed or cancelled experiment can be re-run; this one is {experiment.status}. "
            "Create a new experiment to run the same configs again.",
            code="not_rerunnable",
        )
    limits.check_queue(experiment.organisation)
    return queue(experiment)


def delete(experiment: Experiment) -> None:
    """Delete a finished experiment and its artifacts (MLflow keeps its run)."""
    if experiment.is_active:
        raise Conflict(f"The experiment is {experiment.status}; cancel it first.", code="active")
    folder = f"experiments/{experiment.organisation_id}/{experiment.pk}"
    experiment.delete()
    storage.delete_folder(folder)


def compare(experiments: list[Experiment]) -> dict[str, Any]:
    """The eight metrics side by side, and for each metric the experiment that does best on it."""
    best: dict[str, int | None] = {}
    for m in METRIC_FIELDS:
        scored = [(getattr(e, m), e.pk) for e in experiments if getattr(e, m) is not None]
        if not scored:
            best[m] = None
            continue
        best[m] = (max if HIGHER_IS_BETTER[m] else min)(scored)[1]
    return {"metrics": list(METRIC_FIELDS), "experiments": experiments, "best": best}
