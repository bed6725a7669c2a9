"""Model servers do not outlive the platform: stopping it stops them, and a start after a crash finds the ones
left running (by the command line /proc shows for their recorded PID), stops them and marks them stopped."""

from __future__ import annotations

from typing import Any

from tandem.web.deployments import services
from tandem.web.deployments.models import Deployment, Status
from tests.web.conftest import Tenant
from tests.web.deployments.conftest import Servers, is_model_server


def test_stop_all_stops_every_live_server_and_marks_it_stopped(acme: Tenant, completed: Any, servers: Servers) -> None:
    """What the demo and `manage.py serve` run when they stop, and again when they start."""
    first = acme.post("/api/deployments", {"experiment": completed(acme).pk}).json()
    second = acme.post("/api/deployments", {"experiment": completed(acme).pk}).json()
    pids = [servers.add(first["pid"]), servers.add(second["pid"])]
    for body, pid in zip((first, second), pids, strict=True):
        deployment = Deployment.objects.get(pk=body["id"])
        assert is_model_server(pid), services.refresh(deployment).error or services._log_tail(deployment)
    assert services.stop_all() == 2
    assert not any(is_model_server(pid) for pid in pids)
    assert set(Deployment.objects.values_list("status", flat=True)) == {Status.STOPPED}
    assert services.stop_all() == 0


def test_servers_left_by_a_platform_that_died_are_found_and_stopped(
    acme: Tenant, completed: Any, servers: Servers
) -> None:
    """A new platform process does not hold the old one's process handles: /proc identifies the server."""
    body = acme.post("/api/deployments", {"experiment": completed(acme).pk}).json()
    pid = servers.add(body["pid"])
    process = services._started.pop(pid)  # a new process holds no handle on the servers the old one started
    Deployment.objects.filter(pk=body["id"]).update(status=Status.STARTING)  # the old process never saw it up
    assert services.stop_all() == 1
    assert not is_model_server(pid)
    assert Deployment.objects.get(pk=body["id"]).status == Status.STOPPED
    process.wait(timeout=10)  # reaped here, as the old platform's parent would have
