"""Run the benchmark suite: `python -m bench [--quick] [--only TEXT ...]`.

It prints a Markdown table of every figure and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import psycopg

from bench.figures import FIGURES
from bench.report import measure, table, write_json
from bench.suite import DEFAULT_ADMIN_URL, FULL, QUICK, Bench, environment_summary

RESULTS = Path(__file__).resolve().parent / "results.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small ledgers and short loads, for trying the suite out"
                             " (also set by BENCH_QUICK=1)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only figures whose name contains TEXT; repeatable")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"where to write the JSON results (default {RESULTS})")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL")
                        or DEFAULT_ADMIN_URL,
                        help="PostgreSQL URL of a database from which the suite creates and"
                             " drops its own database (also BENCH_DATABASE_URL)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    scale = QUICK if args.quick or os.environ.get("BENCH_QUICK") == "1" else FULL
    figures = [f for f in FIGURES if not args.only or any(text in f.name for text in args.only)]
    started = time.perf_counter()
    context = {"scale": scale.name, "tiers": scale.tiers, "commit_counts": scale.commit_counts,
               "machine": environment_summary(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                          time.gmtime())}
    results: list[dict[str, object]] = []
    with Bench(scale, args.database_url) as bench:
        context["machine"]["postgresql"] = _server_version(args.database_url)
        for figure in figures:
            results.append(measure(bench, figure))
            # Written after every figure, so a run stopped early keeps what it measured.
            write_json(args.output, results, {**context, "complete": False})
        context["datasets"] = bench.notes
    context["seconds"] = round(time.perf_counter() - started, 1)
    context["machine"]["load_average_after"] = environment_summary()["load_average"]
    write_json(args.output, results, {**context, "complete": True})
    print(table(results))
    print(f"\n{len(results)} figures in {context['seconds']:.0f} s; {args.output} written.")
    for note in context["datasets"]:
        print(f"- {note}")
    return 0


def _server_version(url: str) -> str:
    with psycopg.connect(url) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
