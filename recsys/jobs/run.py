"""``recsys run``: the whole pipeline in one process: etl -> prepare -> train -> embed -> score -> evaluate.

A serving run (``--set prepare.split.strategy=none``: nothing held out, recommendations from every user's full
history) skips evaluate.

Every stage is its job's ``main`` called with the shared options (``--env``, ``--set``, ``--lakehouse``,
``--conf-dir``), so all stages share one SparkSession. The run stops at the first failing stage. At the end it
prints the metric table (our model and every baseline), the time per stage and example recommendations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Sequence

from pyspark.sql import functions as F

from recsys.jobs.common import JobContext, parse_job_args
from recsys.reporting.examples import example_recommendations, format_examples
from recsys.reporting.report import compact_table, text_table
from recsys.schemas import Col, Tables

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("etl", "prepare", "train", "embed", "score", "evaluate")


def _default_input() -> str:
    try:
        from recsys.data import SAMPLE_DIR
    except ImportError:
        return "recsys/data/ml-latest-small"
    return str(SAMPLE_DIR)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys run", description=__doc__)
    parser.add_argument("--source", choices=["movielens", "events"], default=None,
                        help="ETL input kind (default: etl.source)")
    parser.add_argument("--input", default=None,
                        help="ETL input folder (default, for movielens only: the bundled MovieLens sample)")
    parser.add_argument("--run-date", type=dt.date.fromisoformat, default=None,
                        help="run date of the ETL and the recommendations partition (default: today, UTC)")
    parser.add_argument("--run-id", default=None, help="evaluation run id (default: run-<UTC time>)")
    parser.add_argument("--from-stage", choices=STAGES, default=STAGES[0],
                        help="resume: skip the stages before this one (their tables must exist)")
    parser.add_argument("--examples", type=int, default=3, help="users shown with example recommendations")
    return parser


def common_args(ctx: JobContext) -> list[str]:
    """The shared options, forwarded to every stage."""
    args = ctx.args
    out = ["--env", args.env, "--log-level", args.log_level]
    for override in args.overrides:
        out += ["--set", override]
    if args.lakehouse:
        out += ["--lakehouse", args.lakehouse]
    if args.conf_dir:
        out += ["--conf-dir", args.conf_dir]
    return out


def etl_source(ctx: JobContext) -> str:
    return str(ctx.args.source or ctx.config.etl.source)


def stage_args(stage: str, ctx: JobContext, run_date: dt.date, run_id: str) -> list[str]:
    args = common_args(ctx)
    if stage == "etl":
        args += ["--source", etl_source(ctx), "--input", ctx.args.input or _default_input(),
                 "--run-date", run_date.isoformat()]
    elif stage == "score":
        args += ["--run-date", run_date.isoformat()]
    elif stage == "evaluate":
        args += ["--run-id", run_id]
    return args


def run_stage(stage: str, argv: list[str]) -> tuple[int, str]:
    """Run one stage's ``main``; (exit code, error message)."""
    try:
        module = importlib.import_module(f"recsys.jobs.{stage}")
    except ModuleNotFoundError as exc:
        if exc.name == f"recsys.jobs.{stage}":
            return 2, f"stage {stage!r} is not available in this build (no recsys.jobs.{stage})"
        raise
    try:
        code = int(module.main(argv) or 0)
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 2
        return code, f"stage {stage!r} exited with {code}"
    except Exception as exc:
        log.debug("stage %s failed", stage, exc_info=True)
        return 1, f"stage {stage!r} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    return code, "" if code == 0 else f"stage {stage!r} returned exit code {code}"


def print_summary(ctx: JobContext, run_id: str, run_date: dt.date, timings: dict[str, float],
                  examples: int) -> None:
    store = ctx.store
    out = sys.stdout
    if store.exists(Tables.METRICS):
        rows = store.read(Tables.METRICS).where(F.col(Col.RUN_ID) == run_id).toPandas()
        k = ctx.config.evaluate.primary_k
        out.write(f"\n== Metrics @{k} (test split, run {run_id}; every K: report below) ==\n"
                  f"{text_table(compact_table(rows, k))}\n")
        if ctx.config.evaluate.report:
            out.write(f"report: {store.root}/reports/{run_id}/report.html\n")
    out.write("\n== Time per stage ==\n")
    for stage, seconds in timings.items():
        out.write(f"  {stage:<10} {seconds:8.1f}s\n")
    out.write(f"  {'total':<10} {sum(timings.values()):8.1f}s\n")
    if examples > 0 and store.exists(Tables.RECOMMENDATIONS):
        shown = example_recommendations(store, run_date, examples)
        out.write(f"\n== Example recommendations ({run_date}) ==\n{format_examples(shown)}\n")
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    ctx = parse_job_args(build_parser(), argv)
    run_date: dt.date = ctx.args.run_date or dt.datetime.now(dt.timezone.utc).date()
    run_id = ctx.args.run_id or "run-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    timings: dict[str, float] = {}
    if ctx.args.from_stage == "etl" and ctx.args.input is None and etl_source(ctx) != "movielens":
        sys.stderr.write(f"recsys run: --input is required for source {etl_source(ctx)!r} (the bundled sample "
                         "is MovieLens)\n")
        return 2
    for stage in STAGES[STAGES.index(ctx.args.from_stage):]:
        if stage == "evaluate" and ctx.config.prepare.split.strategy == "none":
            sys.stderr.write("recsys run: stage evaluate skipped: prepare.split.strategy is none (serving run, "
                             "nothing held out)\n")
            continue
        started = time.perf_counter()
        sys.stderr.write(f"recsys run: stage {stage} ...\n")
        code, message = run_stage(stage, stage_args(stage, ctx, run_date, run_id))
        timings[stage] = time.perf_counter() - started
        sys.stderr.write(f"recsys run: stage {stage} {'done' if code == 0 else 'FAILED'} in "
                         f"{timings[stage]:.1f}s\n")
        if code != 0:
            sys.stderr.write(f"recsys run: stopped: {message}\n")
            for name, seconds in timings.items():
                sys.stderr.write(f"  {name:<10} {seconds:8.1f}s\n")
            return code
    print_summary(ctx, run_id, run_date, timings, ctx.args.examples)
    return 0
