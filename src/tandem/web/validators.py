"""Validators shared by the apps."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MAX_JSON_DEPTH = 20


def no_nul_characters(value: Any, _depth: int = 0) -> None:
    """Refuse NUL characters anywhere in a JSON value (keys included).

    PostgreSQL cannot store them in text or jsonb, so without this check such input would fail at the
    database, as a server error, instead of as a field error.
    """
    if _depth > MAX_JSON_DEPTH:
        raise ValidationError(_("The value is nested too deeply."), code="too_deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(_("Null characters are not allowed."), code="null_characters_not_allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            no_nul_characters(k, _depth + 1)
            no_nul_characters(v, _depth + 1)
    elif isinstance(value, list):
        for v in value:
            no_nul_characters(v, _depth + 1)
