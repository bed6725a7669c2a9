"""Start-up: each command imports what it needs when it needs it. `validate`, `init`, `serve` and `recommend` run
without torch, and training never loads `torch._dynamo` (about a second of a small run). Each command runs in a
fresh process, which reports the heavy modules it holds once the command's work is done."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.export.cases import Case, trained_case

HEAVY = ("torch", "torch._dynamo")

# Runs `tandem ARGS` in this process, then prints which HEAVY modules were imported. `serve` never returns, so
# with --serve the command runs in a thread and the modules are read once the server answers its health route.
DRIVER = f"""
import http.client, json, os, sys, threading, time
from tandem.cli import main

def report(rc):
    loaded = [m for m in {HEAVY!r} if m in sys.modules]
    print("MODULES " + json.dumps(loaded), flush=True)
    os._exit(rc)

args = sys.argv[1:]
if args[0] != "--serve":
    report(main(args))
port = args[args.index("--port") + 1]
threading.Thread(target=main, args=(args[1:],), daemon=True).start()
for _ in range(600):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=1)
        connection.request("GET", "/v1/health")
        report(0 if connection.getresponse().status == 200 else 1)
    except OSError:
        time.sleep(0.1)
report(1)
"""


def loaded_after(*args: str | Path, cwd: Path) -> list[str]:
    """The HEAVY modules a fresh process holds after running `tandem ARGS` (which must succeed)."""
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return json.loads(process.stdout.rsplit("MODULES ", 1)[1])


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, write_synthetic_project: Callable[..., Path]) -> Case:
    return trained_case("multitask", tmp_path_factory.mktemp("cases"), write_synthetic_project)


def test_validate_and_init_start_without_torch(synthetic_spec_path, tmp_path):
    """Checking a spec against its data, and writing one from a profile, need neither torch nor its compiler."""
    assert loaded_after("validate", synthetic_spec_path, cwd=tmp_path) == []
    folder = synthetic_spec_path.parent
    args = ["init", folder / "transactions.csv", "--buyer-id", "buyer", "--product-id", "product"]
    assert loaded_after(*args, "--timestamp", "ts", "-o", tmp_path / "new.yaml", cwd=tmp_path) == []
    assert (tmp_path / "new.yaml").exists()


def test_serve_and_recommend_start_without_torch(case, tmp_path):
    """The model server and batch scoring read the bundle with ONNX Runtime and numpy only."""
    buyers = tmp_path / "buyers.csv"
    buyers.write_text("buyer,ts\nb1,1700000000\nb2,1700000000\n", encoding="utf-8")
    out = tmp_path / "recs.parquet"
    assert loaded_after("recommend", case.bundle, "--buyers", buyers, "--out", out, "--k", "3", cwd=tmp_path) == []
    assert out.exists()
    assert loaded_after("--serve", "serve", case.bundle, "--port", str(free_port()), cwd=tmp_path) == []


def test_training_never_loads_the_compiler(synthetic_spec_path, tmp_path):
    """A whole `tandem train`, bundle export included, runs eagerly without importing torch._dynamo."""
    loaded = loaded_after("train", synthetic_spec_path, "--out", tmp_path / "run", "--quiet", cwd=tmp_path)
    assert loaded == ["torch"]
    assert (tmp_path / "run" / "bundle" / "manifest.json").exists()
