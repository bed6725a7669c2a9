"""The `tandem` command: init, train, validate, study, and the serving and export commands."""

from __future__ import annotations

import argparse
import os
import sys

from tandem.errors import SpecError, TandemError
from tandem.export.commands import add_export_commands
from tandem.metric_names import HEADLINE
from tandem.serving.commands import add_serving_commands
from tandem.study.commands import add_study_command

METRIC_ORDER = HEADLINE


def _family(name: str) -> tuple[str, int]:
    """A metric's family and K: "coverage_at_10" → ("coverage", 10); a metric without K has K -1."""
    family, at, k = name.rpartition("_at_")
    return (family, int(k)) if at and k.isdigit() else (name, -1)


# The headline metrics' families, in reading order: recall, then the validation and test errors.
HEADLINE = tuple(dict.fromkeys(_family(name)[0] for name in METRIC_ORDER))


def _reading_order(name: str) -> tuple[int, str, int]:
    """Sort key of the metric table: the headline families first, then the others by name; K ascending in each."""
    family, k = _family(name)
    lead = HEADLINE.index(family) if family in HEADLINE else len(HEADLINE)
    return lead, family, k


def _format_table(metrics: dict[str, float]) -> str:
    keys = sorted(metrics, key=_reading_order)
    width = max(len(k) for k in keys) if keys else 0
    return "\n".join(f"  {k:<{width}}  {metrics[k]:.4f}" for k in keys)


def _format_lifts(metrics: dict[str, float]) -> str:
    """Recall of the model beside the best baseline at each K, for all, repeat and explore test pairs."""
    from tandem.evaluation.metrics import lifts

    ks = sorted({int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("recall_at_")})
    rows = lifts(metrics, ks)
    if not rows:
        return ""
    lines = ["  model vs best baseline   model   baseline               lift"]
    for r in rows:
        name = f"{(r.subset or 'all_').rstrip('_')} recall@{r.k}"
        lift = f"x{r.lift:.2f}" if r.lift is not None else "-"
        lines.append(f"  {name:<22}  {r.model:.4f}  {r.baseline:<14} {r.baseline_value:.4f}  {lift}")
    return "\n".join(lines)


def _print_problems(err: SpecError) -> None:
    n = len(err.problems)
    print(f"{n} problem{'s' if n != 1 else ''} found:", file=sys.stderr)
    for p in err.problems:
        print(f"  - {p.path}: {p.message}", file=sys.stderr)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    return list(args.set or []) + ([f"training.device={args.device}"] if args.device else [])


def cmd_train(args: argparse.Namespace) -> int:
    from tandem.spec import load_spec

    load_spec(args.spec, _train_overrides(args))  # a bad spec is reported before any process starts
    if args.nproc == 1:
        return _train_process(args)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from tandem.training.distributed import launch

    try:
        launch(args.nproc, _train_rank, args)
    except ChildFailedError:
        print("error: a training process failed; see its message above", file=sys.stderr)
        return 1
    return 0


def _train_rank(args: argparse.Namespace) -> None:
    """One process of `tandem train --nproc N`; exits non-zero with the usual message when its run fails."""
    code = _handled(_train_process, args)
    if code:
        sys.exit(code)


def _train_process(args: argparse.Namespace) -> int:
    """Train in this process, alone or as one rank of a data-parallel run (torchrun's environment); rank 0
    evaluates, writes and reports."""
    from tandem.run import run
    from tandem.spec import load_spec
    from tandem.training.distributed import join_from_environment, world

    spec = load_spec(args.spec, _train_overrides(args))
    join_from_environment(spec.training.device)
    rank, _ = world()
    result = run(spec, progress=not args.quiet and rank == 0)
    if rank:
        return 0
    out = result.save(args.out)
    print(
        f"{spec.name}: {spec.model.type} model trained in {result.seconds:.1f}s "
        f"({result.data_report['train_rows']} train / {result.data_report['test_rows']} test rows)"
    )
    for note in result.notes:
        print(f"note: {note}")
    print(_format_table(result.metrics))
    print(_format_lifts(result.metrics))
    folders = "model/ and bundle/" if result.trained is not None else "bundle/"  # a baseline model has no towers
    print(f"wrote {out}/metrics.json, history.json, weight_stats.json, spec.yaml, {folders}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from tandem.data.prepare import BUYER, PRODUCT
    from tandem.spec import load_spec
    from tandem.validation import check_data

    spec = load_spec(args.spec, list(args.set or []))
    interactions, _, _ = check_data(spec)
    r, frame = interactions.report, interactions.frame
    print(
        f"{args.spec}: valid. {r['rows_sampled']} rows ({r['train_rows']} train, {r['validation_rows']} validation, "
        f"{r['test_rows']} test), {frame[PRODUCT].nunique()} products, {frame[BUYER].nunique()} buyers"
    )
    dropped = {k: v for k, v in r.items() if k.startswith("dropped_") and v}
    for k, v in dropped.items():
        print(f"  {k.removeprefix('dropped_').replace('_', ' ')}: {v} rows dropped")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from tandem.init import init_spec

    if os.path.exists(args.out) and not args.force:
        print(f"error: {args.out} exists; choose another -o or add --force to replace it", file=sys.stderr)
        return 1
    attributes = {
        role: (path, key or default)
        for role, path, key, default in (
            ("buyers", args.buyers, args.buyers_key, args.buyer_id),
            ("products", args.products, args.products_key, args.product_id),
        )
        if path
    }
    spec, _ = init_spec(
        args.out,
        args.transactions,
        buyer_id=args.buyer_id,
        product_id=args.product_id,
        timestamp=args.timestamp,
        target=args.target,
        order_id=args.order_id,
        timestamp_format=args.timestamp_format,
        **attributes,
    )
    n_features = len(spec.features.buyer) + len(spec.features.product)
    print(
        f"wrote {args.out}: a {spec.model.type} model with {n_features} features, time split at "
        f"{spec.data.split.cutoff}, {spec.training.epochs} epochs; each choice is explained in the file"
    )
    print(f"next: tandem validate {args.out} && tandem train {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description="Train, evaluate and serve recommendation models.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train and evaluate an experiment spec")
    train.add_argument("spec", help="experiment spec (YAML)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a spec value (repeatable)")
    train.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train.add_argument("--device", help="cpu or cuda (default: the spec's training.device)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--nproc", type=_process_count, default=1, help="data-parallel processes on this machine (default: 1)"
    )
    train.set_defaults(func=cmd_train)
    validate = sub.add_parser("validate", help="check a spec and its data; exit 1 when there are problems")
    validate.add_argument("spec")
    validate.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    validate.set_defaults(func=cmd_validate)
    init = sub.add_parser("init", help="profile a transactions file and write a recommended, commented spec")
    init.add_argument("transactions", help="transactions file (CSV or Parquet): one row per purchase line")
    init.add_argument("--buyer-id", required=True, metavar="COL", help="column holding the buyer id")
    init.add_argument("--product-id", required=True, metavar="COL", help="column holding the product id")
    init.add_argument("--timestamp", required=True, metavar="COL", help="column holding the purchase time or date")
    init.add_argument("--target", metavar="COL", help="numeric column to rank by (summed per pair), e.g. sales")
    init.add_argument("--order-id", metavar="COL", help="order (basket) column; else a buyer's lines on one day")
    init.add_argument("--timestamp-format", metavar="FMT", help="strptime format when dates are ambiguous")
    init.add_argument("--buyers", metavar="FILE", help="buyer attributes file")
    init.add_argument("--buyers-key", metavar="COL", help="its buyer id column (default: --buyer-id)")
    init.add_argument("--products", metavar="FILE", help="product attributes file")
    init.add_argument("--products-key", metavar="COL", help="its product id column (default: --product-id)")
    init.add_argument("-o", "--out", default="spec.yaml", help="spec file to write (default: spec.yaml)")
    init.add_argument("--force", action="store_true", help="replace the spec file if it exists")
    init.set_defaults(func=cmd_init)
    add_serving_commands(sub)
    add_export_commands(sub)
    add_study_command(sub)
    return parser


def _openmp_waiting() -> None:
    """Choose how idle OpenMP threads wait, unless the user chose (before torch loads): a short spin on an idle
    machine, sleeping at once on a busy one.

    torch's CPU wheel uses libgomp, whose waiting threads spin 300,000 times before they sleep. On a machine
    shared with other work (two busy cores), a spinning thread takes the core its partner needs, and the
    tutorial run's training took 4–8× as long as with passive waiting; on an idle machine a short spin wakes
    threads faster than sleeping does, and the run is 5–10% quicker (bench/run_profile.py --env-study;
    bench/RESULTS.md). Busy: the last minute's load average is at least half the cores.
    """
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ.update(openmp_wait_env(os.getloadavg()[0], os.cpu_count() or 1))


def openmp_wait_env(load: float, cores: int) -> dict[str, str]:
    """The OpenMP variables `_openmp_waiting` sets for a load average on a number of cores."""
    return {"OMP_WAIT_POLICY": "PASSIVE"} if load >= 0.5 * cores else {"GOMP_SPINCOUNT": "10000"}


def _process_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes from 1 to 64, got '{text}'")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    _openmp_waiting()
    args = build_parser().parse_args(argv)
    return _handled(args.func, args)


def _handled(func, args: argparse.Namespace) -> int:
    """Run a command; problems with the spec or the data become messages and exit code 1, not tracebacks."""
    try:
        return func(args)
    except SpecError as e:
        _print_problems(e)
        return 1
    except TandemError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
