"""``recsys synth``: generate a synthetic dataset (MovieLens or events layout) with Spark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from recsys.jobs.common import parse_job_args
from recsys.synth import SynthSpec, write_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys synth", description="Generate a synthetic dataset with Spark.")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--interactions", type=int, required=True)
    parser.add_argument("--output", required=True, help="output folder (local path or URI)")
    parser.add_argument("--format", choices=["movielens", "events"], default="movielens")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=0, help="default: Spark's default parallelism")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ctx = parse_job_args(build_parser(), argv)
    args = ctx.args
    spec = SynthSpec(args.users, args.items, args.interactions, seed=args.seed, partitions=args.partitions)
    write_dataset(ctx.spark, spec, args.output, args.format)
    sys.stdout.write(json.dumps({"output": args.output, "format": args.format, **vars(spec)}) + "\n")
    return 0
