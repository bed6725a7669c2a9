"""Two machines that share only the database and an S3 store: a web process on one, a worker on the other.

The store is moto's S3 server on loopback (a real S3 API over HTTP). Each machine is a set of processes with its own
data folder, so nothing passes between them on disk: machine B's web process takes the upload, machine A's worker
profiles it, trains the experiment from the stored files and stores its artifacts (MLflow's too), and B serves the
bundle it fetches from the store.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.conftest import free_port
from tests.web.conftest import (
    FEATURES,
    MODEL,
    REPO_ROOT,
    TEST_ENV,
    Tenant,
    make_tenant,
    stop_processes,
    wait_for,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

BUCKET = "tandem-store"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def store() -> Iterator[Any]:
    """An empty bucket on moto's S3 server at 127.0.0.1; yields the bucket (boto3) with its `url`."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.resource("s3", endpoint_url=url, **{k.lower(): v for k, v in CREDENTIALS.items() if "KEY" in k})
    bucket = s3.create_bucket(Bucket=BUCKET)
    bucket.url = url
    try:
        yield bucket
    finally:
        server.stop()


class Machine:
    """The processes of one machine: its own data folder, the shared database and store."""

    def __init__(self, name: str, root: Path, store_url: str, tracking_uri: str) -> None:
        self.name, self.data = name, root / name
        self.env = {
            **os.environ,
            **TEST_ENV,
            **CREDENTIALS,
            "TANDEM_DATA_DIR": str(self.data),
            "TANDEM_MEDIA_ROOT": str(self.data / "media"),
            "DATABASE_URL": worker_database_url(),
            "TANDEM_S3_BUCKET": BUCKET,
            "TANDEM_S3_ENDPOINT_URL": store_url,
            "TANDEM_S3_PREFIX": "platform",
            "MLFLOW_TRACKING_URI": tracking_uri,
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.procs: list[subprocess.Popen] = []

    def start(self, *command: str) -> subprocess.Popen:
        with (self.data.parent / f"{self.name}-{len(self.procs)}.log").open("wb") as log:  # the child keeps a copy
            proc = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "manage.py"), *command],
                cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        stop_processes(self.procs)

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.data).as_posix() for p in self.data.rglob("*") if p.is_file())


@pytest.fixture
def machines(store: Any, tmp_path: Path) -> Iterator[tuple[Machine, Machine]]:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's runs, beside the database both machines share
    pair = (Machine("a", tmp_path, store.url, tracking), Machine("b", tmp_path, store.url, tracking))
    try:
        yield pair
    finally:
        for machine in pair:
            machine.stop()


@pytest.fixture
def tenant(transactional_db: None) -> Tenant:
    return make_tenant("Globex")


def test_a_bundle_trained_on_one_machine_is_served_by_the_other(
    machines: tuple[Machine, Machine], store: Any, tenant: Tenant, synthetic_files: dict[str, Path]
) -> None:
    a, b = machines
    port = free_port()
    b.start("runserver", f"127.0.0.1:{port}", "--noreload")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {tenant.token}"
    base = f"http://127.0.0.1:{port}/api"

    def post(path: str, status: int = 201, **kw: Any) -> dict:
        response = api.post(base + path, timeout=60, **kw)
        assert response.status_code == status, response.text
        return response.json()

    wait_for(lambda: _answers(api, base), 60, "machine B's web process to answer")
    with synthetic_files["transactions"].open("rb") as tx, synthetic_files["products"].open("rb") as pr:
        dataset = post(
            "/datasets",
            data={"name": "shared", "buyer_id_column": "buyer", "product_id_column": "product",
                  "timestamp_column": "ts", "products_key": "product"},
            files={"transactions": ("transactions.csv", tx), "products": ("products.parquet", pr)},
        )  # fmt: skip
    assert dataset["status"] == "profiling"
    a.start("db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload")
    dataset = wait_for(lambda: _profiled(api, base, dataset["id"]), 120, "machine A's worker to profile it")
    lines = synthetic_files["transactions"].read_text().splitlines()
    assert dataset["profile"]["transactions"]["rows"] == len(lines) - 1  # profiled on A, from the store
    assert any(f.startswith("cache/datasets/") for f in a.files())  # A's worker fetched the files from the store
    stored = {o.key for o in store.objects.all()}
    assert {k.rsplit("/", 1)[1] for k in stored} == {"transactions.csv", "products.parquet"}
    assert all(k.startswith("platform/datasets/") for k in stored)

    fc = post("/feature-configs", json={"name": "f", **FEATURES})["id"]
    mc = post("/model-configs", json={"name": "m", **MODEL})["id"]
    body = {"dataset": dataset["id"], "feature_config": fc, "model_config": mc, "name": "shared"}
    experiment = post("/experiments", json=body)
    queued = time.monotonic()
    done = wait_for(lambda: _finished(api, base, experiment["id"]), 120, "machine A's worker to train it")
    assert done["status"] == "completed", done["error"]
    print(f"trained on A in {time.monotonic() - queued:.1f}s")
    folder = f"platform/{done['artifacts_dir']}"
    stored = {o.key for o in store.objects.all()}
    assert {f"{folder}/bundle/manifest.json", f"{folder}/metrics.json", f"{folder}/model/model.pt"} <= stored
    assert any(k.startswith("platform/mlflow/") and k.endswith("metrics.json") for k in stored)
    assert not any(f.startswith(f"cache/{done['artifacts_dir']}") for f in b.files())  # B has not seen it yet

    deployment = post("/deployments", json={"experiment": experiment["id"]})
    running = wait_for(lambda: _running(api, base, deployment["id"]), 60, "the model server on B to answer")
    assert running["status"] == "running", running
    answer = post(f"/deployments/{deployment['id']}/retrieve", 200, json={"buyer": {"buyer": "b1"}, "k": 3})
    assert len(answer["product_ids"]) == 3
    assert f"cache/{done['artifacts_dir']}/bundle/manifest.json" in b.files()
    post(f"/deployments/{deployment['id']}/stop", 200)
    assert not any(f.startswith("media/") for f in a.files() + b.files())  # nothing went to a machine's own store


def _answers(api: requests.Session, base: str) -> bool:
    try:
        return api.get(base + "/datasets", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def _finished(api: requests.Session, base: str, experiment_id: int) -> dict | None:
    body = api.get(f"{base}/experiments/{experiment_id}", timeout=30).json()
    return body if body["status"] in ("completed", "failed") else None


def _profiled(api: requests.Session, base: str, dataset_id: int) -> dict | None:
    body = api.get(f"{base}/datasets/{dataset_id}", timeout=30).json()
    return body if body["status"] != "profiling" else None


def _running(api: requests.Session, base: str, deployment_id: int) -> dict | None:
    body = api.get(f"{base}/deployments/{deployment_id}", timeout=30).json()
    return body if body["status"] != "starting" else None
