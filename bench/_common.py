"""Shared helpers of the benchmark scripts: paths, the machine description, timing and medians.

The machine these run on is shared (other engineers run tests on the same two cores), so every script
repeats its measurements, reports medians, and prints the load average beside its figures. Paths are
computed from this file's location so the scripts run from any working directory.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"  # git-ignored: synthetic data, venvs, raw outputs
TUTORIAL_SPEC = REPO / "examples" / "movielens_multitask.yaml"
ML100K = REPO.parent / "shared" / "data" / "ml-100k"
TANDEM = REPO / ".venv" / "bin" / "tandem"


def cpu_model() -> str:
    """The CPU model as lscpu names it (falls back to platform.processor())."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line() -> str:
    """One line describing the machine and the torch build, printed at the top of every benchmark."""
    parts = [f"nproc {os.cpu_count()}", f"CPU {cpu_model()}", f"Python {platform.python_version()}"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    omp = {k: os.environ[k] for k in OPENMP_KEYS if k in os.environ}
    if omp:
        parts.append(" ".join(f"{k}={v}" for k, v in omp.items()))
    parts.append(f"load average {load_average()}")
    return "; ".join(parts)


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Seconds of `repeat` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'median (min–max, n)' in seconds, for tables."""
    return f"{median(values):.3f} s ({min(values):.3f}–{max(values):.3f}, n={len(values)})"


OPENMP_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def run_child(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> tuple[float, float, str]:
    """Run a command to its exit: (wall seconds from spawn, its peak memory in MiB, its stdout).

    The child inherits this environment less `drop`, plus `env`. stdout goes to `log` and stderr beside it,
    so a chatty child cannot block on a pipe; os.wait4 gives this child's own peak resident memory.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    err_path = log.with_suffix(".stderr")
    with open(log, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        inherited = {k: v for k, v in os.environ.items() if k not in drop}
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env={**inherited, **(env or {})})
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen, or it waits again
    stdout = log.read_text()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {child.returncode}; see {log} and {err_path}")
    return wall, usage.ru_maxrss / 1024, stdout


def seconds_since_process_start() -> float:
    """Wall seconds since this process started (Linux /proc), so interpreter start-up is counted too."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
