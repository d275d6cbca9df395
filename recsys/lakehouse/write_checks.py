"""Checks a write must pass before anything is written: its schema against the table's, and whether a
partition replace can be done exactly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import types as T


def nullable(schema: T.DataType) -> Any:
    """``schema`` with every field, array element and map value nullable (how tables store it)."""
    if isinstance(schema, T.StructType):
        return T.StructType([T.StructField(f.name, nullable(f.dataType), True) for f in schema.fields])
    if isinstance(schema, T.ArrayType):
        return T.ArrayType(nullable(schema.elementType), True)
    if isinstance(schema, T.MapType):
        return T.MapType(nullable(schema.keyType), nullable(schema.valueType), True)
    return schema


def describe_schema_difference(expected: T.StructType, actual: T.StructType) -> str:
    exp = {f.name: f.dataType.simpleString() for f in expected.fields}
    act = {f.name: f.dataType.simpleString() for f in actual.fields}
    parts = []
    if missing := [c for c in exp if c not in act]:
        parts.append(f"missing columns {missing}")
    if extra := [c for c in act if c not in exp]:
        parts.append(f"unexpected columns {extra}")
    if changed := [f"{c}: table {exp[c]} vs write {act[c]}" for c in exp if c in act and exp[c] != act[c]]:
        parts.append("type changes " + "; ".join(changed))
    return ", ".join(parts) or "column order differs"


# Partition column types whose values have one spelling in the log, in Spark's directories and in a filter:
# only these can be replaced by value. (A timestamp is written "...00:00" by one writer and "...00:00.000000"
# by another; a double "1e+20" or "1.0E20".)
REPLACEABLE_TYPES = (T.StringType, T.DateType, T.ByteType, T.ShortType, T.IntegerType, T.LongType,
                      T.BooleanType)


def check_replaceable(replace_partitions: Mapping[str, Any], schema: T.StructType) -> None:
    """Refuse, before anything is written, a partition replace this layer cannot do exactly."""
    for column, value in replace_partitions.items():
        data_type = schema[column].dataType
        if not isinstance(data_type, REPLACEABLE_TYPES):
            raise ValueError(
                f"replace_partitions on {column!r} ({data_type.simpleString()}): only string, date, integer and "
                "boolean partition columns can be replaced by value; partition by a date or string column instead"
            )
        if value is None or value == "":
            raise ValueError(
                f"replace_partitions cannot replace the null partition of {column!r} (an empty string is null "
                "too): give a value, or rewrite the table with mode='overwrite'"
            )
