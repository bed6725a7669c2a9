"""Fixtures of the pages' tests: signed-in browsers-in-a-client, datasets and finished experiments made without
a worker (view tests), the screenshot folder of the browser tests, and the platform they drive: Django's live
server, or the platform started the production way (`manage.py serve`: gunicorn, whitenoise, DEBUG off)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.conftest import free_port
from tests.web.conftest import REPO_ROOT, TEST_ENV, Tenant, upload_dataset, worker_database_url

SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
# Browser walks declare a run dead after this much silence, as in production: they are not about the reaper, and
# on a loaded machine the tests' 5 s (tests/web/conftest.py) can pass between two heartbeats of a healthy worker.
HEARTBEAT_TIMEOUT = "60"


@pytest.fixture
def page_client(acme: Tenant) -> Client:
    """A session (cookie) client signed in as Acme's user, as a browser would be."""
    client = Client()
    client.force_login(acme.user)
    return client


@pytest.fixture
def other_client(globex: Tenant) -> Client:
    """Signed in as Globex's user: another organisation."""
    client = Client()
    client.force_login(globex.user)
    return client


@pytest.fixture
def dataset(acme: Tenant, synthetic_files: dict[str, Path]) -> Any:
    """Acme's synthetic dataset (transactions.csv with products.parquet), uploaded through the API."""
    from tandem.web.datasets.models import Dataset

    return Dataset.objects.get(pk=upload_dataset(acme, synthetic_files)["id"])


def history(epochs: int, *, retrieval: bool, ranking: bool) -> list[dict[str, Any]]:
    """A plausible per-epoch history: losses falling, validation recall rising and errors falling."""
    out = []
    for epoch in range(1, epochs + 1):
        record: dict[str, Any] = {"epoch": epoch, "loss": 10.0 / epoch}
        if retrieval:
            record.update(
                {
                    "retrieval_loss": 9.0 / epoch,
                    **{f"val_recall_at_{k}": k / 200 + epoch / 100 for k in (5, 10, 50, 100)},
                }
            )
        if ranking:
            record.update({"ranking_loss": 1.0 / epoch, "val_rmse": 1.2 - epoch / 10, "val_mae": 0.9 - epoch / 10})
        out.append(record)
    return out


def weight_stats(epochs: int, towers: tuple[str, ...]) -> list[dict[str, Any]]:
    stats = {
        "count": 10,
        "mean": 0.01,
        "std": 0.1,
        "min": -0.3,
        "max": 0.3,
        "histogram": {"counts": [1, 3, 4, 2], "edges": [-0.3, -0.15, 0.0, 0.15, 0.3]},
    }
    return [{"epoch": e, **dict.fromkeys(towers, stats)} for e in range(1, epochs + 1)]


METRICS = {
    "retrieval": {"recall_at_5": 0.1234, "recall_at_10": 0.2, "recall_at_50": 0.5, "recall_at_100": 0.8},
    "ranking": {"rmse": 1.23456, "mae": 0.98765, "test_rmse": 1.3, "test_mae": 1.0},
}


@pytest.fixture
def finished(setup_experiment: Callable[..., dict], dataset: Any) -> Callable[..., Any]:
    """Make an experiment of a tenant (a validation split of 0.2 unless told) and mark it completed with results,
    as a worker would have left it.

    The view tests need finished runs without training; the browser test runs a real worker instead.
    """
    from tandem.web.experiments.models import Experiment, Status

    def make(
        tenant: Tenant,
        model_type: str = "multitask",
        *,
        status: str = Status.COMPLETED,
        validation_fraction: float = 0.2,
        **fields: Any,
    ) -> Any:
        same_org = tenant.organisation.pk == dataset.organisation_id
        body = setup_experiment(
            tenant,
            model={"type": model_type},
            dataset_id=dataset.pk if same_org else None,
            validation_fraction=validation_fraction,
        )
        retrieval, ranking = model_type != "ranking", model_type != "retrieval"
        towers = ("query_tower", "candidate_tower", *(("rating_head",) if ranking else ()))
        metrics = {**(METRICS["retrieval"] if retrieval else {}), **(METRICS["ranking"] if ranking else {})}
        values: dict[str, Any] = {
            "status": status,
            "current_epoch": 2,
            "history": history(2, retrieval=retrieval, ranking=ranking),
            "weight_stats": weight_stats(2, towers),
            "other_metrics": {
                **({"popularity_recall_at_5": 0.05, "popularity_recall_at_100": 0.9} if retrieval else {}),
                **({"test_rmse_mean_baseline": 1.45} if ranking else {}),
            },
            "finished_at": timezone.now(),
            **(metrics if status == Status.COMPLETED else {}),
            **fields,
        }
        Experiment.objects.filter(pk=body["id"]).update(**values)
        return Experiment.objects.get(pk=body["id"])

    return make


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """test-output/screenshots/ (git-ignored), where the browser tests save a picture of each page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """pytest-django's live server, bound to 127.0.0.1 (its default, "localhost", may resolve elsewhere)."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download is not used); skipped when absent.

    Playwright's sync API keeps an asyncio loop set on this thread while it runs, and Django refuses database
    calls from such a thread; the tests' calls (and the database flush after each) are plain synchronous
    ones, so the guard is lifted while the browser is open. `scripts/install-browser.sh` installs Chromium.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        playwright = sync_playwright().start()
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            playwright.stop()


@dataclass
class Platform:
    """Where a browser test reaches the platform, and whether it is the production server (another process)."""

    url: str
    production: bool

    def account(self, tenant: Tenant) -> None:
        """Make the tenant's password one the server can check: the tests hash quickly (MD5), which the
        production server's settings do not accept, so its users get the production hasher's hash."""
        if self.production:
            from django.contrib.auth.hashers import PBKDF2PasswordHasher

            hasher = PBKDF2PasswordHasher()
            tenant.user.password = hasher.encode(tenant.password, hasher.salt())
            tenant.user.save(update_fields=["password"])


@pytest.fixture(params=["live server", "manage.py serve"])
def platform(request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path) -> Iterator[Platform]:
    """The platform under test: pytest-django's live server, then `manage.py serve --no-worker` on the test
    database (the test starts its own workers), stopped by its PID."""
    if request.param == "live server":
        yield Platform(request.getfixturevalue("live_server").url, production=False)
        return
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        **os.environ,
        **TEST_ENV,
        "DATABASE_URL": worker_database_url(),
        "TANDEM_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "TANDEM_HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT,
    }
    for name in ("DJANGO_SETTINGS_MODULE", "TANDEM_DEBUG", "TANDEM_HTTPS"):
        env.pop(name, None)
    command = [sys.executable, str(REPO_ROOT / "manage.py"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
               "--no-worker"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"manage.py serve did not listen within 90 s:\n{log.read_text()}"
                time.sleep(0.3)
        yield Platform(f"http://127.0.0.1:{port}", production=True)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()
