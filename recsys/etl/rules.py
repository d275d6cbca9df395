"""Row-level cleaning rules and implicit weights (DataFrame -> DataFrame, no actions).

Every raw interaction keeps its row: :func:`validate` adds ``reason`` (null = passes) naming the first
rule it fails, in this order: parse problems (undecodable bytes, wrong field count, malformed record),
over-long field, null id, invalid id, unparsable timestamp, timestamp before ``etl.min_timestamp`` or after the
end of the run date, unparsable value, value outside ``[rating_min, rating_max]``, unknown event type.

Implicit feedback: an explicit rating ``r`` is kept in ``interactions`` whatever its value (it is not an
error). Its ``weight`` is ``implicit.positive_weight`` (``weighting: binary``) or ``r / rating_max``
(``weighting: rating``) when ``r >= implicit.min_rating``, else ``implicit.negative_weight`` (0 by default), so
downstream stages train on ``weight > 0``. Event types map to weights via ``etl.event_weights``; an event with
a value and the type ``rating`` follows the rating rule.
"""

from __future__ import annotations

import datetime as dt
from itertools import chain

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.etl import reasons as R
from recsys.etl.settings import EtlConfig
from recsys.etl.sources import RawInteractions

NUMERIC_ID = "^[0-9]+$"


def parse_timestamp(raw: Column, ts_format: str) -> Column:
    """String -> timestamp by ``ts_format``; null when unparsable (never an error under ANSI mode)."""
    if ts_format in ("epoch_s", "epoch_ms"):
        seconds = ts_format == "epoch_s"
        number = raw.try_cast("double")  # the range check (also accepts exponents: 1.7e9)
        ok = number.isNotNull() & (F.abs(number) < F.lit(1e11 if seconds else 1e14))
        # Exact to the microsecond (Spark's precision): whole numbers, the usual case, as they are; others
        # (fractions, exponents) through a decimal, never a double (which merged events milliseconds apart).
        whole = raw.try_cast("long")
        from_whole = F.timestamp_seconds(whole) if seconds else F.timestamp_millis(whole)
        micros = F.floor(raw.try_cast("decimal(28,9)") * F.lit(1_000_000 if seconds else 1_000)).cast("long")
        exact = F.when(whole.isNotNull(), from_whole).otherwise(F.timestamp_micros(micros))
        return F.when(ok, exact).otherwise(F.lit(None).cast("timestamp"))
    if ts_format == "iso":
        return F.try_to_timestamp(raw)
    return F.try_to_timestamp(raw, F.lit(ts_format))


def normalize_id(raw: Column, id_pattern: str) -> Column:
    """Numeric ids lose leading zeros ("007" and "7" are one id); other ids are kept as given."""
    if id_pattern == NUMERIC_ID:  # the regex only for ids that start with 0 (15% of the validation time)
        return F.when(raw.startswith("0"), F.regexp_replace(raw, "^0+(?=.)", "")).otherwise(raw)
    return raw


def rating_weight(rating: Column, cfg: EtlConfig) -> Column:
    imp = cfg.implicit
    if imp.weighting == "binary":
        positive: Column = F.lit(imp.positive_weight)
    elif imp.weighting == "rating":
        positive = rating / F.lit(cfg.rating_max)
    else:
        raise ValueError(f"etl.implicit.weighting must be binary or rating, not {imp.weighting!r}")
    return F.when(rating >= F.lit(imp.min_rating), positive).otherwise(F.lit(imp.negative_weight))


def validate(raw: RawInteractions, cfg: EtlConfig, run_date: dt.date) -> DataFrame:
    """Typed columns plus the first failed row rule in ``reason`` (see module docstring)."""
    frame = raw.frame
    ts = parse_timestamp(F.col("ts_raw"), raw.ts_format)
    value = F.col("value_raw").try_cast("double")
    fixed_type = raw.event_type
    event = F.lit(fixed_type) if fixed_type else F.lower(F.trim(F.col("event_raw")))
    weights = F.create_map(*[F.lit(x) for x in chain.from_iterable(cfg.event_weights.items())])
    # strings cast in the session time zone (UTC), as the events are: a naive Python datetime literal would be
    # converted in the driver's local zone
    min_ts = F.lit(dt.datetime.fromisoformat(cfg.min_timestamp).isoformat(sep=" ")).cast("timestamp")
    end_ts = F.lit(f"{(run_date + dt.timedelta(days=1)).isoformat()} 00:00:00").cast("timestamp")
    max_len = cfg.max_field_length
    fields = ("user_raw", "item_raw", "ts_raw", "event_raw", "value_raw")
    too_long = F.greatest(*[F.coalesce(F.length(c), F.lit(0)) for c in fields]) > F.lit(max_len)

    def empty(c: str) -> Column:
        return F.col(c).isNull() | (F.col(c) == "")

    value_required = fixed_type == "rating"
    bad_value = (empty("value_raw") if value_required else F.lit(False)) | (~empty("value_raw") & value.isNull())
    reason = (
        F.when(F.col("parse_reason").isNotNull(), F.col("parse_reason"))
        .when(too_long, F.lit(R.FIELD_TOO_LONG))
        .when(empty("user_raw") | empty("item_raw"), F.lit(R.NULL_ID))
        .when(~F.col("user_raw").rlike(raw.id_pattern) | ~F.col("item_raw").rlike(raw.id_pattern),
              F.lit(R.INVALID_ID))
        .when(F.col("ts").isNull(), F.lit(R.BAD_TIMESTAMP))
        .when(F.col("ts") < min_ts, F.lit(R.TS_TOO_OLD))
        .when(F.col("ts") >= end_ts, F.lit(R.TS_FUTURE))
        .when(bad_value, F.lit(R.BAD_VALUE))
        .when(value.isNotNull() & ((value < F.lit(cfg.rating_min)) | (value > F.lit(cfg.rating_max))),
              F.lit(R.VALUE_OUT_OF_RANGE))
        .when(F.lit(fixed_type is None) & (empty("event_raw") | ~F.map_contains_key(weights, event)),
              F.lit(R.UNKNOWN_EVENT))
    )
    rating = value.cast("float")
    weight = (F.when(F.col("rating").isNotNull() & (F.col("event_type") == "rating"),
                     rating_weight(F.col("rating"), cfg))
              .otherwise(F.try_element_at(weights, F.col("event_type"))))
    typed = frame.select(
        "source_file", "raw_parts", "parse_reason", "user_raw", "item_raw", "ts_raw", "event_raw", "value_raw",
        ts.alias("ts"), event.alias("event_type"), rating.alias("rating"))
    return typed.select(
        "source_file", "raw_parts",
        F.when(F.col("parse_reason").isNull(), normalize_id(F.col("user_raw"), raw.id_pattern))
        .otherwise(F.col("user_raw")).alias("user_raw"),
        F.when(F.col("parse_reason").isNull(), normalize_id(F.col("item_raw"), raw.id_pattern))
        .otherwise(F.col("item_raw")).alias("item_raw"),
        "ts", F.to_date("ts").alias("event_date"), "event_type", "rating",
        weight.cast("float").alias("weight"), reason.alias("reason"))


def mark_duplicate_ids(checked: DataFrame, id_col: str, *order: str) -> DataFrame:
    """``checked`` (rows with ``reason``, null = passes) with ``duplicate_id`` on every passing row whose
    ``id_col`` an earlier passing row has, earlier by ``order`` (dimension tables: catalog, user table)."""
    first = Window.partitionBy(id_col).orderBy(*order)
    ok = checked.where(F.col("reason").isNull()).withColumn(
        "reason", F.when(F.row_number().over(first) > 1, F.lit(R.DUPLICATE_ID)))
    return checked.where(F.col("reason").isNotNull()).unionByName(ok)
