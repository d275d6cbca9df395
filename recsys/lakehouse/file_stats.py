"""Delta per-file statistics (``numRecords``, ``minValues``, ``maxValues``, ``nullCount``) for data files.

Two sources: Arrow data as it is written (:class:`StatsAccumulator`) and a finished file's Parquet footer
(:func:`stats_json_from_footer`). Both record statistics only for flat numeric, string, date and timestamp
columns (Delta's nested-column statistics are optional: none are recorded), and min/max only when every value
is representable (no NaN, strings up to 32 characters). Timestamps without a time zone (``timestamp_ntz``)
are recorded as their wall-clock time, not shifted by the writer's local zone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_STATS_STRING_LIMIT = 32


def stat_value(scalar: pa.Scalar, upper: bool) -> Any:
    """JSON form of a min/max statistic; ``None`` when it is safer to record none."""
    return stat_value_of(scalar.as_py(), upper)


def stat_value_of(value: Any, upper: bool) -> Any:
    """JSON form of a Python min/max value (see :func:`stat_value`)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime):
        micro = value.microsecond
        if upper and micro % 1000:  # stats have millisecond precision: round the max up, the min down
            value = value + dt.timedelta(microseconds=1000 - micro % 1000)
        value = value.replace(microsecond=(value.microsecond // 1000) * 1000)
        if value.tzinfo is None:  # timestamp_ntz: a wall-clock time, not one in this process's zone
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= _STATS_STRING_LIMIT else None
    if isinstance(value, int):
        return value
    return None


class StatsAccumulator:
    """Statistics of one file, accumulated from the Arrow tables written into it."""

    def __init__(self, schema: pa.Schema) -> None:
        self.columns = [
            f.name for f in schema
            if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type)
            or pa.types.is_date(f.type) or pa.types.is_timestamp(f.type)
        ]
        self.rows = 0
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}
        self.nulls: dict[str, int] = {}
        self.unusable: set[str] = set()

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name in self.columns:
            self.nulls[name] = self.nulls.get(name, 0) + table.column(name).null_count
        for name in self.columns:
            if name in self.unusable:
                continue
            column = table.column(name)
            if pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py():
                # min_max skips NaN, but NaN sorts above every number in Spark: no bounds are safe
                self.unusable.add(name)
                self.mins.pop(name, None)
                self.maxs.pop(name, None)
                continue
            mm = pc.min_max(column)
            lo, hi = stat_value(mm["min"], upper=False), stat_value(mm["max"], upper=True)
            if (lo is None or hi is None) and mm["min"].is_valid:
                self.unusable.add(name)
                self.mins.pop(name, None)
                self.maxs.pop(name, None)
                continue
            if lo is None:
                continue
            self.mins[name] = lo if name not in self.mins else min(self.mins[name], lo)
            self.maxs[name] = hi if name not in self.maxs else max(self.maxs[name], hi)

    def to_json(self) -> str:
        return json.dumps(
            {"numRecords": self.rows, "minValues": self.mins, "maxValues": self.maxs, "nullCount": self.nulls},
            separators=(",", ":"),
        )


def stats_json_from_footer(meta: pq.FileMetaData, skip: Sequence[str] = ()) -> str:
    """Statistics JSON of a file from its footer's row-group statistics (top-level columns only)."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    unusable: set[str] = set(skip)
    no_nulls: set[str] = set(skip)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name = column.path_in_schema
            if "." in name:  # nested (list/struct) leaf: Delta stats are optional, record none
                continue
            stats = column.statistics
            if stats is None or not stats.has_null_count:
                no_nulls.add(name)
            else:
                nulls[name] = nulls.get(name, 0) + int(stats.null_count)
            if name in unusable:
                continue
            if stats is None or not stats.has_min_max:
                if stats is None or stats.null_count != group.num_rows:  # an all-null group has no min/max
                    unusable.add(name)
                continue
            lo, hi = stat_value_of(stats.min, upper=False), stat_value_of(stats.max, upper=True)
            if lo is None or hi is None:
                unusable.add(name)
                continue
            mins[name] = lo if name not in mins else min(mins[name], lo)
            maxs[name] = hi if name not in maxs else max(maxs[name], hi)
    return json.dumps({
        "numRecords": meta.num_rows,
        "minValues": {k: v for k, v in mins.items() if k not in unusable},
        "maxValues": {k: v for k, v in maxs.items() if k not in unusable},
        "nullCount": {k: v for k, v in nulls.items() if k not in no_nulls},
    }, separators=(",", ":"))
