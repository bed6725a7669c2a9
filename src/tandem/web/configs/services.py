"""Create, change and copy configs from the API's sections: the record's own `clean` runs the engine once.

A section sent to `update` is merged key by key into the stored one (an optional section sent as null is turned
off); a config that an experiment uses may change only its name and description (changing the rest would
rewrite what that experiment ran).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from tandem.spec import OPTIONAL_SECTIONS
from tandem.web.accounts.models import Organisation
from tandem.web.configs.models import SpecSections
from tandem.web.errors import Conflict
from tandem.web.records import DESCRIPTIVE_FIELDS, save_atomically

R = TypeVar("R", bound=SpecSections)


def _save(record: R) -> R:
    errors: dict[str, list[ValidationError]] = {}
    record.name = record.name.strip()
    name_error = record.name_problem()
    if name_error is not None:
        errors["name"] = [name_error]
    try:
        record.full_clean(exclude=["organisation", "created_by", "name"], validate_constraints=False)
    except ValidationError as e:
        errors.update(e.error_dict)
    if errors:
        raise ValidationError(errors)
    save_atomically(record.save)
    return record


def create(model: type[R], *, organisation: Organisation, user: AbstractBaseUser | None, data: Mapping[str, Any]) -> R:
    """A new config from `data` (name, description and its sections; a section left out takes its defaults, an
    optional one is off)."""
    record = model(organisation=organisation, created_by=user, name=data.get("name", ""))
    record.description = data.get("description", "")
    for section in model.SECTIONS:
        if section in data:
            setattr(record, section, None if data[section] is None else dict(data[section]))
    return _save(record)


def _merged(stored: dict[str, Any] | None, sent: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The stored section with the keys sent; None when the section is sent as null."""
    return None if sent is None else {**(stored or {}), **sent}


def update(record: R, data: Mapping[str, Any]) -> R:
    """Apply a partial update. Raises Conflict when a config in use would change beyond its descriptive fields."""
    merged = {s: _merged(getattr(record, s), data[s]) for s in record.SECTIONS if s in data}
    merged = {s: value for s, value in merged.items() if value is not None or s in OPTIONAL_SECTIONS}
    changed = {s for s, value in merged.items() if value != getattr(record, s)}
    if changed and record.is_in_use:
        raise Conflict(
            f"{record._meta.verbose_name.capitalize()} “{record}” is used by an experiment, so "
            f"{', '.join(sorted(changed))} cannot change; create a copy instead.",
            code="in_use",
        )
    for field in DESCRIPTIVE_FIELDS:
        if data.get(field) is not None:
            setattr(record, field, data[field])
    for section, value in merged.items():
        setattr(record, section, value)
    return _save(record)


def copy(record: R, *, name: str, user: AbstractBaseUser | None) -> R:
    """A copy of a config under a new name, free to change."""
    data = {"name": name, "description": record.description, **record.sections()}
    return create(type(record), organisation=record.organisation, user=user, data=data)
