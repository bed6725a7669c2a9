"""Starting, checking and stopping the model servers of experiments, and relaying requests to them.

A server is `python -m tandem.cli serve BUNDLE --host 127.0.0.1 --port N`: a process of its own, in its own
session (a Ctrl-C in the platform's terminal does not reach it), its output in a log file beside the experiment's
artifacts. It binds to loopback only, so people reach it through the platform (the pages' Try-it form, the API's
relay), which checks their organisation first.

A recorded PID is trusted only while /proc shows that very server's command line: after a restart the number may
belong to another program, which must never be signalled, and an exited server may linger as a zombie. (Where
there is no /proc, only the servers this process started are recognised.)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from tandem.serving.errors import RequestError
from tandem.serving.requests import LIMITS as SERVER_LIMITS
from tandem.serving.requests import RankRequest, RecommendRequest, RetrieveRequest, check_work, parse_request
from tandem.web import budgets, storage
from tandem.web.accounts.models import Organisation
from tandem.web.deployments.models import LIVE, Deployment, Status
from tandem.web.errors import ApiError, Conflict
from tandem.web.experiments.models import Experiment
from tandem.web.experiments.models import Status as ExperimentStatus

HOST = "127.0.0.1"
REQUESTS = {"retrieve": RetrieveRequest, "rank": RankRequest, "recommend": RecommendRequest}
ENDPOINTS = tuple(REQUESTS)
START_SECONDS = 15.0  # how long a deployment may go without a process (another request is spawning it)
STOP_SECONDS = 5.0  # after SIGTERM, before SIGKILL
HEALTH_SECONDS = 1.0
EXEC_SECONDS = 2.0  # for a started child's command line to show in /proc
REQUEST_SECONDS = 10.0
LOG_TAIL_BYTES = 2000

# Servers this process started, by PID: polled so that they are reaped (no zombies) once they exit.
_started: dict[int, subprocess.Popen] = {}


@atexit.register
def _end_started_servers() -> None:
    """The servers this process started end with it (the demo's web process, a gunicorn worker): SIGTERM, then
    SIGKILL after STOP_SECONDS. Their records are marked stopped by whoever stops or next starts the platform."""
    alive = [p for p in _started.values() if p.poll() is None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in alive:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Loopback needs no proxy, whatever http_proxy says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NotDeployable(Conflict):
    """The experiment has nothing to serve: it did not complete, or its run left no bundle."""

    code = "not_deployable"


class ServerUnavailable(ApiError):
    """The deployment's server is not running or did not answer."""

    status = 503
    code = "server_unavailable"


class ServerRefused(ApiError):
    """The server refused the request (4xx), passed on with its status and message; a 5xx becomes 502."""

    def __init__(self, status: int, message: str, *, code: str | None, errors: dict[str, list[str]]) -> None:
        super().__init__(message, code=code or "refused", errors=errors)
        self.status = status if 400 <= status < 500 else 502


# ---------------------------------------------------------------------------------------------- deploying


def bundle_folder(experiment: Experiment) -> Path:
    """The experiment's bundle folder on this machine (fetched from the store when it is elsewhere). Raises
    NotDeployable unless the experiment completed with a whole bundle."""
    if experiment.status != ExperimentStatus.COMPLETED:
        raise NotDeployable(f"Only a completed experiment can be deployed; this one is {experiment.status}.")
    stored = f"{experiment.artifacts_dir}/bundle"
    if not experiment.artifacts_dir or not default_storage.exists(f"{stored}/manifest.json"):
        raise NotDeployable(
            "This experiment's run left no serving bundle; start a new experiment from it to get one.",
            code="no_bundle",
        )
    return storage.local_folder(stored)


def latest(experiment: Experiment) -> Deployment | None:
    """The experiment's most recent deployment with its status checked; None when it was never deployed."""
    deployment = experiment.deployments.first()
    return refresh(deployment) if deployment is not None else None


def deploy(experiment: Experiment) -> tuple[Deployment, bool]:
    """Serve the experiment's bundle: (its live deployment, False) when there is one, else (a new one, True).

    A new server is started and not waited for (it loads in seconds, and no web thread is held meanwhile): the
    deployment is "starting" until `refresh` (the pages poll it) sees it answer, or fails with the end of its
    log if it exits. Raises NotDeployable, and ServerUnavailable when the process cannot be started.
    """
    bundle = bundle_folder(experiment)
    current = latest(experiment)
    if current is not None and current.is_live:
        return current, False
    _check_servers(experiment.organisation)
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                organisation_id=experiment.organisation_id,
                experiment=experiment,
                bundle=str(bundle),
                host=HOST,
                port=_free_port(),
            )
    except IntegrityError:  # another request started one a moment ago: that one serves this request too
        return Deployment.objects.get(experiment=experiment, status__in=LIVE), False
    _spawn(deployment)
    if deployment.status == Status.FAILED:
        raise ServerUnavailable(deployment.error)
    return deployment, True


def _check_servers(organisation: Organisation) -> None:
    """Raise OverBudget (429) when the organisation already has `running_servers` live model servers."""
    live = [d for d in Deployment.objects.of(organisation).filter(status__in=LIVE) if refresh(d).is_live]
    cap = budgets.limit(organisation, "running_servers")
    if len(live) >= cap:
        raise budgets.OverBudget(
            "running_servers",
            f"Your organisation has {len(live)} model servers running; the limit (running_servers) is {cap}. "
            "Stop one first.",
        )


def refresh(deployment: Deployment) -> Deployment:
    """Check a live deployment and record what changed: running once its server answers the health check,
    failed once its process is gone (with the end of the server's log). Others are returned as they are."""
    if not deployment.is_live:
        return deployment
    if deployment.pid is None:  # another request is starting it
        if timezone.now() - deployment.started_at < timedelta(seconds=START_SECONDS):
            return deployment
        return _finish(deployment, Status.FAILED, "The model server was never started.")
    if not _running(deployment):
        when = " while starting" if deployment.status == Status.STARTING else ""
        return _finish(deployment, Status.FAILED, f"The model server exited{when}.\n{_log_tail(deployment)}")
    if deployment.status == Status.STARTING and _healthy(deployment):
        _update(deployment, status=Status.RUNNING)
    return deployment


def stop(deployment: Deployment) -> Deployment:
    """Stop a live deployment's server (SIGTERM, then SIGKILL after STOP_SECONDS) and mark it stopped."""
    if not deployment.is_live:
        return deployment
    if deployment.pid is not None:
        _terminate(deployment)
    return _finish(deployment, Status.STOPPED)


def stop_all() -> int:
    """Stop every live deployment's server and mark it stopped; returns how many there were.

    The platform runs this when it stops (its servers must not outlive it) and when it starts (a platform that
    died left its servers running, or left records of servers that are gone). A server is recognised by the
    command line /proc shows for its recorded PID, so a number reused by another program is never signalled.
    """
    live = list(Deployment.objects.filter(status__in=LIVE))
    for deployment in live:
        stop(deployment)
    return len(live)


def stop_servers_of(sender: type[Experiment], instance: Experiment, **kwargs: Any) -> None:
    """Signal receiver (pre_delete of Experiment): a deleted experiment's servers are stopped, not orphaned."""
    for deployment in instance.deployments.filter(status__in=LIVE):
        stop(deployment)


# ------------------------------------------------------------------------------------------------ relaying


def manifest(deployment: Deployment) -> dict[str, Any]:
    """The served bundle's manifest: signatures, model type, the buyer columns a request may carry, the spec."""
    return json.loads((Path(deployment.bundle) / "manifest.json").read_text(encoding="utf-8"))


def call(deployment: Deployment, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to the server's /v1/<endpoint> and return its JSON answer.

    Raises ServerRefused with the server's own status and message when it refuses the request (an unknown product,
    a malformed value), and ServerUnavailable when the deployment is not running or the server does not answer.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
    check_request(deployment.organisation, endpoint, body)
    if refresh(deployment).status != Status.RUNNING:
        raise ServerUnavailable(f"The model server is {deployment.status}; deploy the experiment to start it.")
    request = urllib.request.Request(
        f"{deployment.url}/v1/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _opener.open(request, timeout=REQUEST_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            answer = json.loads(e.read())
        except ValueError:
            answer = {}
        finally:
            e.close()
        fields = answer.get("fields") or {}
        raise ServerRefused(
            e.code,
            answer.get("message") or f"The model server answered HTTP {e.code}.",
            code=answer.get("code"),
            errors={str(k): [str(v)] for k, v in fields.items()},
        ) from None
    except (OSError, ValueError) as e:  # refused, timed out, or an answer that is not JSON
        raise ServerUnavailable(f"The model server did not answer: {e}") from None


def check_request(organisation: Organisation, endpoint: str, body: dict[str, Any]) -> None:
    """Judge a relayed body as the server would, and its work (buyers × ids, buyers × k) against the
    organisation's `rank_pairs` and `retrieve_results`: a refused request is never forwarded.

    Raises ServerRefused with the status (422, 413) and message the server's own checks give.
    """
    own = budgets.of(organisation)
    try:
        parsed = parse_request(REQUESTS[endpoint], body)
        check_work(parsed, {name: min(own[name], server) for name, server in SERVER_LIMITS.items()})
    except RequestError as e:
        raise ServerRefused(e.status, e.message, code=e.code, errors={k: [v] for k, v in e.fields.items()}) from None


# ----------------------------------------------------------------------------------------------- processes


def _free_port() -> int:
    """A port nothing listens on and no live deployment was given: a server just started has not bound its port
    yet, and the system may offer that same free port again to the next deploy."""
    taken = set(Deployment.objects.filter(status__in=LIVE).values_list("port", flat=True))
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def _arguments(deployment: Deployment) -> list[str]:
    """The server's command line after the interpreter: also what identifies it in /proc."""
    return ["-m", "tandem.cli", "serve", deployment.bundle, "--host", deployment.host, "--port", str(deployment.port)]


def _log_path(deployment: Deployment) -> Path:
    """server-<id>.log in the experiment's artifacts folder (the bundle's parent)."""
    return Path(deployment.bundle).parent / f"server-{deployment.pk}.log"


def _spawn(deployment: Deployment) -> None:
    try:
        with _log_path(deployment).open("ab") as log:  # the child keeps its own copy of the handle
            process = subprocess.Popen(
                [sys.executable, *_arguments(deployment)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as e:
        _finish(deployment, Status.FAILED, f"The model server could not be started: {e}")
        return
    _started[process.pid] = process
    _await_command_line(process)
    deployment.pid = process.pid
    if not Deployment.objects.filter(pk=deployment.pk, status=Status.STARTING).update(pid=process.pid):
        _terminate(deployment)  # stopped while it was being started
    deployment.refresh_from_db()


def _await_command_line(process: subprocess.Popen) -> None:
    """Wait (up to EXEC_SECONDS) until /proc shows the child's command line. Popen returns once the child's exec
    has begun, a moment before the kernel records the new program's arguments; until then /proc shows an empty
    command line, and the recorded PID would not be recognised as the server's."""
    deadline = time.monotonic() + EXEC_SECONDS
    while time.monotonic() < deadline and process.poll() is None:  # an exited child: refresh reports it
        try:
            if Path(f"/proc/{process.pid}/cmdline").read_bytes():
                return
        except OSError:  # no /proc here
            return
        time.sleep(0.005)


def _running(deployment: Deployment) -> bool:
    """Whether the deployment's process is alive and is the server that was started for it."""
    process = _started.get(deployment.pid)
    if process is not None:
        if process.poll() is None:
            return True
        del _started[deployment.pid]
        return False
    try:
        command_line = Path(f"/proc/{deployment.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return command_line.split(b"\0")[1:-1] == [os.fsencode(a) for a in _arguments(deployment)]


def _terminate(deployment: Deployment) -> None:
    """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL; only ever to the deployment's own server."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _running(deployment):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(deployment.pid, sig)
        deadline = time.monotonic() + STOP_SECONDS
        while _running(deployment) and time.monotonic() < deadline:
            time.sleep(0.05)


def _healthy(deployment: Deployment) -> bool:
    try:
        with _opener.open(f"{deployment.url}/v1/health", timeout=HEALTH_SECONDS) as response:
            return json.loads(response.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False


def _log_tail(deployment: Deployment) -> str:
    try:
        with _log_path(deployment).open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def _update(deployment: Deployment, **fields: Any) -> None:
    """Write `fields` unless another request changed the deployment's status meanwhile; reload it either way."""
    Deployment.objects.filter(pk=deployment.pk, status=deployment.status).update(**fields)
    deployment.refresh_from_db()


def _finish(deployment: Deployment, status: str, error: str = "") -> Deployment:
    _update(deployment, status=status, stopped_at=timezone.now(), error=error.strip())
    return deployment
