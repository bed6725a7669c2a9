"""/api/datasets: upload (multipart), list, detail with schema and statistics, update, delete, and the
recommended configs made from a dataset's profile."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations at import.
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, File, Form, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate

from tandem.web import records
from tandem.web.configs.recommended import recommended_configs
from tandem.web.datasets import services
from tandem.web.datasets.forms import DatasetUpdateForm
from tandem.web.datasets.models import Dataset
from tandem.web.pagination import Pages

router = Router(tags=["datasets"])


class DatasetUploadIn(Schema):
    """Form fields of an upload; `column_types`, `null_values`, `derived`, `filters` and `aggregate` are JSON
    text (the engine's reading options and data-section lists)."""

    name: str
    description: str = ""
    buyer_id_column: str
    product_id_column: str
    timestamp_column: str = ""
    buyers_key: str = ""
    products_key: str = ""
    encoding: str = ""
    timestamp_format: str = ""
    column_types: str = ""
    null_values: str = ""
    derived: str = ""
    filters: str = ""
    aggregate: str = ""


class DatasetPatch(Schema):
    """A partial update; columns and preparation change only while no experiment uses the dataset."""

    name: str | None = None
    description: str | None = None
    buyer_id_column: str | None = None
    product_id_column: str | None = None
    timestamp_column: str | None = None
    buyers_key: str | None = None
    products_key: str | None = None
    filters: list[dict[str, Any]] | None = None
    aggregate: list[dict[str, Any]] | None = None


class DatasetOut(Schema):
    """A dataset without its profile (lists stay small). `status` is `profiling` from the upload until a worker
    has read the whole files, then `ready`, or `failed` with the reason in `error` (the files are then removed)."""

    id: int
    name: str
    description: str
    buyer_id_column: str
    product_id_column: str
    timestamp_column: str
    buyers_key: str
    products_key: str
    read_options: dict[str, Any]
    derived: list[dict[str, Any]]
    filters: list[dict[str, Any]]
    aggregate: list[dict[str, Any]] | None
    files: dict[str, str]
    row_count: int
    size_bytes: int
    in_use: bool
    status: str
    error: str
    created_at: datetime

    @staticmethod
    def resolve_files(obj: Dataset) -> dict[str, str]:
        return dict(obj.original_names)

    @staticmethod
    def resolve_in_use(obj: Dataset) -> bool:
        return obj.is_in_use


class ColumnProfile(Schema):
    """One column: DuckDB type, nulls, distinct count, min/max/mean where they apply, top values; `derived`
    when it is computed from the others rather than read from the file; `numbers`, for a text column, how many
    of its values read as numbers. While the dataset is profiling only the name, type and `derived` are known."""

    name: str
    type: str
    nulls: int | None = None
    distinct: int | None = None
    min: Any = None
    max: Any = None
    mean: float | None = None
    top: list[dict[str, Any]] = []
    numbers: int | None = None
    derived: bool = False


class TableProfile(Schema):
    """One file: format, row count (null while profiling) and its columns."""

    format: str
    rows: int | None = None
    columns: list[ColumnProfile]


class DatasetDetail(DatasetOut):
    """A dataset with the profile of each of its files (transactions, buyers, products)."""

    profile: dict[str, TableProfile]


class RecommendedOut(Schema):
    """The configs recommended for a dataset (the ones `tandem init` writes for its files) and the time split to
    run them with: the body of POST /api/experiments as it stands (add a name)."""

    dataset: int
    feature_config: int
    model_config_ref: int = Field(alias="model_config")  # pydantic reserves `model_config`, as in ExperimentIn
    split_kind: str
    split_cutoff: str


def _get(request: HttpRequest, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset.objects.of(request.auth.organisation), pk=dataset_id)


@router.post(
    "",
    response={201: DatasetDetail},
    summary="Upload a dataset (multipart: files and column choices); its statistics follow in the background",
)
def upload_dataset(
    request: HttpRequest,
    payload: Form[DatasetUploadIn],
    transactions: File[UploadedFile],
    buyers: UploadedFile | None = File(None),  # noqa: B008 - ninja's way to declare an optional file
    products: UploadedFile | None = File(None),  # noqa: B008
) -> Status:
    files = {k: v for k, v in (("transactions", transactions), ("buyers", buyers), ("products", products)) if v}
    actor = request.auth
    return Status(201, services.create_dataset(actor.organisation, actor.user, payload.model_dump(), files))


@router.get("", response=list[DatasetOut], summary="List datasets")
@paginate(Pages)
def list_datasets(request: HttpRequest) -> Any:
    return Dataset.objects.of(request.auth.organisation)


@router.get("/{dataset_id}", response=DatasetDetail, summary="A dataset with each file's schema and statistics")
def read_dataset(request: HttpRequest, dataset_id: int) -> Dataset:
    return _get(request, dataset_id)


@router.patch("/{dataset_id}", response=DatasetDetail, summary="Rename, or change columns and preparation")
def update_dataset(request: HttpRequest, dataset_id: int, payload: DatasetPatch) -> Dataset:
    return records.update(_get(request, dataset_id), DatasetUpdateForm, data=payload.model_dump(exclude_unset=True))


@router.delete("/{dataset_id}", response={204: None}, summary="Delete a dataset and its files")
def delete_dataset(request: HttpRequest, dataset_id: int) -> Status:
    services.delete_dataset(_get(request, dataset_id))
    return Status(204, None)


@router.post(
    "/{dataset_id}/recommended-configs",
    response=RecommendedOut,
    by_alias=True,
    summary="Make (or find) the dataset's recommended feature and model configs, with the recommended time split",
)
def recommended(request: HttpRequest, dataset_id: int) -> dict[str, Any]:
    dataset = _get(request, dataset_id)
    return recommended_configs(dataset, request.auth.user).experiment_initial(dataset)
