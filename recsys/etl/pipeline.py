"""ETL transforms from raw frames to the output tables' frames (DataFrame -> DataFrame, no I/O, no actions).

The job (:mod:`recsys.jobs.etl`) reads inputs and existing tables, calls these functions, and writes.
Output frames are cast to the exact schemas of :mod:`recsys.schemas`.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys import schemas as S
from recsys.etl import reasons as R
from recsys.etl.activity import mark_bots, mark_k_core, mark_missing_items
from recsys.etl.dedup import by_user, collapse, event_type, expand_copies, narrow
from recsys.etl.pseudonymize import pseudonymize
from recsys.etl.rules import mark_duplicate_ids, normalize_id, validate
from recsys.etl.settings import EtlConfig
from recsys.etl.sources import RawInteractions

GRAIN_FORMATS = {"year": "yyyy", "month": "yyyy-MM", "day": "yyyy-MM-dd"}


def conform(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """``frame`` with exactly ``schema``'s columns, in order, cast to its types."""
    return frame.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def event_types(raw: RawInteractions, cfg: EtlConfig) -> tuple[str, ...]:
    """Every event type a passing row can have (the codes of :func:`recsys.etl.dedup.narrow`)."""
    return tuple(sorted(set(cfg.event_weights) | ({raw.event_type} if raw.event_type else set())))


def validated_interactions(raw: RawInteractions, catalog_ids: DataFrame | None, cfg: EtlConfig,
                           run_date: dt.date) -> DataFrame:
    """Every raw row with the row rules applied (``reason`` null = passes), items missing from the catalog
    included (a broadcast join, no shuffle)."""
    return mark_missing_items(validate(raw, cfg, run_date), catalog_ids, cfg.missing_item_policy)


def collapse_interactions(validated: DataFrame, types: tuple[str, ...], partitions: int | None = None) -> DataFrame:
    """The frame the job caches: one row per event (passing rows) or per raw row (failing rows), with
    ``copies``, hash-partitioned by user into ``partitions`` (see :func:`task_count`; default
    ``spark.sql.shuffle.partitions``). Every input row is in exactly one row's ``copies``."""
    return collapse(by_user(narrow(validated, types), partitions))


def classify(events: DataFrame, bots: DataFrame | None, cfg: EtlConfig,
             prior: tuple[DataFrame, DataFrame] | None = None) -> DataFrame:
    """Collapsed events with the rules that need aggregates: bots (``bots`` from
    :func:`recsys.etl.activity.bot_users`; None: nobody can be one), then the k-core filter, which counts the
    ``prior`` events per user and per item too (incremental runs: :func:`recsys.etl.history.prior_counts`).
    ``events`` itself when neither rule can reject anything."""
    frame = events if bots is None else mark_bots(events, bots)
    users, items = prior if prior is not None else (None, None)
    return mark_k_core(frame, cfg.kcore.min_user_interactions, cfg.kcore.min_item_interactions,
                       cfg.kcore.max_iterations, users, items)


def accepted(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("reason").isNull())


def user_summary(classified: DataFrame) -> DataFrame:
    """One row per (``user_raw``, ``reason``): ``events`` (collapsed rows), ``copies`` (input rows),
    ``first_ts``, ``last_ts``.

    Aggregated by user, the collapsed events' partitioning (no shuffle of the events); small (users x
    reasons), so the job caches it and takes its counts, bot candidates, pseudonyms and user statistics from
    it.
    """
    return classified.groupBy("user_raw", "reason").agg(
        F.count(F.lit(1)).alias("events"), F.sum("copies").alias("copies"), F.min(S.Col.TS).alias("first_ts"),
        F.max(S.Col.TS).alias("last_ts"))


def user_pseudonyms(summary: DataFrame, key: bytes, users: int, users_per_task: int = 1_000_000) -> DataFrame:
    """user_raw -> user_id for the ``users`` users with accepted events (one HMAC per user), from
    :func:`user_summary`, in about ``users / users_per_task`` tasks (each task of a Python UDF costs a
    fraction of a second whatever its size)."""
    tasks = max(1, -(-users // max(1, users_per_task)))
    users_frame = accepted(summary).select("user_raw").distinct().coalesce(tasks)
    return users_frame.select("user_raw", pseudonymize(F.col("user_raw"), key).alias(S.Col.USER_ID))


def event_period(ts: Column, grain: str) -> Column:
    if grain not in GRAIN_FORMATS:
        raise ValueError(f"etl.time_grain must be one of {sorted(GRAIN_FORMATS)}, not {grain!r}")
    return F.date_format(ts, GRAIN_FORMATS[grain])


def period_key(ts: Column, grain: str) -> Column:
    """A number with one value per :func:`event_period` (cheaper to compute than the formatted string)."""
    if grain == "year":
        return F.year(ts)
    if grain == "month":
        return F.year(ts) * 100 + F.month(ts)
    if grain == "day":
        return F.unix_date(F.to_date(ts))
    raise ValueError(f"etl.time_grain must be one of {sorted(GRAIN_FORMATS)}, not {grain!r}")


def reason_counts(summary: DataFrame) -> DataFrame:
    """One row per ``reason`` (null = accepted): ``users``, ``events`` (collapsed rows), ``copies`` (input
    rows) and their first/last ``ts`` (for the write layout), from :func:`user_summary`. Input rows are the sum of
    copies."""
    return summary.groupBy("reason").agg(
        F.count(F.lit(1)).alias("users"), F.sum("events").alias("events"), F.sum("copies").alias("copies"),
        F.min("first_ts").alias("first_ts"), F.max("last_ts").alias("last_ts"))


def user_map(pseudonyms: DataFrame, user_index: DataFrame) -> DataFrame:
    """user_raw -> user_id, user_idx (one row per accepted user; joined on user_raw, like the facts)."""
    return pseudonyms.join(user_index.select(S.Col.USER_ID, S.Col.USER_IDX), S.Col.USER_ID)


def fact_rows(classified: DataFrame) -> DataFrame:
    """Accepted events with the only columns the interactions write shuffles: ``user_raw, item_raw, ts,
    weight, rating, event_code``. :func:`with_users` and :func:`interaction_rows` add the rest (constants and
    columns derived from these cost nothing to add after the shuffle)."""
    return accepted(classified).select("user_raw", "item_raw", S.Col.TS, S.Col.WEIGHT, S.Col.RATING, "event_code")


def with_users(rows: DataFrame, users: DataFrame, broadcast: bool) -> DataFrame:
    """``rows`` with ``user_raw`` replaced by the user map's ``user_id, user_idx`` (see :func:`user_map`).

    Args:
        broadcast: False: a hash join built on the user map, partition by partition (``rows`` are still
            partitioned by ``user_raw``: only the user map is shuffled, the facts are neither sorted nor
            broadcast). True: the user map is broadcast, whatever the partitioning of ``rows`` (after
            :func:`write_layout`, which then shuffles no pseudonyms).
    """
    joined = rows.join(F.broadcast(users) if broadcast else users.hint("shuffle_hash"), "user_raw")
    return joined.drop("user_raw")


def interaction_rows(rows: DataFrame, item_index: DataFrame, types: tuple[str, ...], run_id: str,
                     source: str, grain: str) -> DataFrame:
    """:func:`fact_rows` that went through :func:`with_users`, in the ``interactions`` schema: the item index
    (a small dimension: broadcast), event date, period (by ``grain``) and type, source and run id."""
    items = item_index.select(F.col(S.Col.ITEM_ID).alias("item_raw"), S.Col.ITEM_IDX)
    joined = rows.join(F.broadcast(items), "item_raw")
    return conform(joined.select(
        "*", F.col("item_raw").alias(S.Col.ITEM_ID), F.to_date(S.Col.TS).alias(S.Col.EVENT_DATE),
        event_type(F.col("event_code"), types).alias(S.Col.EVENT_TYPE), F.lit(source).alias(S.Col.SOURCE),
        F.lit(run_id).alias(S.Col.RUN_ID), event_period(F.col(S.Col.TS), grain).alias(S.Col.EVENT_PERIOD)),
        S.INTERACTIONS)


def period_count(first: dt.datetime, last: dt.datetime, grain: str) -> int:
    """How many ``grain`` periods (year, month, day) ``first .. last`` touches (at least 1)."""
    if grain == "year":
        return max(1, last.year - first.year + 1)
    if grain == "month":
        return max(1, (last.year - first.year) * 12 + last.month - first.month + 1)
    return max(1, (last.date() - first.date()).days + 1)


def task_count(input_bytes: int, mb_per_task: int, minimum: int) -> int:
    """Partitions for the per-user pass and the write: about ``mb_per_task`` MiB of input each (so one task's
    hash aggregation fits in its share of memory), at least ``minimum`` (``spark.sql.shuffle.partitions``)."""
    per_task = max(1, mb_per_task) * 1024 * 1024
    return max(1, minimum, -(-input_bytes // per_task))


def salt_buckets(rows: int, periods: int, target_file_rows: int, limit: int = 1024) -> int:
    """Files per period so that each holds about ``target_file_rows`` rows (1 for small periods)."""
    per_period = rows / max(1, periods)
    return int(min(limit, max(1, -(-per_period // max(1, target_file_rows)))))


def write_layout(interactions: DataFrame, partitions: int, salt: int, grain: str,
                 user: str = S.Col.USER_IDX) -> DataFrame:
    """Rows of one ``event_period`` (of ``ts`` by ``grain``) together in few tasks before the partitioned
    write, so a period gets at most ``salt`` files instead of one per upstream task; big periods are spread by
    a hash of the ``user`` column. The period is hashed, not added as a column (it is added after the
    shuffle)."""
    salt_col = F.pmod(F.xxhash64(user), F.lit(max(1, salt)))
    return interactions.repartition(max(1, partitions), period_key(F.col(S.Col.TS), grain), salt_col)


def quarantine_rows(frame: DataFrame, entity: str, raw_record: Column, run_id: str, run_date: dt.date,
                    detail: Column | None = None) -> DataFrame:
    out = frame.select(
        F.lit(run_id).alias(S.Col.RUN_ID), F.lit(entity).alias("entity"), "source_file", "reason",
        (detail if detail is not None else F.lit(None).cast("string")).alias("detail"),
        raw_record.alias("raw_record"), F.lit(run_date).alias(S.Col.RUN_DATE))
    return conform(out, S.QUARANTINE)


def interaction_quarantine(classified: DataFrame, row_rejects: bool, recovered: DataFrame | None,
                           raw: RawInteractions, key: bytes, run_id: str, run_date: dt.date) -> DataFrame:
    """Rejected interactions, one row per input row; the user field of each raw record is replaced by its
    pseudonym.

    Args:
        classified: rows failing a row rule still have their raw record (``raw_parts``); each is repeated
            ``copies`` times.
        row_rejects: whether any row failed a row rule (known from the counts); if not, ``classified`` is not
            scanned.
        recovered: events rejected by a later rule, with their raw record read again
            (:func:`recsys.etl.dedup.recover_raw`), or None when there are none.
    """
    columns = ("user_raw", "source_file", "reason", "raw_parts")
    failing = F.col("reason").isNotNull() & F.col("raw_parts").isNotNull() if row_rejects else F.lit(False)
    rows = expand_copies(classified.where(failing))  # where(false): an empty relation, no scan
    rows = rows.select(*columns)
    if recovered is not None:
        rows = rows.unionByName(recovered.select(*columns))
    rows = rows.withColumn("_pseudonym", pseudonymize(F.nullif(F.col("user_raw"), F.lit("")), key))
    return quarantine_rows(rows, R.ENTITY_INTERACTIONS, raw.render_raw(F.col("_pseudonym")), run_id, run_date)


def user_stats(summary: DataFrame, users: DataFrame) -> DataFrame:
    """user_idx, user_id, first_ts, last_ts, num_interactions of this run's accepted events.

    From :func:`user_summary`, joined to the user map; equal to :func:`build_users`'s aggregate over the
    interactions table when the run replaces the table.
    """
    stats = accepted(summary).select("user_raw", "first_ts", "last_ts", F.col("events").alias("num_interactions"))
    return stats.join(users, "user_raw").select(S.Col.USER_IDX, S.Col.USER_ID, "first_ts", "last_ts",
                                                "num_interactions")


def interaction_stats(interactions: DataFrame) -> DataFrame:
    """The same per-user aggregate as :func:`user_stats`, over an interactions table."""
    return interactions.groupBy(S.Col.USER_IDX, S.Col.USER_ID).agg(
        F.min(S.Col.TS).alias("first_ts"), F.max(S.Col.TS).alias("last_ts"),
        F.count(F.lit(1)).alias("num_interactions"))


def build_users(stats: DataFrame, attributes: DataFrame | None) -> DataFrame:
    """The ``users`` table from per-user ``stats`` (:func:`user_stats` or :func:`interaction_stats`);
    ``attributes`` (user_id, attributes) is optional."""
    users = stats
    if attributes is not None:
        users = users.join(attributes, S.Col.USER_ID, "left")
    else:
        users = users.withColumn("attributes", F.lit(None).cast("map<string,string>"))
    return conform(users, S.USERS)


def user_table_rows(users: DataFrame, key: bytes, cfg: EtlConfig, run_id: str, run_date: dt.date,
                    id_pattern: str) -> tuple[DataFrame, DataFrame]:
    """A raw user table -> (good rows, quarantine rows).

    Good rows are ``user_id, attributes, source_file, safe_record`` (the raw record with the user field
    replaced by its pseudonym), one per user: of rows naming the same user, the first by file path and then by
    fields is kept and the others are quarantined as ``duplicate_id`` (as for catalog rows).
    """
    user = normalize_id(F.col("user_raw"), id_pattern)
    reason = (F.when(F.col("parse_reason").isNotNull(), F.col("parse_reason"))
              .when(F.length(F.array_join("raw_parts", ",")) > F.lit(cfg.max_field_length),
                    F.lit(R.FIELD_TOO_LONG))
              .when(user.isNull() | (user == ""), F.lit(R.NULL_ID))
              .when(~user.rlike(id_pattern), F.lit(R.INVALID_ID)))
    checked = users.withColumn("reason", reason).withColumn(
        S.Col.USER_ID, pseudonymize(F.nullif(user, F.lit("")), key))
    replaced = F.transform("raw_parts", lambda x, i: F.when(i == 0, F.coalesce(
        F.col(S.Col.USER_ID), F.lit(""))).otherwise(x))
    checked = checked.withColumn("safe_record", F.call_function("array_join", replaced, F.col("raw_sep")))
    checked = mark_duplicate_ids(checked, S.Col.USER_ID, "source_file", "raw_parts")  # fields, not their join
    good = checked.where(F.col("reason").isNull()).select(S.Col.USER_ID, "attributes", "source_file", "safe_record")
    bad = quarantine_rows(checked.where(F.col("reason").isNotNull()), R.ENTITY_USERS, F.col("safe_record"), run_id,
                          run_date)
    return good, bad


def users_without_events(good: DataFrame, user_ids: DataFrame, run_id: str, run_date: dt.date) -> DataFrame:
    """Quarantine rows (``user_without_events``) for good user-table rows (:func:`user_table_rows`) whose user
    has no accepted interaction (``user_ids``: the ``user_id`` of every user in the ``users`` table): such a
    user has no index and no row in ``users``."""
    orphans = good.join(user_ids.select(S.Col.USER_ID), S.Col.USER_ID, "left_anti").withColumn(
        "reason", F.lit(R.USER_WITHOUT_EVENTS))
    return quarantine_rows(orphans, R.ENTITY_USERS, F.col("safe_record"), run_id, run_date)
