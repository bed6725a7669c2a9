"""Update and delete an organisation's record, and save records atomically: the services and views call these.

Views and endpoints stay thin: they hand the input to one of these functions and map the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.forms.models import model_to_dict

from tandem.web.errors import Conflict
from tandem.web.forms import OwnedModelForm

M = TypeVar("M", bound=models.Model)
R = TypeVar("R")

# Fields whose change does not alter what an experiment ran, so they may change while a record is in use.
DESCRIPTIVE_FIELDS = frozenset({"name", "description"})


def save_atomically(save: Callable[[], R]) -> R:
    """Run `save` in a transaction. Raises ValidationError on `name` when another request just took the name."""
    try:
        with transaction.atomic():
            return save()
    except IntegrityError:
        # Two requests raced for the same name; the loser gets the error the checks would have given.
        raise ValidationError(
            {"name": ValidationError("This name was just taken in your organisation.", code="duplicate_name")}
        ) from None


def _save(form: OwnedModelForm) -> Any:
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    return save_atomically(form.save)


def update(instance: M, form_class: type[OwnedModelForm], *, data: Mapping[str, Any]) -> M:
    """Apply a partial update. Raises Conflict when a record in use would change beyond its descriptive fields.

    A record is in use when an experiment refers to it: changing it would rewrite what that experiment
    appears to have run, so only its name and description may change; copy it to change the rest.
    """
    fields = form_class._meta.fields
    current = model_to_dict(instance, fields=fields)
    # Compared as values (a form's changed_data reads [] and {} as "empty" and flags them as changes).
    changed = {k for k, v in data.items() if k in current and v != current[k]} - DESCRIPTIVE_FIELDS
    if changed and getattr(instance, "is_in_use", False):
        raise Conflict(
            f"{instance._meta.verbose_name.capitalize()} “{instance}” is used by an experiment, so "
            f"{', '.join(sorted(changed))} cannot change; create a copy instead.",
            code="in_use",
        )
    form = form_class(data={**current, **dict(data)}, instance=instance, organisation=instance.organisation)  # type: ignore[attr-defined]
    return _save(form)


def delete(instance: models.Model) -> None:
    """Delete a record; a record that experiments use raises ProtectedError (reported as 409)."""
    instance.delete()
