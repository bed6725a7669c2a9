"""/api/feature-configs and /api/model-configs: create, list, read, update (PATCH), delete, copy."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations, which name local classes.
from datetime import datetime
from typing import Any

from django.forms.models import model_to_dict
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status
from ninja.pagination import paginate
from pydantic import StrictInt

from tandem.web import records
from tandem.web.configs.forms import FeatureConfigForm, ModelConfigForm
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.errors import BODY_PARAM
from tandem.web.pagination import Pages

router = Router()


# --------------------------------------------------------------------------------------------- schemas


class FeatureConfigIn(Schema):
    """A new feature config; `buyer_features`/`product_features` items are the engine's feature specs."""

    name: str
    description: str = ""
    buyer_features: list[dict[str, Any]]
    product_features: list[dict[str, Any]]
    target_column: str = ""
    target_transform: str = "none"


class FeatureConfigPatch(Schema):
    """A partial update: only the keys sent change."""

    name: str | None = None
    description: str | None = None
    buyer_features: list[dict[str, Any]] | None = None
    product_features: list[dict[str, Any]] | None = None
    target_column: str | None = None
    target_transform: str | None = None


class FeatureConfigOut(Schema):
    """A feature config as stored (normalised by the engine); `in_use` when an experiment refers to it."""

    id: int
    name: str
    description: str
    buyer_features: list[dict[str, Any]]
    product_features: list[dict[str, Any]]
    target_column: str
    target_transform: str
    in_use: bool
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_in_use(obj: FeatureConfig) -> bool:
        return obj.is_in_use


class ModelConfigIn(Schema):
    """A new model config: the seed's fields, plus `options` for any other engine model/training key."""

    name: str
    description: str = ""
    model_type: str = "multitask"
    buyer_tower_layers: list[StrictInt] = []
    product_tower_layers: list[StrictInt] = []
    rating_head_layers: list[StrictInt] = [256, 128, 1]
    output_embedding_dim: int | None = None
    retrieval_weight: float = 1.0
    ranking_weight: float = 1.0
    loss_function: str = "mse"
    retrieval_algorithm: str = "brute_force"
    top_k: int = 100
    optimizer: str = "adagrad"
    learning_rate: float = 0.1
    batch_size: int = 4096
    epochs: int = 3
    options: dict[str, Any] = {}


class ModelConfigPatch(Schema):
    """A partial update: only the keys sent change (null clears output_embedding_dim)."""

    name: str | None = None
    description: str | None = None
    model_type: str | None = None
    buyer_tower_layers: list[StrictInt] | None = None
    product_tower_layers: list[StrictInt] | None = None
    rating_head_layers: list[StrictInt] | None = None
    output_embedding_dim: int | None = None
    retrieval_weight: float | None = None
    ranking_weight: float | None = None
    loss_function: str | None = None
    retrieval_algorithm: str | None = None
    top_k: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    options: dict[str, Any] | None = None


class ModelConfigOut(Schema):
    """A model config; `in_use` when an experiment refers to it (then only name and description change)."""

    id: int
    name: str
    description: str
    model_type: str
    buyer_tower_layers: list[int]
    product_tower_layers: list[int]
    rating_head_layers: list[int]
    output_embedding_dim: int | None
    retrieval_weight: float
    ranking_weight: float
    loss_function: str
    retrieval_algorithm: str
    top_k: int
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    options: dict[str, Any]
    in_use: bool
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_in_use(obj: ModelConfig) -> bool:
        return obj.is_in_use


class CopyIn(Schema):
    """The name of the copy."""

    name: str


def _patch_data(payload: Schema) -> dict[str, Any]:
    # PATCH: only the keys sent; an explicit null for output_embedding_dim clears it.
    return payload.model_dump(exclude_unset=True)


# ---------------------------------------------------------------------------------------- endpoints
# Each kind gets the same six endpoints; `_crud` writes them once for a (model, form, schemas) quadruple.


def _crud(prefix: str, model: type, form: type, schema_in: type, schema_patch: type, schema_out: type, tag: str):
    label = model._meta.verbose_name
    name = model._meta.model_name

    def _get(request: HttpRequest, config_id: int) -> Any:
        return get_object_or_404(model.objects.of(request.auth.organisation), pk=config_id)

    @router.post(
        prefix, response={201: schema_out}, tags=[tag], summary=f"Create a {label}", operation_id=f"create_{name}"
    )
    def create(request: HttpRequest, payload: schema_in) -> Status:  # type: ignore[valid-type]
        actor = request.auth
        obj = records.create(form, organisation=actor.organisation, user=actor.user, data=payload.model_dump())
        return Status(201, obj)

    @router.get(prefix, response=list[schema_out], tags=[tag], summary=f"List {label}s", operation_id=f"list_{name}s")
    @paginate(Pages)
    def list_(request: HttpRequest) -> Any:
        return model.objects.of(request.auth.organisation)

    @router.get(
        prefix + "/{config_id}", response=schema_out, tags=[tag], summary=f"Read a {label}", operation_id=f"read_{name}"
    )
    def read(request: HttpRequest, config_id: int) -> Any:
        return _get(request, config_id)

    @router.patch(
        prefix + "/{config_id}",
        response=schema_out,
        tags=[tag],
        summary=f"Update a {label}",
        operation_id=f"update_{name}",
    )
    def update(request: HttpRequest, config_id: int, payload: schema_patch) -> Any:  # type: ignore[valid-type]
        return records.update(_get(request, config_id), form, data=_patch_data(payload))

    @router.post(
        prefix + "/{config_id}/copy",
        response={201: schema_out},
        tags=[tag],
        summary=f"Copy a {label}",
        operation_id=f"copy_{name}",
    )
    def copy(request: HttpRequest, config_id: int, payload: CopyIn) -> Status:
        data = {**model_to_dict(_get(request, config_id), fields=form._meta.fields), "name": payload.name}
        actor = request.auth
        return Status(201, records.create(form, organisation=actor.organisation, user=actor.user, data=data))

    @router.delete(
        prefix + "/{config_id}",
        response={204: None},
        tags=[tag],
        summary=f"Delete a {label}",
        operation_id=f"delete_{name}",
    )
    def delete(request: HttpRequest, config_id: int) -> Status:
        records.delete(_get(request, config_id))
        return Status(204, None)


assert BODY_PARAM == "payload"  # the error mapper strips this parameter name from locations
_crud(
    "/feature-configs", FeatureConfig, FeatureConfigForm, FeatureConfigIn, FeatureConfigPatch, FeatureConfigOut,
    "feature configs",
)  # fmt: skip
_crud("/model-configs", ModelConfig, ModelConfigForm, ModelConfigIn, ModelConfigPatch, ModelConfigOut, "model configs")
