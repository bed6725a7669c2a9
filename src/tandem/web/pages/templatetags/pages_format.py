"""Number formatting for the pages: recall as a percentage, errors with three decimals, a dash for no value.

One place decides how a metric reads, so a card, the detail page, the leaderboard and the comparison agree.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

MISSING = "—"


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """0.2345 → "23.5%" (recall and other shares); None → "—"."""
    if value is None or value == "":
        return MISSING
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def error3(value: Any) -> str:
    """1.10934 → "1.109" (RMSE, MAE, losses); None → "—"."""
    if value is None or value == "":
        return MISSING
    return f"{float(value):.3f}"


@register.filter
def metric(value: Any, name: str) -> str:
    """A metric by its name: recall-like names (recall_at_5, popularity_recall_at_5) as percent, the rest as errors."""
    return percent(value) if "recall" in str(name) else error3(value)


@register.filter
def count(value: Any) -> str:
    """12345 → "12,345"; None → "—"."""
    if value is None or value == "":
        return MISSING
    return f"{int(value):,}"


@register.filter
def compact(value: Any) -> str:
    """A statistic of any type kept short: floats with four significant digits, long text cut."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


@register.filter
def pretty_json(value: Any) -> str:
    """A JSON value indented for reading (autoescaped by the template)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@register.filter
def json_value(value: Any) -> str:
    """A spec value as it is written in a spec: [64, 32], true, null, "relu"."""
    return json.dumps(value, ensure_ascii=False)


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago `moment` was: "just now" under a minute, else "5 minutes ago" (Django's timesince)."""
    if moment is None:
        return MISSING
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def duration(start: datetime | None, end: datetime | None) -> str:
    """The time from `start` to `end`: "42 s", "3 min 5 s", "2 h 10 min"."""
    if start is None or end is None:
        return MISSING
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
