"""/api/feature-configs and /api/model-configs: create, list, read, update (PATCH), delete, copy.

The request and response schemas are built from the spec's section classes, so /api/openapi.json documents
exactly what the engine accepts, with its defaults and bounds. A section in a request is documented as its
class but validated by the engine when the record is cleaned, so every problem (a field's and a rule's)
comes back in one 422, keyed by its spec path (`model.epochs`).
"""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations, which name local classes.
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status
from ninja.pagination import paginate
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, create_model

from tandem.spec import OPTIONAL_SECTIONS, ExperimentSpec
from tandem.web.configs import services
from tandem.web.configs.models import FeatureConfig, ModelConfig, SpecSections
from tandem.web.errors import BODY_PARAM
from tandem.web.pagination import Pages

router = Router()


# --------------------------------------------------------------------------------------------- schemas


def _an_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object of the section's keys")
    return value


def _partial(section: type[BaseModel]) -> type[BaseModel]:
    """The section with no required key, for a PATCH (the keys sent are merged into the stored section)."""
    required = {n: (f.annotation, Field(None, description=f.description)) for n, f in section.model_fields.items()
                if f.is_required()}  # fmt: skip
    if not required:
        return section
    return create_model(f"{section.__name__}Patch", __base__=section, **required)


def _section(section: type[BaseModel]) -> Any:
    """A request key documented as `section` and validated later, with the record, by the engine."""
    return Annotated[dict[str, Any], PlainValidator(_an_object, json_schema_input_type=section)]


class _Input(Schema):
    """A request body: a key this endpoint does not know is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def _schemas(model: type[SpecSections], label: str) -> tuple[type[Schema], type[Schema], type[Schema]]:
    """The In, Patch and Out schemas of a config: its name and description, then its spec sections."""
    sections = model.SECTIONS
    name = model.__name__
    schema_in = create_model(
        f"{name}In",
        __base__=_Input,
        __doc__=f"A new {label}; a section left out takes the engine's defaults.",
        name=(str, ...),
        description=(str, ""),
        **{s: _in_field(s, cls) for s, cls in sections.items()},
    )
    schema_patch = create_model(
        f"{name}Patch",
        __base__=_Input,
        __doc__="A partial update: only the keys sent change; a section's keys are merged into the stored section "
        "(an optional section sent as null is turned off).",
        name=(str | None, None),
        description=(str | None, None),
        **{s: (_section(_partial(cls)) | None, None) for s, cls in sections.items()},
    )
    schema_out = create_model(
        f"{name}Out",
        __base__=Schema,
        __doc__=f"A {label} as stored (normalised by the engine); `in_use` when an experiment refers to it.",
        id=(int, ...),
        name=(str, ...),
        description=(str, ...),
        **({"model_type": (str, ...)} if "model" in sections else {}),
        **{s: (cls | None, None) if s in OPTIONAL_SECTIONS else (cls, ...) for s, cls in sections.items()},
        in_use=(bool, Field(validation_alias="is_in_use")),
        created_at=(datetime, ...),
        updated_at=(datetime, ...),
    )
    return schema_in, schema_patch, schema_out


def _in_field(name: str, section: type[BaseModel]) -> tuple[Any, Any]:
    """A section of a create request: required when the section has required keys; an optional section (such
    as `recommend`) is off when left out or null; any other takes the engine's defaults."""
    if name in OPTIONAL_SECTIONS:
        return _section(section) | None, Field(
            None, description=f"{ExperimentSpec.model_fields[name].description} Off when null."
        )
    if any(f.is_required() for f in section.model_fields.values()):
        return _section(section), ...
    return _section(section), Field(default_factory=dict)


FeatureConfigIn, FeatureConfigPatch, FeatureConfigOut = _schemas(FeatureConfig, "feature config")
ModelConfigIn, ModelConfigPatch, ModelConfigOut = _schemas(ModelConfig, "model config")


class CopyIn(_Input):
    """The name of the copy."""

    name: str


# ---------------------------------------------------------------------------------------- endpoints
# Each kind gets the same six endpoints; `_crud` writes them once for a (model, schemas) quadruple.


def _crud(prefix: str, model: type[SpecSections], schema_in: type, schema_patch: type, schema_out: type, tag: str):
    label = model._meta.verbose_name
    name = model._meta.model_name

    def route(method: str, path: str, response: Any, summary: str, operation_id: str) -> Any:
        return router.api_operation(
            [method], prefix + path, response=response, tags=[tag], summary=summary, operation_id=operation_id
        )

    def _get(request: HttpRequest, config_id: int) -> Any:
        return get_object_or_404(model.objects.of(request.auth.organisation), pk=config_id)

    @route("POST", "", {201: schema_out}, f"Create a {label}", f"create_{name}")
    def create(request: HttpRequest, payload: schema_in) -> Status:  # type: ignore[valid-type]
        actor = request.auth
        data = payload.model_dump()
        return Status(201, services.create(model, organisation=actor.organisation, user=actor.user, data=data))

    @route("GET", "", list[schema_out], f"List {label}s", f"list_{name}s")
    @paginate(Pages)
    def list_(request: HttpRequest) -> Any:
        return model.objects.of(request.auth.organisation)

    @route("GET", "/{config_id}", schema_out, f"Read a {label}", f"read_{name}")
    def read(request: HttpRequest, config_id: int) -> Any:
        return _get(request, config_id)

    @route("PATCH", "/{config_id}", schema_out, f"Update a {label}", f"update_{name}")
    def update(request: HttpRequest, config_id: int, payload: schema_patch) -> Any:  # type: ignore[valid-type]
        return services.update(_get(request, config_id), payload.model_dump(exclude_unset=True))

    @route("POST", "/{config_id}/copy", {201: schema_out}, f"Copy a {label}", f"copy_{name}")
    def copy(request: HttpRequest, config_id: int, payload: CopyIn) -> Status:
        return Status(201, services.copy(_get(request, config_id), name=payload.name, user=request.auth.user))

    @route("DELETE", "/{config_id}", {204: None}, f"Delete a {label}", f"delete_{name}")
    def delete(request: HttpRequest, config_id: int) -> Status:
        _get(request, config_id).delete()  # ProtectedError (in use) is reported as 409
        return Status(204, None)


assert BODY_PARAM == "payload"  # the error mapper strips this parameter name from locations
_crud("/feature-configs", FeatureConfig, FeatureConfigIn, FeatureConfigPatch, FeatureConfigOut, "feature configs")
_crud("/model-configs", ModelConfig, ModelConfigIn, ModelConfigPatch, ModelConfigOut, "model configs")
