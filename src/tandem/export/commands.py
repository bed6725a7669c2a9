"""The export command of the `tandem` CLI: `export-trainer` writes a standalone trainer module for a spec."""

from __future__ import annotations

import argparse


def cmd_export_trainer(args: argparse.Namespace) -> int:
    from tandem.export.trainer_module import write_trainer
    from tandem.spec import load_spec

    spec = load_spec(args.spec, list(args.set or []))
    path = write_trainer(spec, args.output)
    print(f"wrote {path}: run it with  python {path} --data DATA_DIR --out OUT_DIR")
    return 0


def add_export_commands(sub: argparse._SubParsersAction) -> None:
    """Register `export-trainer` on the `tandem` parser's subcommands."""
    trainer = sub.add_parser("export-trainer", help="write a standalone trainer module (one .py file) for a spec")
    trainer.add_argument("spec", help="experiment spec (YAML)")
    trainer.add_argument("-o", "--output", default="trainer.py", help="output file (default: trainer.py)")
    trainer.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="override a spec value (repeatable)"
    )
    trainer.set_defaults(func=cmd_export_trainer)
