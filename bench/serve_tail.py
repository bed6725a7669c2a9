"""The latency tail of `tandem serve`: p50, p99 and p999 of one keep-alive client, in one run, per bundle.

Why: a server whose p99 is five times its median feels slow to every caller now and then. Suspects were a full
garbage collection walking the bundle's objects (0.1-0.2 s over a 100K-product bundle on this machine; `tandem
serve` now freezes the bundle out of the collector once it is loaded), the hand-off of every request to a worker
thread and back, ONNX Runtime thread spinning (each graph already runs on one thread: no pool to spin), and JSON
encoding (~30 µs for 100 ids and scores). `--src` compares the server of another source tree in the same run.

Bundles: MovieLens 100K (train it once: `tandem train examples/movielens_multitask.yaml --out
bench/out/movielens-run`) and the 100K-product synthetic bundle of `serve_bench.py` (built here when absent).
Each is served by `tandem serve` on 127.0.0.1; `--src NAME=DIR` serves it with another source tree as well (e.g.
a checkout of an earlier commit), the servers measured in alternating rounds so that they share the machine's
moods. Requests: retrieve k=10 (MovieLens) and k=100 (100K) for random known buyers, after 200 untimed ones.

    .venv/bin/python bench/serve_tail.py
    .venv/bin/python bench/serve_tail.py --requests 3000 --rounds 3 --src before=/tmp/tandem-before/src

Prints one JSON line per measurement and a markdown table (medians over rounds of each figure).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import OUT, REPO, machine_line
from serve_bench import Server, build_bundle, synthetic_parts

MOVIELENS = OUT / "movielens-run" / "bundle"
SYNTHETIC = OUT / "serve_bench" / "100000-brute_force"


def known_buyers(bundle: Path) -> tuple[str, list[str]]:
    """The bundle's buyer id column and the ids its vocabulary knows."""
    features = json.loads((bundle / "features.json").read_text())
    transform = features["buyer"]["transforms"][0]
    return transform["name"], list(transform["state"]["vocabulary_"])


def timed(port: int, bodies: list[bytes], warmup: int) -> np.ndarray:
    """Latencies (ms) of the requests after the first `warmup`, over one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        for i, body in enumerate(bodies):
            started = time.perf_counter()
            connection.request("POST", "/v1/retrieve", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or json.loads(payload).get("fallback"):
                raise RuntimeError(f"{response.status} {payload[:300]!r}")
            if i >= warmup:
                out.append(elapsed * 1000)
    finally:
        connection.close()
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per round")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--src", action="append", default=[], help="NAME=DIR: also serve with this source tree")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    if not (MOVIELENS / "manifest.json").is_file():
        print(f"no MovieLens bundle at {MOVIELENS.relative_to(REPO)}: train it first (see the docstring)")
        return 1
    if not (SYNTHETIC / "manifest.json").is_file():
        build_bundle(synthetic_parts(100_000), "brute_force", SYNTHETIC)
    trees = {"this": str(REPO / "src"), **dict(s.split("=", 1) for s in args.src)}
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for label, bundle, k in (("MovieLens 100K (1,682 products)", MOVIELENS, 10), ("100K products", SYNTHETIC, 100)):
        column, buyers = known_buyers(bundle)
        servers = {
            name: Server(bundle, {**os.environ, "PYTHONPATH": path}, f"server-{name}.log")
            for name, path in trees.items()
        }
        try:
            figures: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for r in range(args.rounds):
                for name, server in servers.items():
                    picks = rng.choice(len(buyers), args.requests + args.warmup)
                    bodies = [json.dumps({"buyer": {column: buyers[i]}, "k": k}).encode() for i in picks]
                    ms = timed(server.port, bodies, args.warmup)
                    p50, p99, p999 = (float(np.percentile(ms, q)) for q in (50, 99, 99.9))
                    figure = {"p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "p99_over_p50": p99 / p50}
                    figures[name].append(figure)
                    print(json.dumps({"bundle": label, "src": name, "round": r, **figure}), flush=True)
        finally:
            for server in servers.values():
                server.stop()
        for name, per_round in figures.items():
            median = {key: float(np.median([f[key] for f in per_round])) for key in per_round[0]}
            rows.append({"bundle": label, "src": name, "k": k, **median, "load_average": os.getloadavg()[0]})
    OUT.mkdir(exist_ok=True)
    (OUT / "serve_tail.json").write_text(json.dumps({"machine": machine_line(), "rows": rows}, indent=2))
    print(f"\nmedian of {args.rounds} rounds of {args.requests} timed requests (one keep-alive client)\n")
    print("| bundle | server | p50 ms | p99 ms | p999 ms | p99 / p50 | load average |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['bundle']}, retrieve k={r['k']} | {r['src']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['p999_ms']:.2f} | {r['p99_over_p50']:.2f} | {r['load_average']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
