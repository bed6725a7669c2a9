"""Dataset profiling in the background: an upload returns at once (profiling), a worker reads the whole files
and ends the dataset ready or failed with the reason; experiments wait for a ready dataset (409 until then)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tandem.web.datasets.models import Dataset
from tests.web.conftest import Tenant, Workers, create_configs, profiled, run_profiling, wait_for

pytestmark = pytest.mark.django_db


def _upload(tenant: Tenant, content: bytes, name: str = "d"):
    data = {"name": name, "buyer_id_column": "buyer", "product_id_column": "product", "timestamp_column": "ts"}
    return tenant.client.post("/api/datasets", {**data, "transactions": SimpleUploadedFile("t.csv", content)})


def _experiment(tenant: Tenant, dataset_id: int):
    fc, mc = create_configs(tenant, features={"buyer": [{"column": "buyer", "transform": "id"}],
                                              "product": [{"column": "product", "transform": "id"}]})  # fmt: skip
    return tenant.post("/api/experiments", {"dataset": dataset_id, "feature_config": fc, "model_config": mc})


CSV = b"buyer,product,rating,ts\n" + b"".join(
    f"b{i % 9},p{i % 13},{1 + i % 5},{1_700_000_000 + i * 3600}\n".encode() for i in range(400)
)


def test_an_upload_returns_profiling_with_its_schema_and_experiments_wait_for_it(acme: Tenant) -> None:
    response = _upload(acme, CSV)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "profiling" and body["error"] == "" and body["row_count"] == 0
    assert [c["name"] for c in body["profile"]["transactions"]["columns"]] == ["buyer", "product", "rating", "ts"]
    assert body["profile"]["transactions"]["rows"] is None
    assert acme.client.get("/api/datasets").json()["items"][0]["status"] == "profiling"
    refused = _experiment(acme, body["id"])
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "dataset_not_ready" and "still being profiled" in refused.json()["message"]
    assert "dataset" in refused.json()["errors"]
    assert run_profiling() == ["ready"]
    ready = acme.client.get(f"/api/datasets/{body['id']}").json()
    assert ready["status"] == "ready" and ready["row_count"] == 400
    assert ready["profile"]["transactions"]["columns"][0]["distinct"] == 9
    assert _experiment(acme, body["id"]).status_code == 201


def test_a_failed_profile_says_why_removes_the_files_and_refuses_experiments(acme: Tenant) -> None:
    body = profiled(acme, _upload(acme, b"buyer,product,rating,ts\n"))
    assert body["status"] == "failed" and body["error"] == "t.csv: the file has no data rows.", body
    dataset = Dataset.objects.get(pk=body["id"])
    assert not Path(dataset.transactions_file.path).exists() and dataset.size_bytes == 0
    refused = _experiment(acme, body["id"])
    assert (
        refused.status_code == 409
        and "could not be profiled: t.csv: the file has no data rows" in (refused.json()["message"])
    )
    assert acme.client.delete(f"/api/datasets/{body['id']}").status_code == 204


def test_a_dataset_deleted_while_queued_is_skipped(acme: Tenant) -> None:
    body = _upload(acme, CSV).json()
    assert acme.client.delete(f"/api/datasets/{body['id']}").status_code == 204
    assert run_profiling() == ["skipped"]


def test_the_experiments_worker_profiles_an_upload(acme: Tenant, workers: Workers) -> None:
    """A real `db_worker` process takes the profiling task from the same queue as experiments."""
    started = time.monotonic()
    response = _upload(acme, CSV)
    assert response.status_code == 201 and time.monotonic() - started < 5
    workers.start()
    dataset_id = response.json()["id"]
    wait_for(
        lambda: Dataset.objects.get(pk=dataset_id).status == "ready", 60, f"profiling by the worker: {workers.logs()}"
    )
    assert Dataset.objects.get(pk=dataset_id).row_count == 400


def test_a_numeric_column_with_a_stray_value_is_flagged_and_can_be_the_target(acme: Tenant) -> None:
    """One "n/a" among ratings: the column reads as text; the profile counts its numbers, the page flags it, and
    an experiment may rank on it (that row is dropped and counted when it runs)."""
    content = CSV.replace(b"\nb3,p3,4,", b"\nb3,p3,n/a,", 1)
    assert content != CSV
    body = profiled(acme, _upload(acme, content))
    rating = {c["name"]: c for c in body["profile"]["transactions"]["columns"]}["rating"]
    assert rating["type"] == "VARCHAR" and rating["numbers"] == 399
    page = Client()
    page.force_login(acme.user)
    html = page.get(f"/datasets/{body['id']}/histograms/").content.decode()
    assert 'data-not-numbers="1"' in html and "numbers but for 1 value" in html
    assert _experiment(acme, body["id"]).status_code == 201
