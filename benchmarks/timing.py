"""Timing helpers shared by the adapter-overhead benchmarks.

``chat_hybrid_overhead.py`` and ``hybrid_llm_overhead.py`` import this sibling module
(they run as ``python benchmarks/<name>.py``, so ``benchmarks/`` is on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn()``; return its wall time in microseconds and its result."""
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1e6, out


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p90, p99 and mean of ``samples`` (microseconds), rounded to 0.1 us."""
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


def machine_info(load: float) -> dict[str, Any]:
    """The report fields that say where and under what load the numbers were taken."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(load, 2),
    }


def print_timings(timings: dict[str, dict[str, float]]) -> None:
    """Print ``{name: summary(...)}`` as a markdown table."""
    print("| what | p50 (us) | p90 (us) | p99 (us) | mean (us) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in timings.items():
        print(
            f"| {name} | {row['p50_us']} | {row['p90_us']} | {row['p99_us']} | {row['mean_us']} |"
        )


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
