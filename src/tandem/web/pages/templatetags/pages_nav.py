"""Which navigation entry a page belongs to, from the name of the URL that served it."""

from __future__ import annotations

from django import template
from django.http import HttpRequest

register = template.Library()

# URL name prefix → navigation entry.
SECTIONS = (
    ("dashboard", "dashboard"),
    ("dataset", "datasets"),
    ("feature_config", "feature_configs"),
    ("model_config", "model_configs"),
    ("experiment", "experiments"),
    ("compare", "compare"),
    ("stud", "studies"),
)


@register.simple_tag
def nav_class(request: HttpRequest, entry: str) -> str:
    """ "active" when the current page belongs to navigation `entry`, else ""."""
    match = getattr(request, "resolver_match", None)
    name = match.url_name if match else ""
    section = next((s for prefix, s in SECTIONS if name and name.startswith(prefix)), "")
    return "active" if section == entry else ""
