"""`tandem study`: search spec fields with Optuna, trials run by local worker processes sharing one storage."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tandem.errors import Problem, SpecError

DEFAULT_TRIALS = 20


def add_study_command(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser(
        "study",
        help="search spec fields (grid, random, TPE, NSGA-II) for one or several objectives",
        description="Each trial trains the spec with its parameters set. Parameters: path=a,b,c (values), "
        "path=lo:hi:step (a stepped range), path=lo:hi (continuous), path=log:lo:hi (log-uniform).",
    )
    study.add_argument("spec", help="the base experiment spec (YAML)")
    study.add_argument("--param", action="append", default=[], metavar="PATH=VALUES", help="a searched field")
    study.add_argument("--objective", action="append", default=[], metavar="METRIC:max|min",
                       help="a metrics.json key (or lift_recall_at_K) and its direction; repeat for a Pareto front")  # fmt: skip
    study.add_argument("--trials", type=int, metavar="N", help=f"the budget (default: the grid, or {DEFAULT_TRIALS})")
    study.add_argument("--jobs", type=int, default=1, metavar="J", help="trials run at once (worker processes)")
    study.add_argument("--sampler", default="tpe", choices=("grid", "random", "tpe", "nsga2"))
    study.add_argument("--prune", default="none", choices=("none", "median", "halving"),
                       help="stop hopeless trials from their per-epoch validation metric (one objective)")  # fmt: skip
    study.add_argument("--prune-after", type=int, default=3, metavar="N", help="median rule: trials before pruning")
    study.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    study.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a base spec value")
    study.add_argument("--storage", help="Optuna RDB storage URL (default: a SQLite file in --out)")
    study.add_argument("--name", help="the study's name in the storage (default: the spec's name)")
    study.add_argument("--out", default="runs/study", help="output folder (default: runs/study)")
    study.add_argument("--quiet", action="store_true", help="no progress bar")
    study.set_defaults(func=cmd_study)


def _setup(args: argparse.Namespace) -> Any:
    """Parse and check everything before any trial runs; raises SpecError listing every problem."""
    from tandem.spec import load_spec
    from tandem.study import search
    from tandem.study.objectives import parse_objectives
    from tandem.study.space import check_space, parse_space
    from tandem.study.worker import StudySetup

    problems = []
    spec = load_spec(args.spec, list(args.set or []))
    raw = spec.to_dict()
    parsed: dict[str, Any] = {}
    for key, parse, given in (("space", parse_space, args.param), ("objectives", parse_objectives, args.objective)):
        try:
            parsed[key] = parse(given)
        except SpecError as e:
            problems += e.problems
    if args.trials is not None and args.trials < 1:
        problems.append(Problem("--trials", f"the budget must be at least 1 trial, got {args.trials}"))
    if args.jobs < 1:
        problems.append(Problem("--jobs", f"at least 1 worker is needed, got {args.jobs}"))
    if "space" in parsed:
        try:
            check_space(raw, None, parsed["space"])
        except SpecError as e:
            problems += e.problems
    if len(parsed) == 2:
        try:
            search.check_search(parsed["space"], parsed["objectives"], args.sampler, args.prune,
                                spec.data.split.validation_fraction)  # fmt: skip
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    space = parsed["space"]
    grid = space.grid_size() if args.sampler == "grid" else None
    budget = min(args.trials or grid, grid) if grid else args.trials or DEFAULT_TRIALS
    return spec.name, StudySetup(raw, None, space, parsed["objectives"], budget, args.prune, args.sampler, args.seed)


def _open(args: argparse.Namespace, name: str, setup: Any) -> Any:
    from tandem.study import search

    return search.open_study(args.storage, name, setup.objectives, setup.space, sampler=args.sampler,
                             pruner=args.prune, startup_trials=args.prune_after, seed=args.seed)  # fmt: skip


def _worker_process(args: argparse.Namespace, name: str, setup: Any) -> None:
    """One extra worker of the study (a spawned process)."""
    from tandem.cli import _passive_openmp_threads
    from tandem.study.worker import StudyAborted, work

    _passive_openmp_threads()
    try:
        work(_open(args, name, setup), setup, Path(args.out) / "study.lock", Path(args.out))
    except StudyAborted:
        sys.exit(1)


def _progress(study: Any, budget: int, done: threading.Event, quiet: bool) -> None:
    """A progress bar over the study's finished trials, read from its storage (every worker's trials count)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=budget, desc="trials", unit="trial", disable=quiet)
    while True:
        finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        if finished != bar.n:
            bar.update(finished - bar.n)
        if done.wait(1.0):
            break
    bar.close()


def _wait_for_running(study: Any) -> None:
    """Trials other workers still run end, or are failed once their heartbeat is stale (a killed worker)."""
    import optuna

    from tandem.study.search import fail_stale

    while True:
        fail_stale(study)
        if not any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
            return
        time.sleep(1.0)


def cmd_study(args: argparse.Namespace) -> int:
    from tandem.errors import TandemError
    from tandem.study.worker import ABORTED_ATTR, StudyAborted, work

    name, setup = _setup(args)
    name = args.name or name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.storage = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = _open(args, name, setup)
    context = multiprocessing.get_context("spawn")
    others = [context.Process(target=_worker_process, args=(args, name, setup)) for _ in range(args.jobs - 1)]
    for p in others:
        p.start()
    done = threading.Event()
    bar = threading.Thread(target=_progress, args=(study, setup.budget, done, args.quiet), daemon=True)
    bar.start()
    try:
        work(study, setup, out / "study.lock", out)
    except StudyAborted:
        pass
    finally:
        for p in others:
            p.join()
        _wait_for_running(study)
        done.set()
        bar.join()
    if ABORTED_ATTR in study.user_attrs:
        raise TandemError(f"the study stopped: {study.user_attrs[ABORTED_ATTR]}")
    _report(study, setup, out, f"study '{name}' is in {args.storage}")
    return 0


def _report(study: Any, setup: Any, out: Path, where: str) -> None:
    """The table of trials, the Pareto set, study.json and the best spec."""
    from tandem.study.record import best_number, reason, study_record

    record = study_record(study, setup.space)
    (out / "study.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(format_trials(record, setup, {t.number: reason(t) for t in study.get_trials(deepcopy=False)}))
    front = ", ".join(str(n) for n in record["pareto"]) or "none (no trial completed)"
    print(f"{'Pareto set' if len(setup.objectives) > 1 else 'best trial'}: {front}")
    best = best_number(study)
    wrote = f"wrote {out}/study.json"
    if best is not None:
        spec_file = out / "trials" / f"{best:04d}" / "spec.yaml"
        (out / "best.yaml").write_text(spec_file.read_text(encoding="utf-8"), encoding="utf-8")
        wrote += f" and {out}/best.yaml (trial {best})"
    print(f"{wrote}; {where}")


def _shown(value: Any) -> str:
    """A parameter value in the table: floats to four significant digits (study.json keeps them whole)."""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)


def format_trials(record: dict[str, Any], setup: Any, reasons: dict[int, str]) -> str:
    """A table: number, state, each parameter, each objective; Pareto trials starred, reasons below."""
    pareto = set(record["pareto"])
    heads = ["#", "state", *(p.path for p in setup.space.params), *(o.metric for o in setup.objectives)]
    rows = []
    for t in record["trials"]:
        values = [_shown(t["params"].get(p.path)) for p in setup.space.params]
        scores = [f"{t['metrics'][o.metric]:.4f}" if isinstance(t["metrics"].get(o.metric), float) else "-"
                  for o in setup.objectives]  # fmt: skip
        rows.append([f"{t['number']}{'*' if t['number'] in pareto else ''}", t["state"], *values, *scores])
    widths = [max(len(str(c)) for c in col) for col in zip(heads, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [heads, *rows]]
    notes = [f"  trial {n}: {text}" for n, text in sorted(reasons.items()) if text]
    return "\n".join(lines + notes)
