"""Helpers shared by the benchmarks: percentiles and saving a result table."""

from __future__ import annotations

from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def publish(table: str, name: str) -> None:
    """Print a markdown table and save it as bench/results/<name>.md."""
    print(table)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.md").write_text(table)
