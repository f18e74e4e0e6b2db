"""Command line of the local stack: `python -m local_stack run` runs the main job end to end."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from local_stack.bench import run_bench
from local_stack.mainjob import render_records, render_summary, run_main_job
from local_stack.stack import LocalStack, StackOptions

DEFAULT_LOG = Path(".local-stack") / "functions.log"


def count(text: str) -> int:
    """A whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count")
    return value


def share(text: str) -> float:
    """A fraction between 0 and 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails this comparison too
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def milliseconds(text: str) -> float:
    """A finite, non-negative duration."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite, non-negative number of milliseconds")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the local stack and run the main job end to end")
    run.add_argument("--joins", type=count, default=10, help="members who join during the run (default 10)")
    run.add_argument("--known-members", type=count, default=50, help="members registered before the run (default 50)")
    run.add_argument(
        "--community-size", type=count, default=1200, help="members of the seeded community (default 1200)"
    )
    run.add_argument("--seed", type=int, default=7, help="seed of the community's activity (default 7)")
    run.add_argument("--error-rate", type=share, default=0.0, help="share of stats calls answered 500")
    run.add_argument("--rate-limit-rate", type=share, default=0.0, help="share of stats calls answered 429")
    run.add_argument("--latency-ms", type=milliseconds, default=0.0, help="latency of each stats call")
    run.add_argument("--show", type=count, default=30, help="records to print (default 30)")
    run.add_argument(
        "--log-file", type=Path, default=DEFAULT_LOG, help=f"where function logs go (default {DEFAULT_LOG})"
    )
    bench = commands.add_parser("bench", help="print webhook latency, worker throughput and scan cost")
    bench.add_argument("--deliveries", type=count, default=200, help="joins delivered over HTTP (default 200)")
    bench.add_argument("--registered", type=count, default=800, help="members registered before the scan (default 800)")
    arguments = parser.parse_args(argv)
    if arguments.command == "run":
        try:
            arguments.log_file.parent.mkdir(parents=True, exist_ok=True)
            arguments.log_file.touch()
        except OSError as exc:
            parser.error(f"cannot write the log file {arguments.log_file}: {exc.strerror}")
    if arguments.command == "bench":
        figures = run_bench(deliveries=arguments.deliveries, registered=arguments.registered)
        print("\n".join(figures.lines()))
        return 0

    options = StackOptions(
        community_size=arguments.community_size,
        seed=arguments.seed,
        error_rate=arguments.error_rate,
        rate_limit_rate=arguments.rate_limit_rate,
        latency_seconds=arguments.latency_ms / 1000,
        log_path=arguments.log_file,
    )
    with LocalStack(options) as stack:
        report = run_main_job(stack, joins=arguments.joins, known=arguments.known_members)

    print(f"\nmilestone records read back from DynamoDB ({len(report.records)}):\n")
    print(render_records(report.records, limit=arguments.show))
    print("\nsummary:")
    print(render_summary(report))
    print(f"function logs: {arguments.log_file}")
    if not report.ok:
        print("main job FAILED: " + ("; ".join(report.problems) or "no milestone record was written"), file=sys.stderr)
        return 1
    print("main job succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
