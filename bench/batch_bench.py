"""Batch recommendations at scale: `tandem recommend` for 1M buyers against a 1M-product index, sharded.

Why: a B2B platform scores every buyer nightly, and catalogs reach a million products. The batch command must keep
its memory bounded whatever the number of buyers (it streams chunks of buyers through the index and appends row
groups to the output), and a cluster scheduler must be able to fan it out (`--shard i/n`, one process per part).

This builds a synthetic bundle through the real export path (bench/serve_bench.py's clustered two-tower model, 32-d,
an IVF index: nlist 1024, nprobe 16), writes a buyers file of every buyer id, and runs `tandem recommend` as a user
runs it, one process per shard, all shards at once (each with one BLAS/OpenMP thread). It reports, per shard and in
all, wall seconds, buyers per second, buyers per CPU-second (the figure a busy machine changes least) and each
process's peak resident memory; then a shard of a tenth of the buyers alone, to show that memory does not grow with
the buyers.

    .venv/bin/python bench/batch_bench.py                       # 1M × 1M, 2 shards, k 10
    .venv/bin/python bench/batch_bench.py --buyers 100000 --products 100000 --shards 1
    .venv/bin/python bench/batch_bench.py --reuse               # keep the bundle and buyers file already built

Raw results go to bench/out/batch_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from _common import OUT, machine_line
from serve_bench import build_bundle, synthetic_parts

from tandem.serving.batch import shard_rows

THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def build(root: Path, n_buyers: int, n_products: int, reuse: bool) -> tuple[Path, Path]:
    """The bundle and the buyers file (built unless `reuse` finds them)."""
    bundle, buyers = root / "bundle", root / "buyers.parquet"
    if reuse and (bundle / "manifest.json").is_file() and buyers.is_file():
        return bundle, buyers
    started = time.perf_counter()
    parts = synthetic_parts(n_products, n_buyers=n_buyers)
    build_bundle(parts, "ivf", bundle)
    pd.DataFrame({"buyer_id": parts["buyer_ids"]}).to_parquet(buyers, index=False)
    print(f"built the bundle and buyers file in {time.perf_counter() - started:.0f} s", flush=True)
    return bundle, buyers


def run_shards(bundle: Path, buyers: Path, out: Path, k: int, shards: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Run one `tandem recommend` per shard, all at once; per shard: wall and CPU seconds, peak MiB, rows written."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **THREADS}
    running = {}
    for i, n in shards:
        target = out / f"part-{i}-of-{n}.parquet"
        command = [sys.executable, "-m", "tandem.cli", "recommend", str(bundle), "--buyers", str(buyers)]
        command += ["--out", str(target), "--k", str(k), "--shard", f"{i}/{n}", "--quiet"]
        log = (out / f"part-{i}-of-{n}.log").open("w")
        running[subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env).pid] = (i, n, target, log)
    started = time.perf_counter()
    results = []
    while running:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        i, n, target, log = running.pop(pid)
        log.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"shard {i}/{n} failed; see {log.name}")
        results.append(
            {
                "shard": f"{i}/{n}",
                "seconds": time.perf_counter() - started,
                "peak_rss_mib": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "rows": pq.ParquetFile(target).metadata.num_rows,
            }
        )
    return sorted(results, key=lambda r: r["shard"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=2, help="processes at once, one shard each")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    root = OUT / "batch_bench" / f"{args.buyers}x{args.products}"
    bundle, buyers = build(root, args.buyers, args.products, args.reuse)
    report: dict[str, Any] = {"machine": machine_line(), "buyers": args.buyers, "products": args.products}
    report["all"] = run_shards(bundle, buyers, root / "out", args.k, [(i, args.shards) for i in range(args.shards)])
    wall = max(r["seconds"] for r in report["all"])
    assert sum(r["rows"] for r in report["all"]) == args.buyers * args.k
    report["buyers_per_s"] = args.buyers / wall
    tenth = run_shards(bundle, buyers, root / "out-tenth", args.k, [(0, 10)])[0]
    report["tenth"] = {**tenth, "buyers": int(shard_rows(args.buyers, (0, 10))[1])}
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    (OUT / "batch_bench.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print("\n| buyers × products | processes | wall | buyers/s | buyers per CPU-s | peak RSS per process | k |")
    print("|---|---|---|---|---|---|---|")
    cpu = sum(r["cpu_s"] for r in report["all"])
    peak = max(r["peak_rss_mib"] for r in report["all"])
    print(
        f"| {args.buyers:,} × {args.products:,} (IVF) | {args.shards} | {wall:.0f} s | {report['buyers_per_s']:,.0f} | "
        f"{args.buyers / cpu:,.0f} | {peak:,.0f} MiB | {args.k} |"
    )
    t = report["tenth"]
    print(
        f"| {t['buyers']:,} × {args.products:,} (IVF), shard 0/10 alone | 1 | {t['seconds']:.0f} s | "
        f"{t['buyers'] / t['seconds']:,.0f} | {t['buyers'] / t['cpu_s']:,.0f} | {t['peak_rss_mib']:,.0f} MiB | "
        f"{args.k} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
