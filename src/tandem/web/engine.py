"""The platform's one door into the engine: check a config section, parse a spec, run it.

The engine's pydantic schema (:mod:`tandem.spec`) is the only definition of what a feature, a model or a
training setup may hold. Configs are stored as rows and JSON, and each is checked here by parsing it inside
a placeholder spec: every field rule and every cross-section rule that concerns only that section runs
exactly as it will for a real experiment, and the problems of the other (placeholder) sections are dropped.

Nothing here imports torch; :func:`run_spec` imports the training stack when a worker calls it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from pydantic import BaseModel

from tandem.errors import DataError, Problem, SpecError, TandemError
from tandem.spec import ExperimentSpec, parse_spec

__all__ = [
    "DataError",
    "Problem",
    "SpecError",
    "TandemError",
    "check_data",
    "check_features",
    "check_model",
    "choices_of",
    "parse",
    "problems_to_error",
    "run_spec",
]

# Sections that satisfy every rule, so that only the section under test can produce problems. The
# placeholder split has a validation share so a config's early stopping is judged with the experiment.
_DATA = {
    "transactions": {"path": "placeholder.csv"},
    "buyer_id": "buyer",
    "product_id": "product",
    "split": {"validation_fraction": 0.1},
}
_MODEL = {"type": "retrieval", "buyer_tower_layers": [8], "product_tower_layers": [8]}  # towers that always agree


def _features_for(model: dict[str, Any]) -> dict[str, Any]:
    """Placeholder features whose tower widths agree with the model's layers.

    A tower without layers outputs its features' width, so a model config with layers on one side only is
    valid when the other side's features have that width; the placeholder gives them that width.
    """

    def last(layers: Any) -> int | None:
        ok = isinstance(layers, list) and layers and isinstance(layers[-1], int) and 0 < layers[-1] <= 4096
        return layers[-1] if ok else None

    width = last(model.get("buyer_tower_layers")) or last(model.get("product_tower_layers")) or 32
    feature = {"transform": "id", "embedding_dim": width}
    return {
        "buyer": [{"column": "buyer", **feature}],
        "product": [{"column": "product", **feature}],
        "target": "target",
    }


def choices_of(section: type[BaseModel], field: str) -> list[tuple[str, str]]:
    """Django choices from a spec field's `Literal[...]`, so the platform never restates the engine's options."""
    values = typing.get_args(section.model_fields[field].annotation)
    return [(v, v.replace("_", " ").capitalize()) for v in values]


def _only(problems: Iterable[Problem], prefixes: tuple[str, ...]) -> list[Problem]:
    return [p for p in problems if p.path.split(".")[0] in prefixes]


def _check(raw: dict[str, Any], sections: tuple[str, ...]) -> ExperimentSpec | None:
    """Parse `raw`; raise the problems of `sections`, or return None when only a placeholder failed.

    A placeholder fails only through a rule that couples it with the section under test; such a rule is
    judged when an experiment brings the real sections together, so the section is accepted as written.
    """
    try:
        return parse_spec(raw)
    except SpecError as e:
        mine = _only(e.problems, sections)
        if mine:
            raise SpecError(mine) from None
        return None


def check_features(features: dict[str, Any]) -> dict[str, Any]:
    """Validate a `features` section; return it as the engine normalised it. Raises SpecError (paths `features.…`)."""
    spec = _check({"data": _DATA, "features": features, "model": _MODEL}, ("features",))
    return spec.features.model_dump(mode="json") if spec is not None else features


def check_model(model: dict[str, Any], training: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate `model` and `training` sections; return them normalised. Raises SpecError (`model.…`, `training.…`)."""
    raw = {"data": _DATA, "features": _features_for(model), "model": model, "training": training}
    spec = _check(raw, ("model", "training"))
    if spec is None:
        return model, training
    return spec.model.model_dump(mode="json"), spec.training.model_dump(mode="json")


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a `data` section (ids, filters, aggregation, sampling, split). Raises SpecError (`data.…`)."""
    spec = _check({"data": data, "features": _features_for(_MODEL), "model": _MODEL}, ("data",))
    return spec.data.model_dump(mode="json", exclude_none=True) if spec is not None else data


def parse(raw: dict[str, Any], base: Path | None = None) -> ExperimentSpec:
    """A whole spec, every rule applied; relative data paths resolved against `base`. Raises SpecError."""
    return parse_spec(raw, base=base)


def run_spec(spec: ExperimentSpec, callbacks: list[Any]) -> Any:
    """Train and evaluate `spec` (in this process), returning the engine's RunResult.

    Raises SpecError or DataError for problems with the spec or its data; whatever a callback raises
    stops the run and propagates.
    """
    from tandem.run import run  # torch is imported only where training happens

    return run(spec, callbacks=callbacks)


def problems_to_error(problems: Iterable[Problem], field_for: Callable[[str], str]) -> ValidationError:
    """A Django ValidationError keyed by form field, from engine problems.

    `field_for` maps a spec path (`model.buyer_tower_layers`) to a field name (`buyer_tower_layers`), or to
    NON_FIELD_ERRORS. A message keeps the spec path whenever it says more than the field name does.
    """
    errors: dict[str, list[ValidationError]] = {}
    for p in problems:
        field = field_for(p.path) or NON_FIELD_ERRORS
        tail = p.path.split(".", 1)[1] if "." in p.path else p.path
        message = p.message if tail == field else f"{tail}: {p.message}"
        errors.setdefault(field, []).append(ValidationError(message, code="engine_rule"))
    return ValidationError(errors)
