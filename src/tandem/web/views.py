"""The home page: who is signed in, their organisation's counts, and where the API and its docs are."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tandem.web.accounts.auth import actor_for
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tandem.web.experiments.models import Experiment


@login_required
def home(request: HttpRequest) -> HttpResponse:
    actor = actor_for(request.user)
    counts = {}
    if actor is not None:
        org = actor.organisation
        counts = {
            "datasets": Dataset.objects.of(org).count(),
            "feature configs": FeatureConfig.objects.of(org).count(),
            "model configs": ModelConfig.objects.of(org).count(),
            "experiments": Experiment.objects.of(org).count(),
        }
        recent = Experiment.objects.of(org)[:10]
    else:
        recent = []
    return render(request, "tandem/home.html", {"actor": actor, "counts": counts, "recent": recent})
