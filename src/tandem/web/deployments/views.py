"""The experiment page's Deploy / Try-it panel: deploy, stop, the panel itself (polled while a server starts), and
the Try-it form, whose requests the platform relays to the server. Views stay thin, as the pages' do: the work is
in `services` (processes, relaying) and `forms` (the request body and the result rows). Another organisation's
experiment is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tandem.web.accounts.auth import Actor
from tandem.web.deployments import catalog, services
from tandem.web.deployments.forms import TryForm
from tandem.web.deployments.models import Deployment, Status
from tandem.web.deployments.panel import panel
from tandem.web.errors import ApiError
from tandem.web.experiments.models import Experiment
from tandem.web.pages import queries
from tandem.web.pages.views import org_required

PANEL = "deployments/panel.html"


def _panel_response(
    request: HttpRequest, experiment: Experiment, deployment: Deployment | None, error: str
) -> HttpResponse:
    """htmx swaps the panel in place; without htmx the page is loaded again, the outcome as a message."""
    if request.headers.get("HX-Request") == "true":
        return render(request, PANEL, {"e": experiment, "deploy": panel(experiment, deployment, error)})
    if error:
        messages.error(request, error)
    return redirect("pages:experiment", pk=experiment.pk)


@require_POST
@org_required
def deploy(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Start a model server for the experiment's bundle, or point the page at the one already running."""
    experiment = queries.owned(Experiment, actor.organisation, pk)
    try:
        deployment, _ = services.deploy(experiment)
    except ApiError as e:
        return _panel_response(request, experiment, None, e.message)
    return _panel_response(request, experiment, deployment, "")


@require_POST
@org_required
def stop(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Stop the experiment's model server."""
    experiment = queries.owned(Experiment, actor.organisation, pk)
    deployment = services.latest(experiment)
    if deployment is not None:
        services.stop(deployment)
    return _panel_response(request, experiment, deployment, "")


@org_required
def deployment_panel(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """The panel alone, polled every two seconds while the server starts."""
    experiment = queries.owned(Experiment, actor.organisation, pk)
    return render(request, PANEL, {"e": experiment, "deploy": panel(experiment)})


@require_POST
@org_required
def try_it(request: HttpRequest, actor: Actor, pk: int) -> HttpResponse:
    """Relay one Try-it request to the experiment's server; the rows, or the server's refusal, as a fragment."""
    experiment = queries.owned(Experiment, actor.organisation, pk)
    context: dict[str, Any] = {"e": experiment}
    deployment = services.latest(experiment)
    if deployment is None or deployment.status != Status.RUNNING:
        context["error"] = "The model server is not running: deploy the experiment first."
        return render(request, "deployments/try_result.html", context)
    form = TryForm(request.POST, manifest=services.manifest(deployment))
    context["form"] = form
    if form.is_valid():
        context["action"] = form.cleaned_data["action"]
        try:
            context["answer"] = services.call(deployment, context["action"], form.body())
        except ApiError as e:
            context["error"] = e.message
        else:
            rows = form.rows(context["answer"])
            columns, attributes = catalog.product_attributes(experiment, [r["product_id"] for r in rows])
            for row in rows:
                row["attributes"] = attributes.get(str(row["product_id"]), [None] * len(columns))
            context.update(rows=rows, attribute_columns=columns)
    return render(request, "deployments/try_result.html", context)
