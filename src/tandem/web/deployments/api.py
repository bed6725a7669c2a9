"""/api/deployments: deploy an experiment (or get its live server), list, read, stop, and relay requests to the
server (which listens on loopback only, so remote clients reach it through here, inside their organisation)."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations at import.
from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Body, Query, Router, Schema, Status
from ninja.pagination import paginate

from tandem.web.deployments import services
from tandem.web.deployments.models import LIVE, Deployment
from tandem.web.experiments.models import Experiment
from tandem.web.pagination import Pages

router = Router(tags=["deployments"])


class DeploymentIn(Schema):
    """The experiment to serve."""

    experiment: int


class DeploymentOut(Schema):
    """A model server: its state, where it listens (on the platform's machine) and its process."""

    id: int
    experiment_id: int
    status: str
    host: str
    port: int
    pid: int | None
    url: str
    started_at: datetime
    stopped_at: datetime | None
    error: str


class ListFilters(Schema):
    """Optional filter of the deployment list."""

    experiment: int | None = None


def _get(request: HttpRequest, deployment_id: int) -> Deployment:
    deployment = get_object_or_404(Deployment.objects.of(request.auth.organisation), pk=deployment_id)
    return services.refresh(deployment)


@router.post(
    "",
    response={200: DeploymentOut, 201: DeploymentOut},
    summary="Deploy an experiment: 201 with a new server (starting: poll it until running), 200 with the live one",
)
def deploy(request: HttpRequest, payload: DeploymentIn) -> Status:
    experiment = get_object_or_404(Experiment.objects.of(request.auth.organisation), pk=payload.experiment)
    deployment, started = services.deploy(experiment)
    return Status(201 if started else 200, deployment)


@router.get("", response=list[DeploymentOut], summary="List deployments, newest first (filter by experiment)")
@paginate(Pages)
def list_deployments(request: HttpRequest, filters: Query[ListFilters]) -> Any:
    qs = Deployment.objects.of(request.auth.organisation)
    if filters.experiment is not None:
        qs = qs.filter(experiment_id=filters.experiment)
    for deployment in qs.filter(status__in=LIVE):  # few (each is a process): their states checked before listing
        services.refresh(deployment)
    return qs


@router.get("/{deployment_id}", response=DeploymentOut, summary="A deployment, its server's state checked")
def read_deployment(request: HttpRequest, deployment_id: int) -> Deployment:
    return _get(request, deployment_id)


@router.post("/{deployment_id}/stop", response=DeploymentOut, summary="Stop a deployment's server")
def stop_deployment(request: HttpRequest, deployment_id: int) -> Deployment:
    return services.stop(_get(request, deployment_id))


@router.post(
    "/{deployment_id}/{endpoint}",
    response=dict[str, Any],
    summary="Relay a request to the server's /v1/retrieve, /v1/rank or /v1/recommend; its refusals keep their status",
)
def relay(
    request: HttpRequest,
    deployment_id: int,
    endpoint: Literal["retrieve", "rank", "recommend"],
    payload: Body[dict[str, Any]],
) -> dict[str, Any]:
    return services.call(_get(request, deployment_id), endpoint, payload)
