""" "Use recommended settings" on the new-experiment page: the dataset's recommended configs are made (or found)
and the form comes back with them chosen and the recommended time split filled in."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from tandem.web.accounts.auth import Actor
from tandem.web.configs.recommended import recommended_configs
from tandem.web.datasets.models import Dataset
from tandem.web.pages import queries
from tandem.web.pages.views import org_required


@require_POST
@org_required
def recommended(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Profile the chosen dataset, make its recommended configs, and return to the form with them chosen."""
    back = reverse("pages:experiment_new")
    dataset_id = request.POST.get("dataset", "")
    if not dataset_id.isdigit():
        messages.error(request, "Choose a dataset first: the recommended settings are made from its profile.")
        return redirect(back)
    dataset = queries.owned(Dataset, actor.organisation, int(dataset_id))
    try:
        made = recommended_configs(dataset, actor.user)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect(f"{back}?{urlencode({'dataset': dataset.pk})}")
    messages.success(
        request,
        f"Recommended settings for “{dataset.name}”: “{made.feature_config.name}” and “{made.model_config.name}” "
        f"(two-stage recommend), time split at {made.split_cutoff}. Validate, then start.",
    )
    return redirect(f"{back}?{urlencode(made.experiment_initial(dataset))}")
