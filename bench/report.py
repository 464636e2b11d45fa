"""Running the figures' measurements, and the table and JSON they end up in."""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from bench.figures import Figure, Sample
from bench.suite import Bench

logger = logging.getLogger("bench")


def measure(bench: Bench, figure: Figure) -> dict[str, Any]:
    """Run a figure as many times as the scale sets; return its result object."""
    result: dict[str, Any] = {
        "name": figure.name,
        "unit": figure.unit,
        "description": figure.description,
        "baseline_description": figure.baseline or None,
        "target": str(figure.target) if figure.target else None,
    }
    if figure.measure is None:
        return {**result, "value": None, "baseline": None, "ratio": None, "met": None,
                "status": f"not measured: needs {figure.needs}"}
    started = time.perf_counter()
    runs = figure.runs or bench.scale.runs
    try:
        samples = [figure.measure(bench, run) for run in range(runs)]
    except Exception as error:
        # One failed figure must not cost the figures measured before it.
        logger.exception("%s failed", figure.name)
        return {**result, "value": None, "baseline": None, "ratio": None, "met": None,
                "status": f"failed: {type(error).__name__}: {error}"}
    values = [sample.value for sample in samples]
    baselines = [sample.baseline for sample in samples if sample.baseline is not None]
    ratios = [sample.ratio for sample in samples if sample.ratio is not None]
    summary = Sample(statistics.median(values),
                     statistics.median(baselines) if baselines else None)
    ratio = statistics.median(ratios) if ratios else None
    met = figure.target.met(Sample(summary.value, summary.baseline)) if figure.target else None
    if figure.target is not None and figure.target.of == "ratio" and ratio is not None:
        met = figure.target.met(Sample(ratio, 1.0))
    logger.info("%s: %s %s (%.0f s)", figure.name, _number(summary.value), figure.unit,
                time.perf_counter() - started)
    return {
        **result,
        "value": summary.value,
        "baseline": summary.baseline,
        "ratio": ratio,
        "met": met,
        "status": "measured",
        "runs": len(samples),
        "median": summary.value,
        "min": min(values),
        "max": max(values),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "samples": [{"value": s.value, "baseline": s.baseline, "ratio": s.ratio}
                    for s in samples],
    }


def table(results: list[dict[str, Any]]) -> str:
    """Return the results as a Markdown table."""
    lines = [
        "| figure | value (min to max) | unit | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result["status"] != "measured":
            lines.append(f"| {result['name']} | {result['status']} | {result['unit']} | | |"
                         f" {result['target'] or ''} | |")
            continue
        spread = ""
        if result["runs"] > 1:
            spread = f" ({_number(result['min'])} to {_number(result['max'])})"
        met = {True: "yes", False: "**no**", None: ""}[result["met"]]
        lines.append(
            f"| {result['name']} | {_number(result['value'])}{spread} | {result['unit']}"
            f" | {_number(result['baseline'])} | {_number(result['ratio'], ratio=True)}"
            f" | {result['target'] or ''} | {met} |"
        )
    return "\n".join(lines)


def write_json(path: Path, results: list[dict[str, Any]], context: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**context, "figures": results}, indent=2) + "\n")


def _number(value: float | None, ratio: bool = False) -> str:
    if value is None:
        return ""
    if ratio:
        return f"{value:.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
