"""What the experiment page's Deploy / Try-it panel shows (the pages' experiment view and this app's views both
render it)."""

from __future__ import annotations

from typing import Any

from tandem.web.deployments import catalog, services
from tandem.web.deployments.forms import TryForm
from tandem.web.deployments.models import Deployment, Status
from tandem.web.experiments.models import Experiment


def panel(experiment: Experiment, deployment: Deployment | None = None, error: str = "") -> dict[str, Any]:
    """The panel's context: the latest deployment (checked), why the experiment cannot be deployed (or ""), the
    Try-it form while a server runs, and the error of the action just taken."""
    deployment = deployment or services.latest(experiment)
    try:
        services.bundle_folder(experiment)
        reason = ""
    except services.NotDeployable as e:
        reason = e.message
    running = deployment is not None and deployment.status == Status.RUNNING
    form = None
    if running:
        manifest = services.manifest(deployment)
        form = TryForm(manifest=manifest, known=catalog.known_values(deployment.bundle, manifest["buyer_columns"]))
    return {"deployment": deployment, "reason": reason, "form": form, "error": error}
