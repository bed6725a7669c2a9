"""The platform's one door into the engine: check spec sections, parse a spec, run it.

The engine's pydantic schema (:mod:`tandem.spec`) is the only definition of what a feature, a model or a
training setup may hold. A config's sections are checked alone with :func:`tandem.spec.check_sections`
(their fields and the rules among them); the rules that need the other sections or the data run when an
experiment brings them together (:func:`tandem.experiment_rules.check_experiment`).

Problems keep their spec path: a ValidationError raised here is keyed by it (`model.epochs`,
`features.buyer.0.column`), which is the API's `errors` key, and forms map it to their fields.

Nothing here imports torch; :func:`run_spec` imports the training stack when a worker calls it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from pydantic import BaseModel

from tandem import init
from tandem import spec as engine_spec
from tandem.data.profile import profile_data
from tandem.errors import DataError, Problem, SpecError, TandemError
from tandem.experiment_rules import DataFacts, parse_experiment
from tandem.notes import plain
from tandem.spec import ExperimentSpec, parse_spec

__all__ = [
    "DataError",
    "DataFacts",
    "Problem",
    "SpecError",
    "TandemError",
    "check_sections",
    "choices_of",
    "parse",
    "parse_experiment",
    "problems_error",
    "problems_to_error",
    "recommended_sections",
    "run_spec",
]


def choices_of(section: type[BaseModel], field: str) -> list[tuple[str, str]]:
    """Django choices from a spec field's `Literal[...]`, so the platform never restates the engine's options."""
    values = typing.get_args(section.model_fields[field].annotation)
    return [(v, v.replace("_", " ").capitalize()) for v in values]


def problems_error(problems: Iterable[Problem]) -> ValidationError:
    """A Django ValidationError keyed by each problem's spec path."""
    errors: dict[str, list[ValidationError]] = {}
    for p in problems:
        errors.setdefault(p.path, []).append(ValidationError(p.message, code="spec"))
    return ValidationError(errors)


def check_sections(
    sections: Mapping[str, Any], field_for: Callable[[Problem], str] | None = None
) -> dict[str, BaseModel]:
    """Validate spec sections alone; return them parsed.

    Raises ValidationError keyed by spec path, or by the fields `field_for` names (see :func:`problems_to_error`).
    """
    try:
        return engine_spec.check_sections(sections)
    except SpecError as e:
        raise (problems_to_error(e.problems, field_for) if field_for else problems_error(e.problems)) from None


def parse(raw: dict[str, Any], base: Path | None = None) -> ExperimentSpec:
    """A whole spec, every rule applied; relative data paths resolved against `base`. Raises SpecError."""
    return parse_spec(raw, base=base)


def recommended_sections(
    transactions: str, target_name: str, orders_name: str | None, **profile_options: Any
) -> tuple[dict[str, Any], str]:
    """The sections `tandem init` recommends for a dataset (features, model, training, recommend, …) and the
    time split's cutoff. `target_name`/`orders_name` are the dataset's columns of each pair's total target
    and order count; `profile_options` those of :func:`tandem.data.profile.profile_data`. Raises SpecError
    or DataError."""
    profile = profile_data(transactions, **profile_options)
    return plain(init.recommended_sections(profile, target_name, orders_name)), init.recommended_cutoff(profile)


def run_spec(spec: ExperimentSpec, callbacks: list[Any]) -> Any:
    """Train and evaluate `spec` (in this process), returning the engine's RunResult.

    Raises SpecError or DataError for problems with the spec or its data; whatever a callback raises
    stops the run and propagates.
    """
    from tandem.run import run  # torch is imported only where training happens

    return run(spec, callbacks=callbacks)


def problems_to_error(problems: Iterable[Problem], field_for: Callable[[Problem], str]) -> ValidationError:
    """A Django ValidationError keyed by the fields of a form whose fields are coarser than spec paths.

    `field_for` names the field a problem belongs to (or NON_FIELD_ERRORS); the message starts with the
    part of the path the field does not already say, so a person sees where inside the field to look.
    """
    errors: dict[str, list[ValidationError]] = {}
    for p in problems:
        field = field_for(p) or NON_FIELD_ERRORS
        inner = p.path.split(".", 1)[1] if "." in p.path else p.path
        message = p.message if inner == field else f"{inner}: {p.message}"
        errors.setdefault(field, []).append(ValidationError(message, code="spec"))
    return ValidationError(errors)
