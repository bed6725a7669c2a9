"""Fixtures of the platform's tests: Django set up against a throwaway data folder, two organisations with
users and tokens, tiny synthetic datasets, API helpers, and real `db_worker` processes.

The database is SQLite (a file, so worker processes can share it) unless DATABASE_URL names another, e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`` (pytest-django creates and drops ``test_test``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

# Before Django reads its settings: a private data folder, fast heartbeats, no MLflow unless a test asks.
_DATA_DIR = Path(tempfile.mkdtemp(prefix="tandem-web-tests-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
TEST_ENV = {
    "TANDEM_DATA_DIR": str(_DATA_DIR),
    "TANDEM_MEDIA_ROOT": str(_DATA_DIR / "media"),
    "DJANGO_SECRET_KEY": "tests-only-secret",
    "TANDEM_HEARTBEAT_INTERVAL": "0.5",
    "TANDEM_HEARTBEAT_TIMEOUT": "5",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
os.environ.update(TEST_ENV)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tandem.web.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _platform_settings() -> Iterator[None]:
    """The same values as TEST_ENV even when Django was configured before this file was imported."""
    settings.MEDIA_ROOT = Path(TEST_ENV["TANDEM_MEDIA_ROOT"])
    settings.TANDEM_HEARTBEAT_INTERVAL = float(TEST_ENV["TANDEM_HEARTBEAT_INTERVAL"])
    settings.TANDEM_HEARTBEAT_TIMEOUT = float(TEST_ENV["TANDEM_HEARTBEAT_TIMEOUT"])
    settings.MLFLOW_TRACKING_URI = None
    # Passwords are hashed quickly here: a sign-in costs a second of CPU with the production hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> Path:
    """Each test's uploads and artifacts in its own folder (worker processes are told the same folder)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A SQLite test database in a file (not in memory), so that worker processes and a live server share it."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


# ------------------------------------------------------------------------------------------ data


def synthetic_frames(seed: int = 0, n_buyers: int = 60, n_products: int = 120, per_buyer: int = 30):
    """Transactions and product attributes a model can learn: buyers prefer one of four product groups.

    Ratings are 4–5 inside a buyer's group and 1–2 outside. 60 × 30 = 1,800 rows, 120 products.
    """
    rng = np.random.default_rng(seed)
    buyer_group, product_group = np.arange(n_buyers) % 4, np.arange(n_products) % 4
    rows = []
    for b in range(n_buyers):
        liked = np.flatnonzero(product_group == buyer_group[b])
        others = np.flatnonzero(product_group != buyer_group[b])
        picks = np.concatenate(
            [rng.choice(liked, per_buyer * 2 // 3, replace=False), rng.choice(others, per_buyer // 3, replace=False)]
        )
        for p in picks:
            inside = product_group[p] == buyer_group[b]
            rating = (4.0 if inside else 1.0) + float(rng.integers(0, 2))
            rows.append((f"b{b}", f"p{p}", rating, 1_700_000_000 + int(rng.integers(0, 10_000_000))))
    transactions = pd.DataFrame(rows, columns=["buyer", "product", "rating", "ts"])
    products = pd.DataFrame(
        {"product": [f"p{p}" for p in range(n_products)], "category": [f"group{g}" for g in product_group]}
    )
    return transactions, products


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """transactions.csv and products.parquet of `synthetic_frames`, written once."""
    folder = tmp_path_factory.mktemp("synthetic")
    transactions, products = synthetic_frames()
    paths = {"transactions": folder / "transactions.csv", "products": folder / "products.parquet"}
    transactions.to_csv(paths["transactions"], index=False)
    products.to_parquet(paths["products"], index=False)
    return paths


FEATURES = {
    "features": {
        "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 8}],
        "product": [
            {"column": "product", "transform": "id", "embedding_dim": 8},
            {"column": "category", "transform": "categorical", "embedding_dim": 4},
        ],
        "target": "rating",
    }
}
MODEL = {
    "model": {
        "type": "multitask",
        "buyer_tower_layers": [16],
        "product_tower_layers": [16],
        "rating_head_layers": [8, 1],
        "index": {"candidate_pool": 10},
    },
    "training": {"batch_size": 128, "epochs": 2},
}


# ------------------------------------------------------------------------------------ accounts, API


@dataclass
class Tenant:
    """An organisation with one user, an API token, and a test client that sends the token."""

    organisation: Any
    user: Any
    token: str
    client: Client
    password: str = "pw-for-tests-1"

    def post(self, path: str, data: Any = None, **kw: Any):
        return self.client.post(path, data, content_type="application/json", **kw)

    def patch(self, path: str, data: Any, **kw: Any):
        return self.client.patch(path, data, content_type="application/json", **kw)


def make_tenant(name: str) -> Tenant:
    from django.contrib.auth import get_user_model

    from tandem.web.accounts.models import ApiToken, Membership, Organisation

    org = Organisation.objects.create(name=name)
    user = get_user_model().objects.create_user(username=f"{name.lower()}-user", password="pw-for-tests-1")
    Membership.objects.create(user=user, organisation=org, role=Membership.Role.OWNER)
    _, token = ApiToken.objects.issue(user)
    return Tenant(org, user, token, Client(HTTP_AUTHORIZATION=f"Bearer {token}"))


@pytest.fixture
def acme(db: None) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def globex(db: None) -> Tenant:
    return make_tenant("Globex")


def upload_dataset(tenant: Tenant, files: dict[str, Path], name: str = "synthetic", **fields: Any) -> dict:
    """Upload the synthetic files through the API; returns the response JSON (asserting 201)."""
    data = {
        "name": name,
        "buyer_id_column": "buyer",
        "product_id_column": "product",
        "timestamp_column": "ts",
        "products_key": "product",
        **fields,
    }
    with files["transactions"].open("rb") as tx, files["products"].open("rb") as pr:
        response = tenant.client.post("/api/datasets", {**data, "transactions": tx, "products": pr})
    body = profiled(tenant, response)
    assert body["status"] == "ready", body
    return body


def profiled(tenant: Tenant, response: Any) -> dict:
    """An accepted upload (201, profiling) once its profiling task has run: the dataset's detail JSON."""
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "profiling", response.json()
    run_profiling()
    return tenant.client.get(f"/api/datasets/{response.json()['id']}").json()


def run_profiling() -> list[str]:
    """Run the queued dataset profiling tasks in this process, as `db_worker` runs them (for tests that start no
    worker); returns the statuses they ended the datasets in."""
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    from tandem.web.datasets.tasks import profile_dataset

    worker = Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
                    max_tasks=None, worker_id="tests", excluded_queue_names=[])  # fmt: skip
    ran = []
    for result in DBTaskResult.objects.ready().filter(task_path=profile_dataset.module_path):
        result.claim("tests")
        worker.run_task(result)
        result.refresh_from_db()
        ran.append(result.return_value)
    return ran


def create_configs(tenant: Tenant, *, features: dict | None = None, model: dict | None = None) -> tuple[int, int]:
    """A feature config and a model config (the fast defaults above, their sections' keys updated by the
    arguments: `features` for the features section, `model` for the model section); their ids."""
    fc = tenant.post(
        "/api/feature-configs",
        {"name": f"features-{time.monotonic_ns()}", "features": {**FEATURES["features"], **(features or {})}},
    )
    assert fc.status_code == 201, fc.content
    body = {**MODEL, "model": {**MODEL["model"], **(model or {})}}
    mc = tenant.post("/api/model-configs", {"name": f"model-{time.monotonic_ns()}", **body})
    assert mc.status_code == 201, mc.content
    return fc.json()["id"], mc.json()["id"]


@pytest.fixture
def setup_experiment(synthetic_files: dict[str, Path]) -> Callable[..., dict]:
    """Create a dataset, configs and an experiment for a tenant through the API; returns the experiment JSON."""

    def make(tenant: Tenant, *, model: dict | None = None, dataset_id: int | None = None, **fields: Any) -> dict:
        if dataset_id is None:
            dataset_id = upload_dataset(tenant, synthetic_files, name=f"data-{time.monotonic_ns()}")["id"]
        fc, mc = create_configs(tenant, model=model)
        response = tenant.post(
            "/api/experiments", {"dataset": dataset_id, "feature_config": fc, "model_config": mc, **fields}
        )
        assert response.status_code == 201, response.content
        return response.json()

    return make


# ------------------------------------------------------------------------------------------ workers


def worker_database_url() -> str:
    """The test database as a URL, for processes started by the tests (valid once the test DB exists)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process still running, then wait for all of them (SIGKILL after 15 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Workers:
    """Starts `manage.py db_worker` processes on the test database and stops every one of them by PID."""

    def __init__(self, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {**os.environ, **TEST_ENV, "DATABASE_URL": worker_database_url(), **self.extra_env}
        env["TANDEM_MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        with (self.log_dir / f"worker-{len(self.procs)}.log").open("wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "manage.py"), "db_worker", "--interval", "0.2", "--no-startup-delay",
                 "--no-reload"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop_all(self) -> None:
        stop_processes(self.procs)


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes for one test (stopped, by PID, before the test database is flushed)."""
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_for(predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; returns its value or fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s: {message}")
