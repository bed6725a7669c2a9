"""The dashboard's running studies, as a tag so the dashboard's own view needs no change."""

from __future__ import annotations

from typing import Any

from django import template

from tandem.web.accounts.auth import actor_for
from tandem.web.studies.models import Study, StudyStatus

register = template.Library()


@register.inclusion_tag("studies/partials/running.html", takes_context=True)
def running_studies(context: dict[str, Any]) -> dict[str, Any]:
    actor = actor_for(context["request"].user)
    if actor is None:
        return {"studies": []}
    studies = Study.objects.of(actor.organisation).filter(status=StudyStatus.RUNNING).prefetch_related("trials")[:6]
    return {"studies": studies}
