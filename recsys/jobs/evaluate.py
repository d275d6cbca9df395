"""``recsys evaluate``: full-ranking metrics of the model and the baselines on the test split.

Writes the rows of this run to the ``metrics`` table (replacing earlier rows of the same ``--run-id``) and a
report (``report.html`` with charts, ``summary.md``) under ``<lakehouse>/reports/<run_id>/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.config import ConfigError
from recsys.evaluation.runner import EvalInputs, run_evaluation
from recsys.jobs.common import parse_job_args
from recsys.jobs.score import model_frames, resolve_model_version
from recsys.lakehouse import ABSENT, TableError, TableStore
from recsys.reporting.report import ReportData, compact_table, load_training_curves, text_table, write_report
from recsys.schemas import METRICS, Col, Tables

log = logging.getLogger(__name__)


def default_run_id() -> str:
    return "eval-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


def _optional(store: TableStore, name: str) -> DataFrame | None:
    return store.read(name) if store.exists(name) else None


def _artifact_path(store: TableStore, version: str | None) -> str | None:
    if version is None or not store.exists(Tables.MODELS):
        return None
    row = store.read(Tables.MODELS).where(F.col(Col.MODEL_VERSION) == version).select("artifact_path").first()
    return None if row is None else row[0]


def write_metrics(store: TableStore, rows: pd.DataFrame, run_id: str) -> int:
    """Replace this run's rows of the ``metrics`` table.

    This run's rows are a small aggregate built on the driver; the other runs' rows stay in Spark (the
    overwrite reads them from the previous version's files, which the commit does not delete).
    """
    now = dt.datetime.now(dt.timezone.utc)
    records = [
        (run_id, str(r.model), str(r.metric), int(r.k), None if pd.isna(r.value) else float(r.value),
         str(r.split), int(r.users_evaluated), now)
        for r in rows.itertuples(index=False)
    ]
    frame = store.spark.createDataFrame(records, METRICS)
    read = store.current_version(Tables.METRICS)  # another evaluation's rows committed since: refused, not lost
    if read == ABSENT:
        return store.write(frame, Tables.METRICS, read_version=read)
    kept = store.read(Tables.METRICS, read).where(F.col(Col.RUN_ID) != run_id)
    return store.write(kept.unionByName(frame), Tables.METRICS, mode="overwrite", read_version=read)


def require_held_out(store: TableStore) -> None:
    """Raise :class:`ConfigError` when ``test_truth`` is empty (nothing was held out to evaluate against)."""
    rows = store.snapshot(Tables.TEST_TRUTH).num_records
    if rows is None:
        rows = store.read(Tables.TEST_TRUTH).limit(1).count()
    if rows == 0:
        raise ConfigError(
            "test_truth is empty, so there is nothing held out to evaluate: `recsys prepare` ran with "
            "prepare.split.strategy none (a serving run) or no user has a test item. Re-run prepare with "
            "leave_last_out or time_cutoff to evaluate.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys evaluate", description=__doc__)
    parser.add_argument("--run-id", default=None, help="id of this evaluation (default: eval-<UTC time>)")
    ctx = parse_job_args(parser, argv)
    cfg, store = ctx.config.evaluate, ctx.store
    run_id = ctx.args.run_id or default_run_id()
    for name in (Tables.INTERACTIONS, Tables.TEST_TRUTH):
        store.require(name)
    require_held_out(store)
    version = None
    items = users = None
    try:
        version = resolve_model_version(store, cfg.model_version or ctx.config.score.model_version)
        items, users = model_frames(store, version)
    except TableError as exc:
        log.warning("evaluating the baselines only: %s", exc)
    interactions = store.read(Tables.INTERACTIONS)
    if store.exists(Tables.ITEMS):
        catalog = store.read(Tables.ITEMS).select(Col.ITEM_IDX)
    elif items is not None:
        catalog = items.select(Col.ITEM_IDX)
    else:
        catalog = interactions.select(Col.ITEM_IDX)
    inputs = EvalInputs(
        interactions=interactions, test_truth=store.read(Tables.TEST_TRUTH), catalog=catalog.distinct(),
        validation_truth=_optional(store, Tables.VALIDATION_TRUTH),
        user_histories=_optional(store, Tables.USER_HISTORIES), item_tokens=_optional(store, Tables.ITEM_TOKENS),
        item_embeddings=items, user_embeddings=users, model_version=version,
        split_cutoffs=ctx.config.prepare.split.cutoffs(),
    )
    result = run_evaluation(ctx.spark, inputs, cfg, ctx.config.score)
    table_version = write_metrics(store, result.metrics, run_id)
    log.info("metrics v%d: %d rows for run %s", table_version, len(result.metrics), run_id)
    if cfg.report:
        data = ReportData(
            run_id=run_id, metrics=result.metrics, model_version=version, seconds=result.seconds,
            histograms=result.histograms,
            curves=load_training_curves(_artifact_path(store, version), store.storage.storage_options),
            best_als=result.best_als,
            notes=[f"K cut-offs {list(cfg.ks)}; seen items excluded for every model; baselines "
                   + ("refitted on train + validation" if cfg.refit_with_validation else "fitted on train")],
        )
        log.info("report written to %s", write_report(store.root, data, store.storage.storage_options))
    log.info("run %s: test metrics\n%s", run_id, text_table(compact_table(result.metrics, cfg.primary_k)))
    return 0
