"""`tandem serve` as a real process on 127.0.0.1: it answers like the in-process logic, refuses a run of
malformed requests with 4xx only, stays up, and holds through a bounded load loop. The server is started as a
subprocess on a free port and stopped by its PID."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.serving import recommender
from tandem.serving.bundle import Bundle
from tests.export.cases import Case
from tests.serving.conftest import serving
from tests.serving.test_app import MALFORMED

BUYER = {"buyer": "b1", "ts": 1_700_000_000}


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method: str, path: str, payload: Any = None, *, body: bytes | None = None) -> tuple[int, Any]:
        raw = body if body is not None else (None if payload is None else json.dumps(payload).encode())
        self.connection.request(method, path, body=raw, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.connection.close()


@pytest.fixture(scope="module")
def server(cases: Callable[[str], Case], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A `tandem serve` process for the multitask bundle; yields its port, then stops it by PID."""
    with serving(cases("multitask").bundle, tmp_path_factory.mktemp("server")) as process:
        yield process.port


@pytest.fixture
def client(server: int) -> Iterator[Client]:
    c = Client(server)
    yield c
    c.close()


def test_the_server_answers_as_the_engine_logic(client: Client, bundles: Callable[[str], Bundle]) -> None:
    """Retrieve and rank over HTTP equal the in-process functions (same bundle, same inputs)."""
    status, body = client.request("POST", "/v1/retrieve", {"buyer": BUYER, "k": 10})
    expected = recommender.retrieve(bundles("multitask"), [BUYER], 10, [[]])[0]
    assert status == 200 and body["product_ids"] == expected["product_ids"]
    assert body["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    status, body = client.request("POST", "/v1/rank", {"buyer": BUYER, "product_ids": ["p3", "p1"]})
    assert status == 200
    assert body["predictions"] == pytest.approx(
        recommender.rank(bundles("multitask"), [BUYER], [["p3", "p1"]])[0]["predictions"]
    )


def test_malformed_requests_are_refused_and_the_server_stays_up(client: Client) -> None:
    """The whole malformed run over one connection: the intended statuses only, then a healthy server."""
    statuses = [client.request(method, path, body=body)[0] for method, path, body, _ in MALFORMED]
    assert statuses == [expected for *_, expected in MALFORMED]
    assert client.request("GET", "/v1/health") == (
        200,
        {"status": "ok", "model_type": "multitask", "signatures": ["serving_default", "serve_ranking"]},
    )


def test_a_bounded_load_loop_gets_only_successes(client: Client) -> None:
    """300 mixed requests back to back: all 200."""
    bodies = [
        ("/v1/retrieve", {"buyer": {"buyer": f"b{i % 40}", "ts": 1_700_000_000 + i}, "k": 10}) for i in range(100)
    ] + [
        ("/v1/rank", {"buyer": {"buyer": f"b{i % 40}"}, "product_ids": [f"p{j}" for j in range(20)]})
        for i in range(100)
    ]
    bodies += [("/v1/recommend", {"buyers": [{"buyer": f"b{i % 40}"}, {"buyer": "new"}], "k": 5}) for i in range(100)]
    statuses = {client.request("POST", path, payload)[0] for path, payload in bodies}
    assert statuses == {200}


def test_serving_imports_neither_torch_nor_django() -> None:
    """The serving modules, and the second stage and baselines they serve, load without the training stack or
    the web app."""
    code = (
        "import sys, tandem.serving.app, tandem.serving.batch, tandem.serving.commands, tandem.cli, "
        "tandem.recommend.two_stage, tandem.recommend.candidates, tandem.evaluation.baselines; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'django')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stdout + done.stderr
