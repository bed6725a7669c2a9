"""Fixtures of the deployment tests: completed experiments with real bundles, a signed-in page client, and a
record of the model servers a test starts, every one of them stopped by its PID before the database is flushed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.web.conftest import Tenant
from tests.web.pages.conftest import browser, live_server, screenshots  # noqa: F401 (the browser test's fixtures)

# Model type → the artifacts folder of a run trained by the platform's runner, once per test session.
_TRAINED: dict[str, Path] = {}


@pytest.fixture
def page(acme: Tenant) -> Client:
    """A session (cookie) client signed in as Acme's user, as a browser would be."""
    client = Client()
    client.force_login(acme.user)
    return client


@pytest.fixture
def completed(
    transactional_db: None, setup_experiment: Callable[..., dict], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Any]:
    """Make a tenant's experiment and complete it with a real bundle.

    The session's first experiment of a model type is trained by the platform's runner in this process (`execute`,
    what a worker runs); later ones get a copy of its artifacts at their own place, as a worker would have left
    them, so that each test does not train again.
    """
    from tandem.web.experiments.models import Experiment, Status
    from tandem.web.experiments.runner import execute

    def make(tenant: Tenant, model_type: str = "multitask") -> Experiment:
        body = setup_experiment(tenant, model={"type": model_type})
        media = Path(settings.MEDIA_ROOT)
        if model_type not in _TRAINED:
            assert execute(body["id"], body["attempt"]) == Status.COMPLETED
            experiment = Experiment.objects.get(pk=body["id"])
            _TRAINED[model_type] = tmp_path_factory.mktemp(f"trained-{model_type}") / "run"
            shutil.copytree(media / experiment.artifacts_dir, _TRAINED[model_type])
            return experiment
        relative = f"experiments/{tenant.organisation.pk}/{body['id']}/attempt-{body['attempt']}"
        shutil.copytree(_TRAINED[model_type], media / relative)
        now = timezone.now()
        Experiment.objects.filter(pk=body["id"]).update(
            status=Status.COMPLETED, artifacts_dir=relative, started_at=now, finished_at=now
        )
        return Experiment.objects.get(pk=body["id"])

    return make


def is_model_server(pid: int) -> bool:
    """Whether `pid` runs `tandem serve` (an exited process, zombie or gone, does not)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tandem.cli" in arguments and b"serve" in arguments


class Servers:
    """The PIDs of the model servers a test started (tests add each one they see)."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def add(self, pid: int | None) -> int:
        assert pid is not None
        self.pids.add(pid)
        return pid


@pytest.fixture
def servers(transactional_db: None) -> Iterator[Servers]:
    """At the end of a test: every deployment is stopped, then any server process still there is killed by PID."""
    from tandem.web.deployments import services
    from tandem.web.deployments.models import Deployment

    started = Servers()
    yield started
    for deployment in Deployment.objects.exclude(pid=None):
        started.add(deployment.pid)
        services.stop(deployment)
    for pid in started.pids:
        if is_model_server(pid):
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # reaped here when this process started it
                os.waitpid(pid, 0)
