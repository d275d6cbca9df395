"""``recsys score``: exact top-K recommendations with explanations for every user -> ``recommendations``.

Reads ``item_embeddings``, ``user_embeddings`` (one model version), ``user_histories`` (seen items and
history for exclusion and explanations) and optionally the ``score.exclude_items_table``; replaces the
``run_date`` partition of ``recommendations``, so re-running a date is idempotent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.jobs.common import parse_job_args
from recsys.lakehouse import TableNotFoundError, TableStore
from recsys.schemas import Col, Tables
from recsys.scoring.blocks import KernelSpec
from recsys.scoring.recommend import plan_scoring, recommendations_table, scoring_users, top_k

log = logging.getLogger(__name__)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def add_run_date(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=dt.date.fromisoformat, default=None,
                        help="partition of the recommendations to (re)write, YYYY-MM-DD (default: today, UTC)")


def resolve_model_version(store: TableStore, requested: str | None) -> str:
    """``requested``, else the newest model (by ``models.created_at``) that has item embeddings."""
    store.require(Tables.ITEM_EMBEDDINGS)
    available = {
        r[0] for r in store.read(Tables.ITEM_EMBEDDINGS).select(Col.MODEL_VERSION).distinct().collect()
    }
    if requested is not None:
        if requested not in available:
            raise TableNotFoundError(
                f"model version {requested!r} has no item embeddings (available: {sorted(available)}); "
                "run `recsys embed` for it first"
            )
        return requested
    if not available:
        raise TableNotFoundError("item_embeddings is empty: run `recsys embed` first")
    return newest_model(store, available)


def newest_model(store: TableStore, versions: set[str]) -> str:
    """The newest of ``versions`` by ``models.created_at`` (the greatest version when ``models`` cannot tell)."""
    if len(versions) > 1 and store.exists(Tables.MODELS):
        models = store.read(Tables.MODELS).where(F.col(Col.MODEL_VERSION).isin(sorted(versions)))
        newest = models.orderBy(F.col("created_at").desc_nulls_last(), F.col(Col.MODEL_VERSION).desc()).first()
        if newest is not None:
            return str(newest[Col.MODEL_VERSION])
    return max(versions)


def catalog_sizes(store: TableStore, requested: str | None) -> tuple[str, int, int, int]:
    """``(model version, items, max item_idx, dim)`` from one aggregate over ``item_embeddings``.

    The version is ``requested``, else the newest model (by ``models.created_at``) that has item embeddings
    (:func:`resolve_model_version` with the catalog sizes of the same single scan).
    """
    store.require(Tables.ITEM_EMBEDDINGS)
    rows = store.read(Tables.ITEM_EMBEDDINGS).where(F.col(Col.EMBEDDING).isNotNull()).groupBy(
        Col.MODEL_VERSION).agg(F.count(F.lit(1)), F.max(Col.ITEM_IDX), F.max(F.size(Col.EMBEDDING))).collect()
    sizes = {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows}
    if requested is not None and requested not in sizes:
        raise TableNotFoundError(
            f"model version {requested!r} has no item embeddings (available: {sorted(sizes)}); "
            "run `recsys embed` for it first"
        )
    if not sizes:
        raise TableNotFoundError("item_embeddings is empty: run `recsys embed` first")
    version = requested or newest_model(store, set(sizes))
    return (version, *sizes[version])


def user_count_bound(store: TableStore, users: DataFrame) -> int:
    """Rows of ``user_embeddings`` from the Delta log statistics (all versions: an upper bound of the users
    to score, which only sizes the partitions); counted when the log has no statistics."""
    total = store.snapshot(Tables.USER_EMBEDDINGS).num_records
    return int(total) if total is not None else users.count()


def model_frames(store: TableStore, version: str) -> tuple[DataFrame, DataFrame]:
    """(item_embeddings, user_embeddings) of one model version."""
    store.require(Tables.USER_EMBEDDINGS)
    pick = F.col(Col.MODEL_VERSION) == F.lit(version)
    return store.read(Tables.ITEM_EMBEDDINGS).where(pick), store.read(Tables.USER_EMBEDDINGS).where(pick)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys score", description=__doc__)
    add_run_date(parser)
    ctx = parse_job_args(parser, argv)
    cfg = ctx.config.score
    store = ctx.store
    run_date: dt.date = ctx.args.run_date or today_utc()
    started = time.perf_counter()
    version, num_items, max_idx, dim = catalog_sizes(store, cfg.model_version)
    items, users = model_frames(store, version)
    if not users.limit(1).count():  # e.g. `recsys embed` failed between its item and user writes
        raise TableNotFoundError(
            f"model version {version!r} has item embeddings but no user embeddings, so there is nobody to score "
            "(the run-date partition is left as it is): re-run `recsys embed` for it")
    histories = store.read(Tables.USER_HISTORIES) if store.exists(Tables.USER_HISTORIES) else None
    exclude = None
    if cfg.exclude_items_table:
        store.require(cfg.exclude_items_table)
        exclude = store.read(cfg.exclude_items_table)
    num_users = user_count_bound(store, users)
    plan = plan_scoring(num_users, num_items, max_idx, dim, cfg, ctx.spark.sparkContext.defaultParallelism)
    log.info("scoring up to %d users x %d items (dim %d, model %s): %s", num_users, num_items, dim, version, plan)
    spec = KernelSpec(k=cfg.top_k, user_batch_size=cfg.user_batch_size, chunk_size=cfg.item_chunk_size,
                      explanation=cfg.explanation, blas_threads=cfg.blas_threads,
                      block_bytes=cfg.kernel_block_bytes)
    top = top_k(scoring_users(users, histories), items, plan, spec, cfg.exclude_seen, exclude)
    recs = recommendations_table(top, items, version, run_date, broadcast_ids=plan.broadcast)
    table_version = store.write(recs, Tables.RECOMMENDATIONS, mode="replace_partitions",
                                partition_by=[Col.RUN_DATE], replace_partitions={Col.RUN_DATE: run_date})
    log.info("recommendations v%d: run_date %s, model %s, %.1fs", table_version, run_date, version,
             time.perf_counter() - started)
    return 0
