"""Start-up of the commands that need no training stack: `tandem validate` on the tutorial spec, and `tandem --help`.

Why: checking a spec should answer in about a second (the bar: `tandem validate` on the tutorial spec under 1.5 s,
process start to exit); it reads, cleans and splits MovieLens 100K and fits the feature transforms, without torch.
Each command runs as a user runs it, `--repeat` times; medians are printed with the load average, and the CPU
seconds (user + system) each run used, which a busy machine changes far less than the wall time.

    .venv/bin/python bench/startup_bench.py --repeat 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys

from _common import OUT, TANDEM, TUTORIAL_SPEC, load_average, machine_line, run_child

COMMANDS = {"tandem --help": ["--help"], "tandem validate (tutorial spec)": ["validate", str(TUTORIAL_SPEC)]}


def _children_cpu() -> float:
    """User + system seconds of every child this process has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"# startup_bench: {machine_line()}")
    print("| command | median wall | min–max | median CPU | peak memory |\n|---|---|---|---|---|")
    for name, command in COMMANDS.items():
        walls, cpus, peak = [], [], 0.0
        for i in range(args.repeat):
            before = _children_cpu()
            wall, rss, _ = run_child([str(TANDEM), *command], OUT / "startup" / f"{i}.log")
            walls.append(wall)
            cpus.append(_children_cpu() - before)
            peak = max(peak, rss)
        print(
            f"| `{name}` | {statistics.median(walls):.2f} s | {min(walls):.2f}–{max(walls):.2f} s (n={len(walls)}) | "
            f"{statistics.median(cpus):.2f} s | {peak:.0f} MiB |"
        )
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
