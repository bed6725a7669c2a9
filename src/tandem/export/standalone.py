"""The entry point of a generated trainer module: read its arguments, then train, evaluate and export one spec.

`tandem.export.trainer_module` copies this module, after the engine modules it needs, into every generated trainer
and calls `main(SPEC)` with the experiment's spec written out as a literal. It is ordinary engine code, so it is
tested (and linted) here like the rest.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

from tandem.errors import SpecError, TandemError
from tandem.run import run
from tandem.spec import apply_overrides, parse_spec


def main(raw_spec: dict[str, Any], argv: list[str] | None = None) -> int:
    """Train `raw_spec` (relative data paths are read from --data), print the metrics, write --out; exit status."""
    parser = argparse.ArgumentParser(description=f"Train, evaluate and export the experiment '{raw_spec.get('name')}'.")
    parser.add_argument("--data", required=True, metavar="DIR", help="folder holding the data files the spec names")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a spec value")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output: metrics.json, history.json, model/, bundle/"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        spec = parse_spec(apply_overrides(copy.deepcopy(raw_spec), args.set), base=Path(args.data).resolve())
        result = run(spec, progress=not args.quiet)
        out = result.save(args.out)
    except SpecError as e:
        print(f"{len(e.problems)} problem(s) found:", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except TandemError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{spec.name}: {spec.model.type} model trained in {result.seconds:.1f}s")
    for key in sorted(result.metrics):
        print(f"  {key:<32} {result.metrics[key]:.6f}")
    print(f"wrote {out}")
    return 0
