"""`tandem serve` under attack, bounded in time: schemathesis over its OpenAPI document finds no server error and
no undocumented status; a fixed number of valid requests sent while another process fires hostile ones
(malformed, over a limit) all succeed, with a p99 within P99_RATIO_BOUND of the same requests alone, and all
succeed too beside full batches within the limits (whose p99 is recorded: on two cores the batches' client and
the server share the CPU with the timed client, so that figure measures the machine); its memory stays under
RSS_BOUND and it leaks neither memory nor open files (both read from /proc).

The figures are printed and written to test-output/reliability.json; bench/RELIABILITY.md records a run.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tandem.serving.openapi import document
from tandem.serving.requests import MAX_BODY_BYTES, MAX_BUYERS
from tests.conftest import REPO_ROOT
from tests.export.cases import Case
from tests.serving.conftest import ServerProcess, serving
from tests.serving.test_app import MALFORMED

pytestmark = pytest.mark.timeout(300)

VALID = 400  # timed valid requests per phase
P99_RATIO_BOUND = 5.0  # valid requests' p99 with the hostile process running, over their p99 alone
MiB = 1024**2
RSS_BOUND = 300 * MiB  # the server's peak resident memory over its resident memory before the attack
LEAK_BOUND = 16 * MiB  # resident memory a second identical run of valid requests may add
FIGURES: dict[str, Any] = {"schemathesis_requests": 0, "schemathesis_5xx": 0}

schema = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def server(cases: Callable[[str], Case], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(cases("multitask").bundle, tmp_path_factory.mktemp("reliability")) as process:
        yield process
    out = REPO_ROOT / "test-output" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2))
    print("\nreliability figures:", json.dumps(FIGURES))


def test_the_server_publishes_the_document_of_its_routes(server: ServerProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/v1/openapi.json")
    published = json.loads(connection.getresponse().read())
    connection.close()
    assert published == document()
    assert set(published["paths"]) == {"/v1/health", "/v1/metadata", "/v1/retrieve", "/v1/rank", "/v1/recommend"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_route_answers_a_server_error_or_an_undocumented_status(case: Any, server: ServerProcess) -> None:
    FIGURES["schemathesis_requests"] += 1
    response = case.call(base_url=f"http://127.0.0.1:{server.port}")
    FIGURES["schemathesis_5xx"] += response.status_code >= 500
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])


# ------------------------------------------------------------------------------------------- the load


def _proc(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak) in bytes, Threads, and open files of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        "rss": int(fields["VmRSS"].split()[0]) * 1024,
        "peak": int(fields["VmHWM"].split()[0]) * 1024,
        "threads": int(fields["Threads"]),
        "files": len(list(Path(f"/proc/{pid}/fd").iterdir())),
    }


def _settled(pid: int, files: int, timeout: float = 10.0) -> dict[str, int]:
    """The process's figures once its open files are back to `files` (the server closes a connection a moment
    after its client does), or after `timeout` seconds when they are not (a leak)."""
    deadline = time.monotonic() + timeout
    while (figures := _proc(pid))["files"] > files and time.monotonic() < deadline:
        time.sleep(0.1)
    return figures


def _valid(n: int) -> list[tuple[str, bytes]]:
    """Small valid requests: retrieve k=10 and rank 20 products, for known buyers."""
    out = []
    for i in range(n):
        buyer = {"buyer": f"b{i % 40}"}
        if i % 2:
            out.append(("/v1/retrieve", json.dumps({"buyer": buyer, "k": 10}).encode()))
        else:
            out.append(("/v1/rank", json.dumps({"buyer": buyer, "product_ids": [f"p{j}" for j in range(20)]}).encode()))
    return out


def _timed(port: int, requests: list[tuple[str, bytes]]) -> tuple[np.ndarray, Counter]:
    """Latencies (ms) and statuses of `requests` sent one after another over one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, statuses = [], Counter()
    try:
        for path, body in requests:
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status] += 1
    finally:
        connection.close()
    return np.array(latencies), statuses


def _hostile_requests(heavy: bool) -> list[tuple[str, str, bytes]]:
    """The malformed bodies of the app's tests, or heavy requests within the limits (full batches of buyers)."""
    if not heavy:
        return [(method, path, body) for method, path, body, _ in MALFORMED]
    buyers = json.dumps([{"buyer": f"b{i % 40}"} for i in range(MAX_BUYERS)])
    products = json.dumps([f"p{j}" for j in range(24)])
    return [
        ("POST", "/v1/rank", f'{{"buyers": {buyers}, "product_ids": {products}}}'.encode()),
        ("POST", "/v1/retrieve", f'{{"buyers": {buyers}, "k": 24}}'.encode()),
    ]


def _declared_too_large(port: int) -> int:
    """A request that declares a body over the limit and sends none: the status it gets, unread."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


def hostile_loop(port: int, heavy: bool, stop: Any, started: Any, counts: Any) -> None:
    """Another process's attack: the hostile (or heavy) requests over and over, 2 ms apart, until `stop` is set."""
    requests, statuses = _hostile_requests(heavy), Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        for method, path, body in requests:
            if stop.is_set():
                break
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                statuses[response.status] += 1
                if response.getheader("connection") == "close":
                    connection.close()
            except (http.client.HTTPException, OSError):
                statuses["connection reset"] += 1
                connection.close()
            started.set()
            time.sleep(0.002)
        if not heavy:
            statuses[_declared_too_large(port)] += 1
    connection.close()
    counts.update({str(k): v for k, v in statuses.items()})


def _beside_another_process(port: int, heavy: bool) -> tuple[np.ndarray, dict[str, int]]:
    """Latencies of VALID valid requests (all answered 200) while another process sends hostile (or heavy)
    ones; and the statuses that process got, none a 5xx or a dropped connection."""
    context = multiprocessing.get_context("spawn")
    stop, started, counts = context.Event(), context.Event(), context.Manager().dict()
    attacker = context.Process(target=hostile_loop, args=(port, heavy, stop, started, counts))
    attacker.start()
    try:
        assert started.wait(60), "the hostile process sent nothing"
        latencies, statuses = _timed(port, _valid(VALID))
    finally:
        stop.set()
        attacker.join(120)
    assert attacker.exitcode == 0
    assert statuses == {200: VALID}, statuses
    theirs = dict(counts)
    assert not any(k.startswith("5") or k == "connection reset" for k in theirs), theirs
    return latencies, theirs


def test_valid_requests_hold_through_a_hostile_mix_in_bounded_memory_without_leaks(server: ServerProcess) -> None:
    _timed(server.port, _valid(100))  # warm-up
    before = _proc(server.pid)
    alone, statuses = _timed(server.port, _valid(VALID))
    assert statuses == {200: VALID}
    mixed, hostile = _beside_another_process(server.port, heavy=False)
    batched, heavy = _beside_another_process(server.port, heavy=True)
    assert set(heavy) == {"200"}, heavy
    during = _proc(server.pid)
    _, statuses = _timed(server.port, _valid(VALID))
    after_again = _proc(server.pid)
    _timed(server.port, _valid(VALID))
    after = _settled(server.pid, before["files"])
    p99_alone, p99_mixed = float(np.percentile(alone, 99)), float(np.percentile(mixed, 99))
    FIGURES.update(
        valid_requests=5 * VALID + 100,
        valid_errors=0,
        hostile_requests=sum(hostile.values()),
        hostile_statuses=hostile,
        p50_alone_ms=round(float(np.percentile(alone, 50)), 2),
        p99_alone_ms=round(p99_alone, 2),
        p50_mixed_ms=round(float(np.percentile(mixed, 50)), 2),
        p99_mixed_ms=round(p99_mixed, 2),
        p99_ratio=round(p99_mixed / p99_alone, 2),
        heavy_batches=sum(heavy.values()),
        p50_beside_batches_ms=round(float(np.percentile(batched, 50)), 2),
        p99_beside_batches_ms=round(float(np.percentile(batched, 99)), 2),
        rss_before_mib=round(before["rss"] / MiB, 1),
        rss_peak_growth_mib=round((during["peak"] - before["rss"]) / MiB, 1),
        rss_growth_second_run_mib=round((after["rss"] - after_again["rss"]) / MiB, 1),
        open_files=(before["files"], after["files"]),
        threads=(before["threads"], after["threads"]),
    )
    assert statuses == {200: VALID}
    assert p99_mixed <= P99_RATIO_BOUND * p99_alone, FIGURES
    assert during["peak"] - before["rss"] < RSS_BOUND, FIGURES
    assert after["rss"] - after_again["rss"] < LEAK_BOUND, FIGURES  # a further run of the same requests adds nothing
    assert after["files"] <= before["files"], FIGURES  # a connection open before may have closed since
