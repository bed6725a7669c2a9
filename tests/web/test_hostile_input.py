"""Input as an attacker would send it: every answer is a 4xx in the error shape, never a 500, never a stored mess."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tests.web.conftest import FEATURES, MODEL, Tenant, profiled

pytestmark = pytest.mark.django_db


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


def _assert_4xx(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
    if status is not None:
        assert response.status_code == status, response.content[:500]
    body = response.json()
    assert set(body) == {"status", "code", "message", "errors"} and body["status"] == response.status_code
    return body


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"[" * 100_000 + b"]" * 100_000,
        b'"just a string"',
        b"[1, 2, 3]",
        b"null",
        b"NaN",
        b'{"name": "m", "epochs": 1e999}',
    ],
)
def test_a_body_that_is_not_a_config_is_refused(acme: Tenant, raw: bytes) -> None:
    _assert_4xx(acme.client.post("/api/model-configs", raw, content_type="application/json"))
    assert ModelConfig.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"training": {"epochs": 10**30}}, "training.epochs"),
        ({"model": {"index": {"candidate_pool": -(2**63) - 1}}}, "model.index.candidate_pool"),
        ({"training": {"batch_size": "lots"}}, "training.batch_size"),
        ({"training": {"learning_rate": float("nan")}}, "training.learning_rate"),
        ({"model": {"retrieval_weight": float("inf")}}, "model.retrieval_weight"),
        ({"model": {"buyer_tower_layers": "[64]; DROP TABLE tandem_model_config"}}, "model.buyer_tower_layers"),
        ({"model": {"buyer_tower_layers": [True, 2]}}, "model.buyer_tower_layers.0"),
        ({"model": "not an object"}, "model"),
        ({"name": "x" * 10_000}, "name"),
        ({"name": "nul\x00name"}, "name"),
        ({"model": {"activation": "\x00"}}, "model"),
        ({"training": {"device": "cuda; rm -rf /"}}, "training.device"),
        ({"model": {"x": _nested(50)}}, "model"),
        ({"epochs": 3}, "epochs"),
    ],
)
def test_hostile_model_config_values_are_field_errors(acme: Tenant, change: dict, field: str) -> None:
    body = json.dumps({**MODEL, "name": "m", **change}, allow_nan=True)  # a section sent replaces MODEL's
    errors = _assert_4xx(acme.client.post("/api/model-configs", body, content_type="application/json"), 422)["errors"]
    assert field in errors, errors
    assert ModelConfig.objects.count() == 0


@pytest.mark.parametrize(
    "features",
    [
        {"buyer": [{"column": "a\x00b", "transform": "id"}]},
        {"buyer": "not a list"},
        {"buyer": [["column", "id"]]},
        {"product": [{"column": "p", "transform": "id", "embedding_dim": 10**12}]},
        {"target": "\x00"},
    ],
)
def test_hostile_feature_config_values_are_field_errors(acme: Tenant, features: dict) -> None:
    body = {"name": "f", "features": {**FEATURES["features"], **features}}
    _assert_4xx(acme.post("/api/feature-configs", body), 422)
    assert FeatureConfig.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "/api/experiments/abc",
        "/api/experiments/99999999999999999999999",
        "/api/experiments/-1",
        "/api/experiments?status=%00",
        "/api/experiments?limit=-5",
        "/api/experiments?limit=abc",
        "/api/experiments/compare?ids=x",
        "/api/experiments/compare?ids=1&ids=99999999999999999999999",
        "/api/datasets/1%27%20OR%201=1",
    ],
)
def test_hostile_urls_are_4xx(acme: Tenant, url: str) -> None:
    response = acme.client.get(url)
    if response.status_code == 404 and response.get("Content-Type", "").startswith("text/html"):
        return  # Django's own URL resolver refused it before the API saw it
    _assert_4xx(response)


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("../../../../etc/passwd.csv", b"buyer,product\nb,p\n"),
        ("..\\..\\evil.csv", b"buyer,product\nb,p\n"),
        ("x.csv", b"buyer,product\n" + b"b,p\n" * 5),
    ],
)
def test_upload_file_names_cannot_escape_the_media_folder(
    acme: Tenant, filename: str, content: bytes, settings
) -> None:
    from pathlib import Path

    upload = SimpleUploadedFile(filename, content)
    response = acme.client.post(
        "/api/datasets",
        {"name": filename, "transactions": upload, "buyer_id_column": "buyer", "product_id_column": "product"},
    )
    assert response.status_code == 201, response.content
    stored = Path(Dataset.objects.get().transactions_file.path).resolve()
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve() / "datasets")


def test_column_names_that_look_like_sql_are_just_names(acme: Tenant) -> None:
    csv = b'buyer,"product""; DROP TABLE t; --",qty\nb1,p1,1\nb2,p2,2\n'
    upload = SimpleUploadedFile("t.csv", csv)
    response = acme.client.post(
        "/api/datasets",
        {
            "name": "d",
            "transactions": upload,
            "buyer_id_column": "buyer",
            "product_id_column": 'product"; DROP TABLE t; --',
        },
    )
    assert profiled(acme, response)["profile"]["transactions"]["columns"][1]["distinct"] == 2


def test_an_upload_without_a_file_or_with_a_bad_json_field_is_refused(acme: Tenant) -> None:
    errors = _assert_4xx(acme.client.post("/api/datasets", {"name": "d"}), 422)["errors"]
    assert {"transactions", "buyer_id_column", "product_id_column"} <= set(errors)
    upload = SimpleUploadedFile("t.csv", b"buyer,product\nb,p\n")
    errors = _assert_4xx(
        acme.client.post("/api/datasets", {"name": "d", "transactions": upload, "buyer_id_column": "buyer",
                                           "product_id_column": "product", "filters": "{oops"}),
        422,
    )["errors"]  # fmt: skip
    assert "filters" in errors
    assert Dataset.objects.count() == 0


def test_an_experiment_with_wrong_types_is_refused(acme: Tenant) -> None:
    body = {"dataset": "one", "feature_config": None, "model_config": 1.5, "sample_fraction": "all"}
    errors = _assert_4xx(acme.post("/api/experiments", body), 422)["errors"]
    assert {"dataset", "feature_config", "model_config", "sample_fraction"} <= set(errors)


def test_a_huge_request_body_is_refused(acme: Tenant, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({**MODEL, "name": "m", "description": "x" * 5000})
    response = acme.client.post("/api/model-configs", body, content_type="application/json")
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "url",
    [
        f"/api/{name}?{param}={value}"
        for name in ("experiments", "datasets", "feature-configs", "model-configs", "deployments")
        for param in ("limit", "offset")
        for value in (2**63, 2**64, 10**30)
    ],
)
def test_page_bounds_past_64_bits_are_422_naming_the_parameter(acme: Tenant, url: str) -> None:
    """limit/offset ≥ 2^63 used to overflow in the database (500)."""
    errors = _assert_4xx(acme.client.get(url), 422)["errors"]
    assert set(errors) & {"limit", "offset"}, errors


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=\u00e9"]
)
def test_multipart_without_a_usable_boundary_is_400(acme: Tenant, content_type: str) -> None:
    """The multipart parser used to raise (500) on a missing boundary."""
    response = acme.client.post("/api/datasets", b"--x\r\n\r\n", content_type=content_type)
    assert "boundary" in _assert_4xx(response, 400)["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": "\\ud800", "model_type": "retrieval"}', "name"),
        (b'{"name": "m", "description": "ok \\udfff"}', "description"),
        (b'{"name": "m", "options": {"model": {"\\udbff": 1}}}', "options"),
    ],
)
def test_a_lone_surrogate_in_json_is_422_naming_the_field(acme: Tenant, raw: bytes, field: str) -> None:
    """Text that is not valid Unicode is refused at the door (it used to fail inside the database)."""
    errors = _assert_4xx(acme.client.post("/api/model-configs", raw, content_type="application/json"), 422)["errors"]
    assert field in errors, errors
    assert ModelConfig.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"name": "m", "model": {"temperature": 1e999}}', "model.temperature"),
        (b'{"name": "m", "model": {"huber_delta": Infinity}}', "model.huber_delta"),
        (b'{"name": "m", "model": {"embedding_init_scale": Infinity}}', "model.embedding_init_scale"),
        (b'{"name": "m", "training": {"weight_decay": 1e999}}', "training.weight_decay"),
    ],
)
def test_non_finite_model_options_are_422_naming_the_option(acme: Tenant, raw: bytes, path: str) -> None:
    """Infinity passes a lower bound; it used to reach jsonb (PostgreSQL refuses it) and fail there."""
    response = acme.client.post("/api/model-configs", raw, content_type="application/json")
    errors = _assert_4xx(response, 422)["errors"]
    assert path in errors and "finite" in " ".join(errors[path]), errors
    assert ModelConfig.objects.count() == 0


def test_an_unreadable_file_is_reported_without_server_paths(acme: Tenant, settings) -> None:
    """DuckDB's messages name the file it read; the answer names only the uploaded file."""
    upload = SimpleUploadedFile("t.parquet", b"PAR1 not really parquet")
    response = acme.client.post(
        "/api/datasets",
        {"name": "d", "transactions": upload, "buyer_id_column": "buyer", "product_id_column": "product"},
    )
    body = _assert_4xx(response, 422)
    text = json.dumps(body)
    assert "magic bytes" in text and "transactions.parquet" in text, text  # DuckDB's own words, on the stored name
    assert str(settings.MEDIA_ROOT) not in text and "/datasets/" not in text, text
