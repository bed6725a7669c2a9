"""Fixtures of the serving tests: the small trained cases and their loaded bundles, an in-process ASGI caller, and
`tandem serve` as a real process on 127.0.0.1.

Starlette's TestClient needs the `httpx2` package, which the project does not install; `call_app` drives the app
through the ASGI interface directly (one request, one event loop), which is all these tests need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

from tandem.serving.bundle import Bundle
from tests.conftest import free_port
from tests.export.cases import Case, trained_case


@pytest.fixture(scope="session")
def cases(
    tmp_path_factory: pytest.TempPathFactory, write_synthetic_project: Callable[..., Path]
) -> Callable[[str], Case]:
    """`cases(model_type)`: the trained case of that type (shared with tests/export)."""
    root = tmp_path_factory.mktemp("cases")
    return lambda model_type: trained_case(model_type, root, write_synthetic_project)


@pytest.fixture(scope="session")
def bundles(cases: Callable[[str], Case]) -> Callable[[str], Bundle]:
    """`bundles(model_type)`: the loaded bundle of that type's case (loaded once)."""
    loaded: dict[str, Bundle] = {}

    def get(model_type: str) -> Bundle:
        if model_type not in loaded:
            loaded[model_type] = Bundle.load(cases(model_type).bundle)
        return loaded[model_type]

    return get


Response = tuple[int, Any]


def call_app(app: Any, method: str, path: str, payload: Any = None, *, body: bytes | None = None) -> Response:
    """Send one request to an ASGI app; returns (status, decoded JSON body). `body` sends raw bytes."""
    raw = body if body is not None else (b"" if payload is None else json.dumps(payload).encode())
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8500),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(content)


@dataclass(frozen=True)
class ServerProcess:
    """A running `tandem serve`: its port and PID (for /proc)."""

    port: int
    pid: int


@contextlib.contextmanager
def serving(bundle: Path, folder: Path) -> Iterator[ServerProcess]:
    """`tandem serve BUNDLE` on a free port of 127.0.0.1 (its log in `folder`), stopped by its PID afterwards;
    fails the test if it does not listen within 60 s or logs a traceback."""
    port, log = free_port(), folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tandem.cli", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not listen within 60 s:\n{log.read_text()}")
                time.sleep(0.2)
        yield ServerProcess(port, process.pid)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()
