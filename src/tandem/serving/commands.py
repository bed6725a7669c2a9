"""The serving commands of the `tandem` CLI: `serve` (the HTTP server) and `recommend` (batch scoring).

Heavy imports (ONNX Runtime, Starlette, uvicorn) happen when a command runs, so that `tandem --help` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cmd_serve(args: argparse.Namespace) -> int:
    # Set before numpy and FAISS load, which read them once. One request is one query: on a shared 2-core machine
    # BLAS thread hand-offs cost more than they save (100K exact search: p95 2 ms on one thread, 9 ms on two).
    for variable in THREAD_VARIABLES:
        if args.threads is not None or variable not in os.environ:
            os.environ[variable] = str(args.threads or 1)
    import uvicorn

    from tandem.serving.app import create_app
    from tandem.serving.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    app = create_app(bundle)
    # The bundle lives as long as the server: out of the collector's sight, no collection walks it again (a full
    # collection over a 100K-product bundle's objects took 0.1-0.2 s, a pause every request in flight would feel).
    gc.collect()
    gc.freeze()
    manifest = bundle.manifest
    index = (manifest.index or {}).get("algorithm", "none")
    print(
        f"serving {manifest.name} ({manifest.model_type}; {manifest.num_products} products; index {index}; "
        f"signatures {', '.join(manifest.signatures)}) on http://{args.host}:{args.port}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from tandem.serving.batch import SPEC_TRANSACTIONS, recommend_file
    from tandem.serving.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    counts = recommend_file(
        bundle,
        args.buyers,
        args.out,
        k=args.k,
        purchases=args.exclude_purchased,
        chunk_rows=args.chunk_rows,
        shard=args.shard,
        new_only=args.new_only,
        progress=not args.quiet,
    )
    source = {None: None, SPEC_TRANSACTIONS: "the spec's transactions"}.get(
        args.exclude_purchased, args.exclude_purchased
    )
    excluded = f" (past purchases in {source} excluded)" if source else ""
    listed = ""
    if bundle.lists is not None:
        lists = "the second stage's" if bundle.manifest.second_stage else f"the {bundle.manifest.model_type} model's"
        new = " of new products" if args.new_only else ""
        listed = f"; {counts['listed']} known buyer(s) given {lists} lists{new}"
    print(
        f"wrote {args.out}: {counts['rows']} rows for {counts['buyers']} buyers{excluded}; "
        f"{counts['fallbacks']} buyer(s) served by a fallback{listed}"
    )
    return 0


def _shard(text: str) -> tuple[int, int]:
    """`--shard I/N` as (I, N); the range itself is checked by recommend_file."""
    i, slash, n = text.partition("/")
    if not (slash and i.strip().isdigit() and n.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"'{text}' is not I/N, e.g. 0/4")
    return int(i), int(n)


def add_serving_commands(sub: argparse._SubParsersAction) -> None:
    """Register `serve` and `recommend` on the `tandem` parser's subcommands."""
    serve = sub.add_parser("serve", help="serve a bundle over HTTP (retrieve, rank, recommend)")
    serve.add_argument("bundle", help="bundle folder (the bundle/ that `tandem train` writes)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8500, help="port (default: 8500)")
    serve.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--threads", type=int, help="BLAS/OpenMP threads per request (default: 1, or OMP_NUM_THREADS)")
    serve.set_defaults(func=cmd_serve)

    rec = sub.add_parser("recommend", help="write the top-K products of every buyer in a file (Parquet output)")
    rec.add_argument("bundle", help="bundle folder")
    rec.add_argument("--buyers", required=True, help="CSV or Parquet file with the buyer feature columns")
    rec.add_argument("--k", type=int, default=100, help="products per buyer (default: 100)")
    rec.add_argument("--out", required=True, help="output Parquet file")
    rec.add_argument(
        "--exclude-purchased",
        nargs="?",
        const="spec",
        metavar="FILE",
        help="leave out each buyer's past purchases: from FILE (buyer and product id columns as in the spec), "
        "or, without FILE, from the spec's transactions file",
    )
    rec.add_argument(
        "--new-only",
        action="store_true",
        help="give the buyers the bundle's lists know only products they never bought (the lists of new products)",
    )
    rec.add_argument("--chunk-rows", type=int, default=1024, help="buyers scored at a time (default: 1024)")
    rec.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/N",
        help="score only part I of N consecutive parts of the buyers file (0-based), one process per part",
    )
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.set_defaults(func=cmd_recommend)
