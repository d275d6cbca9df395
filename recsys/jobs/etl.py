"""``recsys etl``: raw interactions + item catalog -> clean, pseudonymized, indexed Delta tables.

Reads the inputs and the existing tables, calls the transforms of :mod:`recsys.etl`, writes the tables and one
``etl_runs`` row. Its counts are taken independently: input rows as they are read (an observed metric of the
first pass), accepted and quarantined rows from the tables as written, duplicates from the collapse; the job
checks ``input rows = accepted + quarantined + duplicates removed`` and records the result (``invariant_ok``).
No data is collected to the driver.

The input is read once: the collapsed frame (:func:`recsys.etl.pipeline.collapse_interactions`, one row per
event, partitioned by user) is cached on the executors' local disks, and input rows are the sum of its
``copies`` (no row-level filter or row-multiplying join precedes it). Each later pass over it reads it whole,
so there are as few as the rules allow: the per-user summary, the interactions write, and only when they can
reject something the bot rule, the k-core rule and the quarantine of failing rows. Only when a bot or k-core
rule rejects events is the input read a second time, for their raw records. An incremental run marks the
events earlier runs loaded (:mod:`recsys.etl.history`) in one more pass, before the rules count events.

Runs must not overlap: the versions of the tables the job rewrites are pinned when it starts, it reads those,
and a write is refused (``ConcurrentWriteError``) if another job committed to its table since. A full run that
would replace a non-empty ``interactions`` with nothing (every row rejected) is refused before any write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from recsys import schemas as S
from recsys.data import SAMPLE_DIR
from recsys.etl import catalog as C
from recsys.etl import event_sources, sources
from recsys.etl import history as H
from recsys.etl import pipeline as P
from recsys.etl import reasons as R
from recsys.etl.activity import LATE_REASONS, bot_candidates, bot_users
from recsys.etl.dedup import EVENT_KEY, recover_raw
from recsys.etl.errors import InputError
from recsys.etl.indexing import extend_index
from recsys.etl.items import top_tags
from recsys.etl.pseudonymize import load_key
from recsys.etl.run_spec import RunSpec, file_sizes, make_run_id
from recsys.etl.settings import EtlConfig
from recsys.jobs.common import parse_job_args
from recsys.lakehouse import ABSENT, TableStore
from recsys.spark_session import session_conf

log = logging.getLogger("recsys.etl")
Schema = S.Tables


def _normalize_path(path: str) -> str:
    return path.rstrip("/") if "://" in path else os.path.abspath(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys etl", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--source", choices=["movielens", "events"], default=None,
                        help="input kind (default: etl.source)")
    parser.add_argument("--input", default=None,
                        help="input folder (default: the bundled MovieLens ml-latest-small)")
    parser.add_argument("--run-date", default=None, help="YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--mode", choices=["full", "incremental"], default=None, help="default: etl.mode")
    return parser


# Every table the job rewrites: their versions are pinned when the run starts, the run reads those versions,
# and each write is refused if another job committed to its table since (overlapping runs would otherwise
# overwrite each other's rows, or append events judged against a history that changed).
OUTPUT_TABLES = (Schema.INTERACTIONS, Schema.ITEMS, Schema.USERS, Schema.USER_INDEX, Schema.ITEM_INDEX,
                 Schema.QUARANTINE, Schema.ETL_RUNS)


def _read_pinned(store: TableStore, name: str, pinned: dict[str, int]) -> DataFrame | None:
    return None if pinned[name] == ABSENT else store.read(name, pinned[name])


def _input_bytes(frame: DataFrame) -> int:
    """Total size of the files ``frame`` reads (file listing only, no Spark job)."""
    return sum(size for _, size in file_sizes(frame.inputFiles()))


def _materialize(frame: DataFrame) -> DataFrame:
    """``frame`` cached and built now (one count over it): plans that read it afterwards know its
    partitioning (a cache still being built reports none, and every reader would shuffle it again)."""
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    frame.count()
    return frame


def _materialize_on_disk(frame: DataFrame, settings: dict[str, str] | None = None) -> DataFrame:
    """:func:`_materialize` for a frame as big as the input: on the executors' local disks, uncompressed.

    In memory it would crowd the heap the later stages need (measured on ``bench_etl``: the interactions
    write ran 40% slower with it cached in a 1 GiB heap), and each later pass reads its blocks whole anyway.
    Spark's column compression of the cache cost 5-8 s of that pass there and saved 3% of its disk (396 vs
    409 MB for 10M events: ids and hashes barely compress); uncompressed, the cache costs about 1.5 s more
    than no cache at all. ``settings``: more runtime SQL settings for planning it.
    """
    with session_conf(frame.sparkSession, {"spark.sql.inMemoryColumnarStorage.compressed": "false",
                                           **(settings or {})}):
        frame = frame.persist(StorageLevel.DISK_ONLY)
        frame.count()
    return frame


def _count(store: TableStore, name: str, version: int) -> int:
    """Rows of a table version: from its log statistics when complete, else counted by Spark."""
    known = store.snapshot(name, version).num_records
    return int(known) if known is not None else store.read(name, version).count()


def run_etl(store: TableStore, cfg: EtlConfig, spec: RunSpec) -> dict[str, Any]:
    """The whole ETL for one run; returns the ``etl_runs`` row as a dict."""
    spark = store.spark
    started = dt.datetime.now(dt.timezone.utc)  # aware: Spark converts it exactly, whatever the local zone
    t0 = time.monotonic()
    key = load_key(cfg)
    if spec.source == "movielens":
        layout = sources.detect_layout(spec.input_path)
        raw = sources.read_movielens_interactions(spark, spec.input_path, layout)
        catalog = sources.read_movielens_catalog(spark, spec.input_path, layout)
        users_raw = sources.read_movielens_users(spark, spec.input_path, layout)
        log.info("MovieLens layout %s at %s", layout.name, spec.input_path)
    else:
        raw = event_sources.read_events(spark, spec.input_path, cfg.events)
        catalog = event_sources.read_events_catalog(spark, spec.input_path, cfg.events)
        users_raw = event_sources.read_events_users(spark, spec.input_path, cfg.events)
    if not spec.run_id:
        frames = [raw.frame, users_raw, *((catalog.items, catalog.tags) if catalog is not None else ())]
        read_files = sorted({uri for frame in frames if frame is not None for uri in frame.inputFiles()})
        spec = replace(spec, run_id=make_run_id(spec.source, spec.mode, spec.run_date, spec.input_path,
                                                file_sizes(read_files)))
    pinned = {name: store.current_version(name) for name in OUTPUT_TABLES}
    incremental = spec.mode == "incremental" and pinned[Schema.INTERACTIONS] != ABSENT
    if incremental:  # before any work: the table's partitions (its log) must be of this grain
        H.require_grain(store.snapshot(Schema.INTERACTIONS, pinned[Schema.INTERACTIONS]).partition_values,
                        cfg.time_grain)
    id_pattern = raw.id_pattern
    existing_items = _read_pinned(store, Schema.ITEMS, pinned)

    good_catalog: DataFrame | None = None
    batch_tags: DataFrame | None = None
    rejected_dims: list[DataFrame] = []  # quarantine rows of the catalog and tag files
    cached: list[DataFrame] = []
    if catalog is not None and catalog.items is not None:
        checked = C.checked_items(catalog.items, id_pattern, cfg).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(checked)
        good_catalog = checked.where(F.col("reason").isNull())
        rejected_dims.append(P.quarantine_rows(checked.where(F.col("reason").isNotNull()), R.ENTITY_ITEMS,
                                               F.col("raw_record"), spec.run_id, spec.run_date))
    if catalog is not None and catalog.tags is not None:  # read once: top tags and the tags' quarantine rows
        known = C.known_items(good_catalog, _read_pinned(store, Schema.ITEM_INDEX, pinned), spec.run_id)
        tags = C.checked_tags(catalog.tags, known, id_pattern, cfg).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(tags)
        batch_tags = top_tags(tags, cfg.top_tags)
        rejected_dims.append(C.tag_quarantine(tags, key, id_pattern, spec.run_id, spec.run_date))
    catalog_ids = good_catalog.select("item_raw") if good_catalog is not None else None
    # The missing-item rule needs a catalog: this run's, or one earlier runs loaded (the items they catalogued).
    # A lakehouse that never had one indexes new items from the events, incremental runs included.
    if existing_items is not None and spec.mode == "incremental" and (
            catalog_ids is not None or existing_items.where(C.catalogued()).limit(1).count()):
        old_ids = existing_items.select(F.col(S.Col.ITEM_ID).alias("item_raw"))
        catalog_ids = old_ids if catalog_ids is None else catalog_ids.unionByName(old_ids)

    tasks = P.task_count(_input_bytes(raw.frame), cfg.input_mb_per_task,
                         int(spark.conf.get("spark.sql.shuffle.partitions") or 1))
    validated = P.validated_interactions(raw, catalog_ids, cfg, spec.run_date)
    types = P.event_types(raw, cfg)
    # Input rows are counted as they are read (an observed metric of the same job, no extra pass), independently
    # of the collapse's copies, so the reconciliation below can fail.
    read = Observation("etl_input_rows")
    counted = replace(raw, frame=raw.frame.observe(read, F.count(F.lit(1)).alias("rows")))
    events = _materialize_on_disk(P.collapse_interactions(
        P.validated_interactions(counted, catalog_ids, cfg, spec.run_date), types, tasks))
    read_rows = int(read.get["rows"])
    # users x reasons: counts, pseudonyms, user stats. Each pass over the on-disk events cache costs as much
    # as reading it all, so the rules below only add passes when they can reject something.
    summary = _materialize(P.user_summary(events))
    cached += [events, summary]
    # Pseudonyms of the batch's users (one HMAC each), before the rules below: an incremental run meets the
    # table's rows through them.
    passing_users = P.accepted(summary).count()
    batch_users = P.user_pseudonyms(summary, key, passing_users).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(batch_users)
    small_users = passing_users <= cfg.broadcast_user_map_max_users
    k_core = cfg.kcore.min_user_interactions > 1 or cfg.kcore.min_item_interactions > 1
    table = _read_pinned(store, Schema.INTERACTIONS, pinned) if incremental else None
    recent: DataFrame | None = None  # the table's rows on the batch's days (incremental runs)
    prior_days: DataFrame | None = None
    prior_counts: tuple[DataFrame, DataFrame] | None = None
    days = H.batch_days(summary, cfg.time_grain).first() if table is not None else None
    if table is not None and days is not None and days["first"] is not None:
        # Events the table holds are marked before the rules count events (another run's: duplicates; this
        # run's previous attempt's: kept), and the rules count the table's events too (recsys.etl.history).
        recent = H.on_days(table, days)
        unmarked = events
        events = _materialize_on_disk(H.mark_loaded(events, recent, batch_users, spec.run_id, tasks, small_users),
                                      {"spark.sql.requireAllClusterKeysForCoPartition": "false"})
        unmarked.unpersist()
        summary = _materialize(P.user_summary(events))
        prior_days = H.prior_days(recent, batch_users, small_users).persist(StorageLevel.MEMORY_AND_DISK)
        cached += [events, summary, prior_days]
        prior_counts = H.prior_counts(table, batch_users, small_users) if k_core else None
    candidates = bot_candidates(summary, cfg.bot_max_events_per_day, prior_days)
    bots = _materialize(bot_users(events, cfg.bot_max_events_per_day, candidates, prior_days)) if (
        candidates.limit(1).count()) else None
    classified = P.classify(events, bots, cfg, prior_counts)
    if recent is not None:  # the history was marked: kept events are accepted again
        classified = H.accept_kept(classified)
    if k_core:
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)  # iterated windows: computed once
        cached.append(classified)
    if classified is not events:  # a rule may have rejected events: count again
        summary = _materialize(P.user_summary(classified))
        cached += [c for c in (bots, summary) if c is not None]
    stats = {row["reason"]: row for row in P.reason_counts(summary).collect()}  # one row per reason
    copies = {reason: int(row["copies"]) for reason, row in stats.items()}
    distinct = {reason: int(row["events"]) for reason, row in stats.items()}
    input_rows = sum(copies.values())  # every input row is in exactly one collapsed row's copies
    if read_rows != input_rows:
        # The observed count is an accumulator: a task retried in the first pass (lost executor, fetch failure)
        # counts its rows twice. Count the input once more (a full pass, only in this case) before calling it a
        # loss.
        log.warning("rows read (%d, observed) != rows collapsed (%d): counting the input again", read_rows,
                    input_rows)
        read_rows = raw.frame.count()
    # Rows failing a row rule are quarantined copy by copy; events (accepted or rejected later) once, the
    # other copies are duplicates, and so are all copies of events an earlier run loaded.
    by_reason = {r: (distinct[r] if r is None or r in LATE_REASONS else n) for r, n in copies.items()
                 if r != H.LOADED_BEFORE}

    interactions_v = pinned[Schema.INTERACTIONS]
    if (spec.mode == "full" and not by_reason.get(None) and interactions_v != ABSENT
            and _count(store, Schema.INTERACTIONS, interactions_v)):
        rejected_by = {r: n for r, n in sorted(by_reason.items(), key=lambda kv: str(kv[0])) if r is not None}
        raise InputError(
            f"full run {spec.run_id} accepted none of its {input_rows} input rows (rejected: {rejected_by}), and "
            "would replace the non-empty tables under the lakehouse with empty ones: nothing was written. Check "
            "the input and the etl settings (a dry run into another --lakehouse writes the quarantine rows), or "
            "remove the tables to start over.")

    # Dimensions: pseudonyms and indexes.
    accepted_users = int(stats[None]["users"]) if None in stats else 0
    pseudonyms = batch_users if accepted_users == passing_users else batch_users.join(  # users a rule rejected
        P.accepted(summary).select("user_raw"), "user_raw", "left_semi")                 # get no index
    user_index = extend_index(pseudonyms, _read_pinned(store, Schema.USER_INDEX, pinned), S.Col.USER_ID,
                              S.Col.USER_IDX, spec.run_id, cfg.index_buckets)
    written_at = {Schema.USER_INDEX: store.write(P.conform(user_index, S.USER_INDEX), Schema.USER_INDEX,
                                                 mode="overwrite", read_version=pinned[Schema.USER_INDEX])}
    item_ids = good_catalog.select(F.col("item_raw").alias(S.Col.ITEM_ID)) if good_catalog is not None else None
    if item_ids is None or cfg.missing_item_policy != "quarantine":
        # Accepted items may be missing from this catalog: index them too (a pass over the events). Otherwise
        # they are all in it, or (incremental) in the index already.
        accepted_items = P.accepted(classified).select(F.col("item_raw").alias(S.Col.ITEM_ID))
        item_ids = accepted_items if item_ids is None else item_ids.unionByName(accepted_items)
    item_index = extend_index(item_ids, _read_pinned(store, Schema.ITEM_INDEX, pinned), S.Col.ITEM_ID,
                              S.Col.ITEM_IDX, spec.run_id, cfg.index_buckets)
    written_at[Schema.ITEM_INDEX] = store.write(P.conform(item_index, S.ITEM_INDEX), Schema.ITEM_INDEX,
                                                mode="overwrite", read_version=pinned[Schema.ITEM_INDEX])
    item_index = store.read(Schema.ITEM_INDEX, written_at[Schema.ITEM_INDEX])
    items = C.build_items(good_catalog, batch_tags, item_index, existing_items, cfg.text_template)
    store.write(items, Schema.ITEMS, mode="overwrite", read_version=pinned[Schema.ITEMS])

    # Facts: one period's rows go to few tasks (few files per period).
    users_map = P.user_map(pseudonyms, store.read(Schema.USER_INDEX, written_at[Schema.USER_INDEX])).persist(
        StorageLevel.MEMORY_AND_DISK)
    rows = P.fact_rows(classified)
    grain = cfg.time_grain
    ok = stats.get(None)
    periods = P.period_count(ok["first_ts"], ok["last_ts"], grain) if ok is not None else 1
    salt = P.salt_buckets(by_reason.get(None, 0), periods, cfg.target_file_rows)
    parts = list(S.PARTITION_COLUMNS[Schema.INTERACTIONS])
    plain = S.NO_DICTIONARY_COLUMNS[Schema.INTERACTIONS]
    if table is not None:
        keys = [S.Col.USER_ID, S.Col.ITEM_ID, S.Col.TS]
        # a previous attempt's rows (the kept events), all on the batch's days: no scan of the whole table
        mine = (recent if recent is not None else table).where(F.col(S.Col.RUN_ID) == spec.run_id).select(*keys)
        interactions = P.interaction_rows(P.with_users(rows, users_map, broadcast=False), item_index, types,
                                          spec.run_id, spec.source, grain)
        fresh = interactions.join(mine, keys, "left_anti")
        written_at[Schema.INTERACTIONS] = store.write(
            P.write_layout(fresh, tasks, salt, grain), Schema.INTERACTIONS, mode="append", partition_by=parts,
            no_dictionary=plain, read_version=pinned[Schema.INTERACTIONS])
    else:
        if small_users:  # the user map has one row per accepted user
            laid_out = P.with_users(P.write_layout(rows, tasks, salt, grain, user="user_raw"), users_map,
                                    broadcast=True)
        else:
            laid_out = P.write_layout(P.with_users(rows, users_map, broadcast=False), tasks, salt, grain)
        written_at[Schema.INTERACTIONS] = store.write(
            P.interaction_rows(laid_out, item_index, types, spec.run_id, spec.source, grain), Schema.INTERACTIONS,
            mode="overwrite", partition_by=parts, no_dictionary=plain, read_version=pinned[Schema.INTERACTIONS])
    interactions_now = store.read(Schema.INTERACTIONS, written_at[Schema.INTERACTIONS])

    # Quarantine (this run's rows replace themselves; other runs of the same date are kept).
    late = classified.where(F.col("reason").isin(*LATE_REASONS)).select(*EVENT_KEY, "tie", "reason")
    recovered = (recover_raw(P.accepted(validated), late)
                 if any(by_reason.get(r, 0) for r in LATE_REASONS) else None)  # a second read, only if needed
    row_rejects = any(n for r, n in by_reason.items() if r is not None and r not in LATE_REASONS)
    rejected = P.interaction_quarantine(classified, row_rejects, recovered, raw, key, spec.run_id, spec.run_date)
    # Users: from all interactions (a full run replaced the table with this run's accepted rows, so their
    # per-user aggregate from the summary, no shuffle of the rows, is the same).
    user_stats = (P.interaction_stats(interactions_now) if incremental
                  else P.user_stats(summary, users_map)).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(user_stats)
    attributes: DataFrame | None = None
    if users_raw is not None:
        user_rows, user_rejects = P.user_table_rows(users_raw, key, cfg, spec.run_id, spec.run_date, id_pattern)
        user_rows = user_rows.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(user_rows)
        attributes = user_rows.select(S.Col.USER_ID, "attributes")
        rejected = rejected.unionByName(user_rejects).unionByName(
            P.users_without_events(user_rows, user_stats, spec.run_id, spec.run_date))
    for dimension_rejects in rejected_dims:
        rejected = rejected.unionByName(dimension_rejects)
    if (old_quarantine := _read_pinned(store, Schema.QUARANTINE, pinned)) is not None:
        others = old_quarantine.where(
            (F.col(S.Col.RUN_DATE) == F.lit(spec.run_date)) & (F.col(S.Col.RUN_ID) != spec.run_id))
        rejected = others.unionByName(rejected)
    written_at[Schema.QUARANTINE] = store.write(
        rejected, Schema.QUARANTINE, mode="replace_partitions", partition_by=[S.Col.RUN_DATE],
        replace_partitions={S.Col.RUN_DATE: spec.run_date}, read_version=pinned[Schema.QUARANTINE])

    # Attributes from this batch's user table, else kept from before.
    old_users = _read_pinned(store, Schema.USERS, pinned)
    if old_users is not None:
        kept = old_users.where(F.col("attributes").isNotNull()).select(S.Col.USER_ID, "attributes")
        attributes = kept if attributes is None else attributes.unionByName(
            kept.join(attributes.select(S.Col.USER_ID), S.Col.USER_ID, "left_anti"))
    store.write(P.build_users(user_stats, attributes), Schema.USERS, mode="overwrite",
                read_version=pinned[Schema.USERS])

    # Reconciliation: input rows as read, accepted and quarantined rows as the tables hold them (Delta log
    # statistics where the table holds only this run's rows), duplicates from the collapse.
    written = (_count(store, Schema.INTERACTIONS, written_at[Schema.INTERACTIONS]) if not incremental
               else interactions_now.where(F.col(S.Col.RUN_ID) == spec.run_id).count())
    q_written = store.read(Schema.QUARANTINE, written_at[Schema.QUARANTINE]).where(
        (F.col(S.Col.RUN_ID) == spec.run_id) & (F.col("entity") == R.ENTITY_INTERACTIONS)).count()
    accepted_events = by_reason.get(None, 0)
    q_counts = {k: v for k, v in by_reason.items() if k is not None}
    # copies beyond the first of each event (accepted, or rejected by a later rule), and (incremental) every
    # copy of an event an earlier run had loaded already
    duplicates = input_rows - sum(by_reason.values())
    checks = {
        "rows read = rows collapsed": read_rows == input_rows,
        "quarantine rows written = rows classified as rejected": q_written == sum(q_counts.values()),
        "interaction rows written = accepted events": written == accepted_events,
        "input = accepted + quarantined + duplicates": read_rows == written + q_written + duplicates,
    }
    invariant_ok = all(checks.values())
    row = {
        S.Col.RUN_ID: spec.run_id, S.Col.RUN_DATE: spec.run_date, "mode": spec.mode, S.Col.SOURCE: spec.source,
        "input_paths": [spec.input_path], "input_rows": read_rows, "accepted": written,
        "quarantined": q_written, "duplicates_removed": duplicates,
        "quarantine_by_reason": dict(sorted(q_counts.items())),
        "users": _count(store, Schema.USER_INDEX, written_at[Schema.USER_INDEX]),
        "items": _count(store, Schema.ITEM_INDEX, written_at[Schema.ITEM_INDEX]),
        "invariant_ok": invariant_ok, "started_at": started, "duration_s": 0.0,
    }
    for frame in (*cached, users_map):
        frame.unpersist()
    row["duration_s"] = round(time.monotonic() - t0, 3)
    new_row = spark.createDataFrame([tuple(row[f.name] for f in S.ETL_RUNS.fields)], S.ETL_RUNS)
    runs = new_row
    if (old_runs := _read_pinned(store, Schema.ETL_RUNS, pinned)) is not None:
        runs = old_runs.where(F.col(S.Col.RUN_ID) != spec.run_id).unionByName(new_row)
    store.write(runs.coalesce(1), Schema.ETL_RUNS, mode="overwrite", read_version=pinned[Schema.ETL_RUNS])
    if not invariant_ok:
        log.error("reconciliation failed (%s): input %d, accepted %d, quarantined %d, duplicates %d",
                  "; ".join(name for name, ok in checks.items() if not ok), read_rows, written, q_written,
                  duplicates)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    ctx = parse_job_args(build_parser(), argv)
    cfg = ctx.config.etl
    args = ctx.args
    source = args.source or cfg.source
    if args.input is None and source != "movielens":
        sys.stderr.write("recsys etl: --input is required for --source events\n")
        return 2
    input_path = _normalize_path(args.input or str(SAMPLE_DIR))
    run_date = dt.date.fromisoformat(args.run_date) if args.run_date else dt.datetime.now(dt.timezone.utc).date()
    mode = args.mode or cfg.mode
    spec = RunSpec(source, input_path, run_date, mode)
    row = run_etl(ctx.store, cfg, spec)
    summary = {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in row.items()}
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    return 0 if row["invariant_ok"] else 1
