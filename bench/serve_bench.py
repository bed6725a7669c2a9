"""Model-server latency and throughput, exact and ANN, and ANN recall against exact.

Why: the server must answer one buyer's retrieve over a 100K catalog in under 10 ms at p99 on these 2 cores,
and B2B catalogs reach a million products, where exact search stops being cheap and FAISS takes over.

For each catalog size (10K, 100K, 1M products) this builds bundles through the real export path
(`tandem.export.bundle.export_bundle`) from a synthetic two-tower model whose 32-d buyer and product embeddings sit
around shared Gaussian cluster centres (trained embeddings cluster; uniform noise would be a worst case for ANN),
one bundle per index: brute_force, HNSW and IVF. Each bundle is served by `tandem serve` in its own process on
127.0.0.1, and this process (a separate load generator) sends a bounded number of requests over one keep-alive
connection per client: retrieve (k=100) and rank (100 random products per request), after a warm-up. It reports
p50 / p99 latency and requests per second, and, in-process, recall@100 of each ANN index against exact top-100.

    .venv/bin/python bench/serve_bench.py                         # 10K, 100K, 1M; ~10 minutes
    .venv/bin/python bench/serve_bench.py --sizes 10000,100000 --requests 500
    .venv/bin/python bench/serve_bench.py --clients 2             # two load processes at once
    .venv/bin/python bench/serve_bench.py --reuse                 # measure again without rebuilding bundles

Raw results go to bench/out/serve_bench.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _common import OUT, REPO, machine_line

from tandem.data.history import purchase_history
from tandem.export.artifacts import TrainedModel
from tandem.export.bundle import export_bundle
from tandem.features.pipeline import TowerFeatures
from tandem.models.two_tower import TwoTowerModel
from tandem.serving.bundle import Bundle
from tandem.serving.index import ExactIndex, recall_against_exact
from tandem.spec import parse_spec
from tandem.training.dataset import EncodedData, SplitRows

DIM, BUYERS, CLUSTERS = 32, 10_000, 200


def ivf_nlist(n: int) -> int:
    """About 4·sqrt(N) lists, as FAISS's guidelines suggest, capped so that training stays in seconds."""
    return int(min(1024, max(16, 4 * math.sqrt(n))))


def synthetic_spec(algorithm: str, n_products: int) -> Any:
    raw = {
        "name": f"bench-{n_products}-{algorithm}",
        "data": {"transactions": {"path": "unused.csv"}, "buyer_id": "buyer_id", "product_id": "product_id"},
        "features": {
            "buyer": [{"column": "buyer_id", "transform": "id", "embedding_dim": DIM}],
            "product": [{"column": "product_id", "transform": "id", "embedding_dim": DIM}],
            "target": "rating",
        },
        "model": {
            "type": "multitask",
            "rating_head_layers": [64, 1],
            "retrieval_algorithm": algorithm,
            "index": {"hnsw_m": 32, "hnsw_ef_search": 128, "ivf_nlist": ivf_nlist(n_products), "ivf_nprobe": 16},
        },
    }
    return parse_spec(raw)


def synthetic_parts(n_products: int, seed: int = 0, n_buyers: int = BUYERS) -> dict[str, Any]:
    """Fitted id pipelines and clustered embeddings for n_buyers buyers and n_products products."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)) / math.sqrt(DIM)
    product_emb = centres[rng.integers(0, CLUSTERS, n_products)] + 0.5 * rng.normal(size=(n_products, DIM)) / math.sqrt(
        DIM
    )
    buyer_emb = centres[rng.integers(0, CLUSTERS, n_buyers)] + 0.5 * rng.normal(size=(n_buyers, DIM)) / math.sqrt(DIM)
    buyer_ids = np.array([f"b{i}" for i in range(n_buyers)], dtype=object)
    product_ids = np.arange(n_products, dtype=np.int64)
    spec = synthetic_spec("brute_force", n_products)
    buyer = TowerFeatures.from_spec(spec.features.buyer).fit(pd.DataFrame({"buyer_id": buyer_ids}), np.arange(n_buyers))
    product = TowerFeatures.from_spec(spec.features.product).fit(
        pd.DataFrame({"product_id": product_ids}), np.arange(n_products)
    )
    buyer_codes = buyer.transform({"buyer_id": buyer_ids})["buyer_id"]
    product_codes = product.transform({"product_id": product_ids})["product_id"]
    popularity = rng.zipf(1.3, n_products).clip(max=10**6)
    return {
        "buyer": buyer,
        "product": product,
        "buyer_ids": buyer_ids,
        "product_ids": product_ids,
        "buyer_codes": buyer_codes,
        "product_codes": product_codes,
        "buyer_emb": buyer_emb.astype(np.float32),
        "product_emb": product_emb.astype(np.float32),
        "popularity": popularity.astype(np.int64),
    }


def build_bundle(parts: dict[str, Any], algorithm: str, folder: Path) -> float:
    """Export a bundle of the synthetic model with the given index; returns the export's seconds."""
    n, n_buyers = len(parts["product_ids"]), len(parts["buyer_ids"])
    spec = synthetic_spec(algorithm, n)
    buyer, product = parts["buyer"], parts["product"]
    torch.manual_seed(0)
    model = TwoTowerModel(spec.model, buyer.inputs(), product.inputs()).eval()
    with torch.no_grad():
        model.query_tower.embeddings["buyer_id"].weight[torch.from_numpy(parts["buyer_codes"])] = torch.from_numpy(
            parts["buyer_emb"]
        )
        model.candidate_tower.embeddings["product_id"].weight[torch.from_numpy(parts["product_codes"])] = (
            torch.from_numpy(parts["product_emb"])
        )
    empty = SplitRows(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), None)
    train = SplitRows(torch.arange(n_buyers), torch.zeros(n_buyers, dtype=torch.int64), None)
    data = EncodedData(
        query_table={"buyer_id": torch.from_numpy(parts["buyer_codes"])},
        query_buyer=np.arange(n_buyers),
        buyer_ids=parts["buyer_ids"],
        catalog={"product_id": torch.from_numpy(parts["product_codes"])},
        product_ids=parts["product_ids"],
        catalog_frame=pd.DataFrame(),
        train_counts=parts["popularity"],
        history=purchase_history(pd.DataFrame(), np.zeros(0), np.zeros(0), np.zeros(0), n_buyers, n),
        train=train,
        validation=empty,
        test=empty,
    )
    started = time.perf_counter()
    export_bundle(TrainedModel(spec, model, buyer, product, pd.DataFrame()), data, folder)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`tandem serve BUNDLE` in its own process on 127.0.0.1, stopped by its PID."""

    def __init__(self, bundle: Path, env: dict[str, str] | None = None, log_name: str = "server.log") -> None:
        self.port = _free_port()
        self.log = open(bundle / log_name, "wb")  # noqa: SIM115 (closed in stop)
        cmd = [sys.executable, "-m", "tandem.cli", "serve", str(bundle), "--port", str(self.port)]
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {(bundle / log_name).read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not listen within 300 s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def _bodies(kind: str, n: int, n_products: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buyer = {"buyer_id": f"b{rng.integers(BUYERS)}"}
        if kind == "retrieve":
            out.append(json.dumps({"buyer": buyer, "k": 100}).encode())
        else:
            ids = rng.choice(n_products, 100, replace=False).tolist()
            out.append(json.dumps({"buyer": buyer, "product_ids": ids}).encode())
    return out


def client_loop(args: tuple[int, str, int, int, int, int]) -> list[float]:
    """One load process: `warmup` untimed then `n` timed requests over one keep-alive connection."""
    port, kind, n, warmup, n_products, seed = args
    bodies = _bodies(kind, n + warmup, n_products, seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = f"/v1/{kind}"
    latencies = []
    try:
        for i, body in enumerate(bodies):
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"{path}: {response.status} {payload[:300]!r}")
            if i >= warmup:
                latencies.append(elapsed)
    finally:
        connection.close()
    return latencies


def _round(port: int, kind: str, n: int, warmup: int, n_products: int, clients: int, seed: int) -> dict[str, float]:
    jobs = [(port, kind, n, warmup, n_products, seed + c) for c in range(clients)]
    if clients == 1:
        results = [client_loop(jobs[0])]
    else:
        with Pool(clients) as pool:
            results = pool.map(client_loop, jobs)
    latencies = np.concatenate([np.array(r) for r in results]) * 1000
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        # From the timed requests' own durations per client, so warm-ups and process start-up do not count.
        "rps": float(sum(len(r) / sum(r) for r in results)),
    }


def measure(port: int, kind: str, n: int, warmup: int, n_products: int, clients: int, rounds: int) -> dict[str, Any]:
    """`rounds` rounds of n timed requests per client; the median round's figures (the machine is shared, so a
    single round can be hit by another process's burst), with every round's p99 kept beside them."""
    per_round = [_round(port, kind, n, warmup, n_products, clients, 100 * r) for r in range(rounds)]
    out: dict[str, Any] = {k: float(np.median([r[k] for r in per_round])) for k in ("p50_ms", "p99_ms", "rps")}
    out.update(requests=n * clients, rounds=rounds, p99_each_round=[round(r["p99_ms"], 2) for r in per_round])
    return out


def ann_recall(folder: Path, queries: int = 1000) -> dict[str, float]:
    """Recall@100 of the bundle's ANN index against exact top-100, for the bundle's setting and a few others."""
    bundle = Bundle.load(folder)
    rng = np.random.default_rng(7)
    buyers = [{"buyer_id": f"b{i}"} for i in rng.choice(BUYERS, queries, replace=False)]
    from tandem.serving.recommender import encode_buyers

    q = encode_buyers(bundle, buyers).queries
    exact = ExactIndex(bundle.candidates).search(q, 100)
    index = bundle.index
    out = {}
    if index.algorithm == "hnsw":
        for ef in (64, 128, 256):
            index.index.hnsw.efSearch = ef
            out[f"efSearch={ef}"] = recall_against_exact(index.search(q, 100), exact)
    else:
        for nprobe in (4, 16, 64):
            index.index.nprobe = nprobe
            out[f"nprobe={nprobe}"] = recall_against_exact(index.search(q, 100), exact)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalog sizes, comma-separated")
    parser.add_argument("--algorithms", default="brute_force,hnsw,ivf")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per client and measurement")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=1, help="load processes at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (the median is reported)")
    parser.add_argument("--reuse", action="store_true", help="serve bundles already in bench/out/serve_bench")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    root = OUT / "serve_bench"
    results: list[dict[str, Any]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        parts = synthetic_parts(n) if not args.reuse else None
        for algorithm in args.algorithms.split(","):
            folder = root / f"{n}-{algorithm}"
            reuse = args.reuse and (folder / "manifest.json").is_file()
            if not reuse and parts is None:
                parts = synthetic_parts(n)
            export_s = None if reuse else build_bundle(parts, algorithm, folder)
            row: dict[str, Any] = {"products": n, "index": algorithm, "export_s": export_s}
            row["params"] = {
                k: v
                for k, v in json.loads((folder / "manifest.json").read_text())["index"].items()
                if k not in ("algorithm", "file")
            }
            if algorithm != "brute_force":
                row["recall_at_100"] = ann_recall(folder)
            server = Server(folder)
            try:
                row["retrieve"] = measure(
                    server.port, "retrieve", args.requests, args.warmup, n, args.clients, args.rounds
                )
                if algorithm == "brute_force":  # ranking does not touch the index: once per catalog
                    row["rank"] = measure(server.port, "rank", args.requests, args.warmup, n, args.clients, args.rounds)
            finally:
                server.stop()
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            results.append(row)
            print(json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "serve_bench.json").write_text(json.dumps({"machine": machine_line(), "results": results}, indent=2))
    print(f"\n{args.clients} client(s); median of {args.rounds} rounds of {args.requests} timed requests per client\n")
    print("| products | index | parameters | endpoint | p50 ms | p99 ms | requests/s | ANN recall@100 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "exact"
        recall = ", ".join(f"{k}: {v:.3f}" for k, v in r.get("recall_at_100", {}).items()) or "1 (exact)"
        for endpoint in ("retrieve", "rank"):
            if endpoint in r:
                m = r[endpoint]
                shown = recall if endpoint == "retrieve" else "n/a"
                print(
                    f"| {r['products']:,} | {r['index']} | {params} | {endpoint} | {m['p50_ms']:.2f} | "
                    f"{m['p99_ms']:.2f} | {m['rps']:.0f} | {shown} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
