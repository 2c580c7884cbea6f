"""Shared by the benchmarks: result rows, tables with ratios, peak memory."""

from __future__ import annotations

import json
import resource
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

__all__ = ["row", "write_results", "print_table", "peak_rss_mb"]


def row(task: str, system: str, metric: str, value: float) -> dict:
    return {"task": task, "system": system, "metric": metric, "value": float(value)}


def write_results(name: str, rows: Sequence[dict]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(list(rows), indent=2), encoding="utf-8")
    return path


def print_table(rows: Sequence[dict], baseline: str, higher_is_better: Sequence[str] = ()) -> None:
    """One line per (task, metric): every system's value and its ratio to ``baseline``."""
    seen = []
    for r in rows:
        key = (r["task"], r["metric"])
        if key not in seen:
            seen.append(key)
    systems = []
    for r in rows:
        if r["system"] not in systems:
            systems.append(r["system"])
    header = f"{'task':<28} {'metric':<22}" + "".join(f"{s:>18}" for s in systems) + "   ratio (labelloop / " + baseline + ")"
    print(header)
    print("-" * len(header))
    for task, metric in seen:
        values = {r["system"]: r["value"] for r in rows if r["task"] == task and r["metric"] == metric}
        cells = "".join(f"{values[s]:>18.4g}" if s in values else f"{'':>18}" for s in systems)
        ratio = ""
        if "labelloop" in values and baseline in values and values[baseline]:
            ratio = f"{values['labelloop'] / values[baseline]:.2f}"
        print(f"{task:<28} {metric:<22}{cells}   {ratio}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
