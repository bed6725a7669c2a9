"""An experiment's live progress and metric rows, for the card template (the list, the dashboard, polling)."""

from __future__ import annotations

from django import template

from tandem.web.experiments.models import Experiment
from tandem.web.pages import queries

register = template.Library()


@register.simple_tag
def experiment_progress(experiment: Experiment) -> queries.Progress:
    """`{% experiment_progress e as p %}`: the bar's share and label."""
    return queries.progress(experiment)


@register.simple_tag
def experiment_rows(experiment: Experiment) -> list[queries.MetricRow]:
    """`{% experiment_rows e as rows %}`: the card's metric rows for its model type."""
    return queries.card_rows(experiment)
