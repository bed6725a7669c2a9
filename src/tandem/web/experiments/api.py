"""/api/experiments: create (validated, then queued), list with filters, detail, cancel, re-run, delete, compare."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations at import.
from datetime import datetime
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field as PydanticField

from tandem.spec import ModelSpec
from tandem.web.experiments import services
from tandem.web.experiments.models import METRIC_FIELDS, Experiment
from tandem.web.experiments.reaper import reap_expired
from tandem.web.pagination import Pages

router = Router(tags=["experiments"])

MAX_COMPARED = 20


class ExperimentIn(Schema):
    """A new experiment: the ids of a dataset, a feature config and a model config, sampling and split."""

    name: str = ""
    description: str = ""
    dataset: int
    feature_config: int
    # pydantic reserves the name `model_config`, so the field takes it as its alias (the key clients send).
    model_config_ref: int = Field(alias="model_config")
    sample_fraction: float = 1.0
    split_kind: str = "random"
    test_fraction: float = 0.2
    validation_fraction: float = 0.0
    split_cutoff: str = ""
    seed: int = 42


class Metrics(Schema):
    """The seed's eight metrics; null when the model type does not measure one."""

    recall_at_5: float | None = None
    recall_at_10: float | None = None
    recall_at_50: float | None = None
    recall_at_100: float | None = None
    rmse: float | None = None
    mae: float | None = None
    test_rmse: float | None = None
    test_mae: float | None = None


class ExperimentOut(Schema):
    """An experiment's state, progress and headline metrics."""

    id: int
    name: str
    description: str
    status: str
    model_type: str
    dataset_id: int
    feature_config_id: int
    model_config_id: int
    sample_fraction: float
    split_kind: str
    test_fraction: float
    validation_fraction: float
    split_cutoff: str
    seed: int
    attempt: int
    current_epoch: int
    total_epochs: int
    progress: dict[str, Any]
    metrics: Metrics
    error: str
    mlflow_run_id: str
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None

    @staticmethod
    def resolve_metrics(obj: Experiment) -> dict[str, float | None]:
        return obj.metrics


class ExperimentDetail(ExperimentOut):
    """Everything recorded: the spec, per-epoch history and weight statistics, all metrics, notes."""

    other_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    weight_stats: list[dict[str, Any]]
    data_report: dict[str, Any]
    notes: list[str]
    spec: dict[str, Any]
    worker: str
    artifacts_dir: str


StatusName = Literal["pending", "running", "completed", "failed", "cancelled"]
ModelType = ModelSpec.model_fields["type"].annotation  # the spec's own list of model types
ExperimentId = Annotated[int, PydanticField(ge=1, le=2**63 - 1)]


class ListFilters(Schema):
    """Optional filters of the experiment list."""

    status: StatusName | None = None
    model_type: ModelType | None = None


class CompareOut(Schema):
    """The experiments in the order asked, and per metric the id of the best one (null when none has it)."""

    metrics: list[str]
    experiments: list[ExperimentOut]
    best: dict[str, int | None]


def _get(request: HttpRequest, experiment_id: int) -> Experiment:
    return get_object_or_404(Experiment.objects.of(request.auth.organisation), pk=experiment_id)


@router.post("", response={201: ExperimentDetail}, summary="Create an experiment: validate, then queue it")
def create_experiment(request: HttpRequest, payload: ExperimentIn) -> Status:
    actor = request.auth
    return Status(201, services.create_experiment(actor.organisation, actor.user, payload.model_dump(by_alias=True)))


@router.get("", response=list[ExperimentOut], summary="List experiments (filter by status and model type)")
@paginate(Pages)
def list_experiments(request: HttpRequest, filters: Query[ListFilters]) -> Any:
    reap_expired()
    qs = Experiment.objects.of(request.auth.organisation)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.model_type:
        qs = qs.filter(model_type=filters.model_type)
    return qs


@router.get("/compare", response=CompareOut, summary="Several experiments' metrics side by side")
def compare_experiments(request: HttpRequest, ids: Query[list[ExperimentId]]) -> dict[str, Any]:
    wanted = list(dict.fromkeys(ids))
    if not wanted or len(wanted) > MAX_COMPARED:
        raise ValidationError(
            {"ids": ValidationError(f"Give between 1 and {MAX_COMPARED} experiment ids (?ids=1&ids=2).", code="count")}
        )
    found = {e.pk: e for e in Experiment.objects.of(request.auth.organisation).filter(pk__in=wanted)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise Http404(f"No experiment {', '.join(map(str, missing))} in your organisation.")
    return services.compare([found[i] for i in wanted])


@router.get("/{experiment_id}", response=ExperimentDetail, summary="An experiment with metrics, history and weights")
def read_experiment(request: HttpRequest, experiment_id: int) -> Experiment:
    reap_expired()
    return _get(request, experiment_id)


@router.post("/{experiment_id}/cancel", response=ExperimentDetail, summary="Cancel a pending or running experiment")
def cancel_experiment(request: HttpRequest, experiment_id: int) -> Experiment:
    return services.cancel(_get(request, experiment_id))


@router.post("/{experiment_id}/rerun", response=ExperimentDetail, summary="Run a failed or cancelled experiment again")
def rerun_experiment(request: HttpRequest, experiment_id: int) -> Experiment:
    return services.rerun(_get(request, experiment_id))


@router.delete("/{experiment_id}", response={204: None}, summary="Delete a finished experiment")
def delete_experiment(request: HttpRequest, experiment_id: int) -> Status:
    services.delete(_get(request, experiment_id))
    return Status(204, None)


assert set(Metrics.model_fields) == set(METRIC_FIELDS)
