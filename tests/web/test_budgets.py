"""Budgets: what a request, a file, a model and an organisation may use is refused before the work starts, as a 4xx
in the error shape naming the limit, and the server's memory stays bounded while it refuses (read from /proc)."""

from __future__ import annotations

import gzip
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tandem.web.datasets.models import Dataset
from tandem.web.deployments.models import Deployment, Status
from tandem.web.experiments.models import Experiment
from tests.web.conftest import Tenant, create_configs, profiled, upload_dataset

pytestmark = pytest.mark.django_db

MiB = 1024**2
# What handling a hostile upload may add to this process's resident memory (the old code took 3 GB).
RSS_BOUND = 300 * MiB


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples VmRSS every 20 ms while the block runs; yields a list that holds the peak growth afterwards."""
    base, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss() - base)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out: list[int] = []
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out.append(max(peak[0], _rss() - base))


def _upload(tenant: Tenant, filename: str, content: bytes, **fields: str):
    data = {"name": "d", "buyer_id_column": "buyer", "product_id_column": "product", **fields}
    return tenant.client.post("/api/datasets", {**data, "transactions": SimpleUploadedFile(filename, content)})


def _refused(response, status: int, limit: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content[:1000]
    body = response.json()
    assert set(body) == {"status", "code", "message", "errors"} and body["status"] == status
    text = body["message"] + " ".join(m for ms in body["errors"].values() for m in ms)
    assert limit in text, body
    if field is not None:
        assert field in body["errors"], body
    return body


def _no_files_left(media_root: Path) -> None:
    assert not [p for p in (media_root / "datasets").rglob("*") if p.is_file()] if media_root.exists() else True


# ------------------------------------------------------------------------------------------- files


def test_a_file_with_thousands_of_columns_is_refused_in_bounded_memory(acme: Tenant, _media_root: Path) -> None:
    """5,000 columns (1.1 MB): refused naming the `columns` limit, nothing stored, RSS growth under the bound."""
    header = ",".join(["buyer", "product", *[f"c{i}" for i in range(4998)]])
    row = ",".join(["b1", "p1", *["1"] * 4998])
    content = (header + "\n" + "\n".join([row] * 100) + "\n").encode()
    with peak_rss_growth() as peak:
        response = _upload(acme, "wide.csv", content)
    _refused(response, 422, "columns", "transactions")
    assert peak[0] < RSS_BOUND, f"{peak[0] / MiB:.0f} MiB"
    assert Dataset.objects.count() == 0
    _no_files_left(_media_root)


def test_a_wide_file_within_the_limit_is_profiled_in_batches(acme: Tenant, settings) -> None:
    """300 columns are profiled (statistics a few columns per statement) with every column's figures right."""
    settings.TANDEM_BUDGETS = {"columns": 400}
    names = ["buyer", "product", *[f"c{i}" for i in range(298)]]
    rows = [",".join([f"b{r % 7}", f"p{r % 11}", *[str(r * (i + 1)) for i in range(298)]]) for r in range(50)]
    with peak_rss_growth() as peak:
        body = profiled(acme, _upload(acme, "wide.csv", (",".join(names) + "\n" + "\n".join(rows) + "\n").encode()))
    columns = body["profile"]["transactions"]["columns"]
    assert [c["name"] for c in columns] == names
    c9 = columns[2 + 9]  # values r * 10 for r in 0..49
    assert (c9["min"], c9["max"], c9["distinct"], c9["mean"]) == (0, 490, 50, pytest.approx(245.0))
    assert columns[0]["distinct"] == 7 and columns[1]["distinct"] == 11
    assert peak[0] < RSS_BOUND, f"{peak[0] / MiB:.0f} MiB"


def test_a_gzip_bomb_is_refused_by_its_expanded_size(acme: Tenant, settings, _media_root: Path) -> None:
    """A small .csv.gz that expands past decompressed_bytes fails its profiling naming the limit, in bounded
    memory, and its files are removed."""
    settings.TANDEM_BUDGETS = {"decompressed_bytes": 4 * MiB}
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz:
        gz.write(b"buyer,product\n")
        for _ in range(64):
            gz.write(b"b1,p1\n" * (MiB // 6))
    assert len(buffer.getvalue()) < MiB
    with peak_rss_growth() as peak:
        response = _upload(acme, "bomb.csv.gz", buffer.getvalue())
        assert response.status_code == 201  # the upload reads only the file's start and returns at once
        body = profiled(acme, response)
    assert body["status"] == "failed" and "decompressed_bytes" in body["error"], body
    assert peak[0] < RSS_BOUND, f"{peak[0] / MiB:.0f} MiB"
    _no_files_left(_media_root)


def test_rows_past_the_limit_are_refused(acme: Tenant, settings) -> None:
    """The row count is checked before the statistics."""
    settings.TANDEM_BUDGETS = {"rows": 10}
    content = b"buyer,product\n" + b"b,p\n" * 11
    body = profiled(acme, _upload(acme, "t.csv", content))
    assert body["status"] == "failed" and "the limit (rows) is 10" in body["error"], body


def test_a_column_name_over_the_limit_is_refused_not_truncated(acme: Tenant) -> None:
    """A 201-character header name used to be stored cut to 200 and fail later in the worker."""
    long = "x" * 201
    content = f"buyer,product,{long}\nb,p,1\n".encode()
    _refused(_upload(acme, "t.csv", content), 422, "column_name_length", "transactions")
    ok = "y" * 200
    response = _upload(acme, "t.csv", f"buyer,product,{ok}\nb,p,1\n".encode())
    assert response.status_code == 201 and response.json()["profile"]["transactions"]["columns"][2]["name"] == ok


def test_an_upload_over_the_organisations_file_budget_is_refused(acme: Tenant) -> None:
    """upload_bytes per organisation: the figure and the limit's name."""
    acme.organisation.budgets = {"upload_bytes": 100}
    acme.organisation.save()
    _refused(_upload(acme, "t.csv", b"buyer,product\n" + b"b,p\n" * 40), 422, "upload_bytes", "transactions")


def test_stored_bytes_per_organisation(acme: Tenant, globex: Tenant) -> None:
    """Past stored_bytes an upload is refused; another organisation's budget is its own."""
    content = b"buyer,product\n" + b"b,p\n" * 40
    acme.organisation.budgets = {"stored_bytes": len(content) + 10}
    acme.organisation.save()
    assert _upload(acme, "t.csv", content).status_code == 201
    _refused(_upload(acme, "t.csv", content, name="d2"), 422, "stored_bytes", "transactions")
    assert _upload(globex, "t.csv", content).status_code == 201


# ---------------------------------------------------------------------------------------- requests


def _raw_request(live_server, head: bytes, body_prefix: bytes) -> bytes:
    """Send headers and the start of a body, then read the answer without sending the rest."""
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + b"\r\n\r\n" + body_prefix)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("path", "content_type", "declared"),
    [
        ("/login/", "application/x-www-form-urlencoded", 300 * MiB),
        ("/login/", "multipart/form-data; boundary=xyz", 300 * MiB),
        ("/api/model-configs", "application/json", 300 * MiB),
        ("/api/datasets", "multipart/form-data; boundary=xyz", 2048 * MiB),  # three files of 512 MiB may come
    ],
)
def test_a_body_over_its_limit_is_refused_from_its_declared_length_unread(
    live_server, path: str, content_type: str, declared: int
) -> None:
    """A large body declared and only a few bytes sent: 413 comes back at once, so nothing waited for the body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {declared}\r\nConnection: close"
    ).encode()
    answer = _raw_request(live_server, head, b"a=b")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert f"{declared / MiB:.1f} MiB".encode() in answer or f"{declared / 1024**3:.1f} GiB".encode() in answer


def test_model_size_is_refused_at_validation_with_the_figure(acme: Tenant, synthetic_files) -> None:
    """A model within every field's bounds but with 2^22 × 2048 hashed parameters is refused before queueing."""
    dataset = upload_dataset(acme, synthetic_files)["id"]
    features = {"buyer": [{"column": "buyer", "transform": "hashing", "num_bins": 2**22, "embedding_dim": 2048}]}
    fc, mc = create_configs(acme, features=features, model={"buyer_tower_layers": [16], "product_tower_layers": [16]})
    with peak_rss_growth() as peak:  # the refusal is computed from the spec: no table is ever allocated
        response = acme.post("/api/experiments", {"dataset": dataset, "feature_config": fc, "model_config": mc})
    assert peak[0] < RSS_BOUND, f"{peak[0] / MiB:.0f} MiB"
    body = _refused(response, 422, "parameters", "model_config")
    assert "8,589,9" in " ".join(body["errors"]["model_config"])  # 4,194,304 × 2,048 = 8,589,934,592 plus the rest
    assert Experiment.objects.count() == 0


def test_unbounded_vocabulary_settings_are_field_errors(acme: Tenant) -> None:
    """num_bins 2^24 (and the other table sizes past their bounds) are refused when the config is saved."""
    for feature in (
        {"column": "b", "transform": "hashing", "num_bins": 2**24},
        {"column": "b", "transform": "id", "oov_buckets": 2**21},
        {"column": "b", "transform": "id", "max_vocab": 2**25},
        {"column": "b", "transform": "text", "max_tokens": 2**21},
    ):
        body = {"name": "f", "features": {"buyer": [feature], "product": [{"column": "p", "transform": "id"}]}}
        response = acme.post("/api/feature-configs", body)
        assert response.status_code == 422, (feature, response.content)
        assert any(key.startswith("features.buyer.0.") for key in response.json()["errors"]), response.content


# ------------------------------------------------------------------------------------------ quotas


def test_queued_experiments_per_organisation(acme: Tenant, globex: Tenant, setup_experiment) -> None:
    """The second pending experiment of an organisation with queued_experiments 1 is a 429 naming the limit."""
    acme.organisation.budgets = {"queued_experiments": 1}
    acme.organisation.save()
    first = setup_experiment(acme)
    dataset = first["dataset_id"]
    fc, mc = create_configs(acme)
    response = acme.post("/api/experiments", {"dataset": dataset, "feature_config": fc, "model_config": mc})
    _refused(response, 429, "queued_experiments")
    assert Experiment.objects.filter(organisation=acme.organisation).count() == 1
    setup_experiment(globex)  # another organisation's queue is its own


def test_running_servers_per_organisation(acme: Tenant, setup_experiment, settings) -> None:
    """With running_servers 0 a deploy is refused (429) before any process starts."""
    experiment = Experiment.objects.get(pk=setup_experiment(acme)["id"])
    bundle = Path(settings.MEDIA_ROOT) / "run" / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    Experiment.objects.filter(pk=experiment.pk).update(status="completed", artifacts_dir="run")
    acme.organisation.budgets = {"running_servers": 0}
    acme.organisation.save()
    _refused(acme.post("/api/deployments", {"experiment": experiment.pk}), 429, "running_servers")
    assert Deployment.objects.count() == 0


def test_the_relay_refuses_work_past_the_budget_without_forwarding(acme: Tenant, setup_experiment) -> None:
    """64 buyers × 10,000 ids through /api/deployments/{id}/rank: 413 naming rank_pairs, the server not asked."""
    experiment = Experiment.objects.get(pk=setup_experiment(acme)["id"])
    deployment = Deployment.objects.create(
        organisation=acme.organisation, experiment=experiment, bundle="b", host="127.0.0.1", port=9,
        status=Status.STOPPED,
    )  # fmt: skip
    body = {"buyers": [{"buyer": "b1"}] * 64, "product_ids": [f"p{i}" for i in range(10_000)]}
    _refused(acme.post(f"/api/deployments/{deployment.pk}/rank", body), 413, "rank_pairs")
    acme.organisation.budgets = {"retrieve_results": 50}
    acme.organisation.save()
    body = {"buyers": [{"buyer": "b1"}] * 6, "k": 10}
    _refused(acme.post(f"/api/deployments/{deployment.pk}/retrieve", body), 413, "retrieve_results")
    # Within the budget the request goes on, and meets the stopped server.
    assert acme.post(f"/api/deployments/{deployment.pk}/retrieve", {"buyer": {"buyer": "b1"}}).status_code == 503
