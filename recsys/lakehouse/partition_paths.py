"""Partition directories and paths as Spark names and reads them, against the values in the Delta log.

The log is the truth: a file's partition values are its ``partitionValues`` and its path is the log's
URI-encoded ``path``. Spark, given a file, reads the literal path (no URI decoding) and infers partition values
from ``col=value`` directory names with its own unescaping (each ``%XX`` is one character). These helpers
write directory names Spark reads back exactly, and tell when a file's directories would be read otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from urllib.parse import unquote

from pyspark.sql import types as T

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

# The characters Spark escapes in partition directory names (ExternalCatalogUtils.escapePathName): everything
# else, non-ASCII included, is written as is, so Spark's partition discovery reads back exactly the value.
_SPARK_ESCAPED = frozenset([*map(chr, range(1, 32)), '"', "#", "%", "'", "*", "/", ":", "=", "?", "\\", "\x7f",
                            "{", "[", "]", "^"])


def hive_escape(text: str) -> str:
    """A partition value as Spark names its directory (``%XX`` for the few characters Spark escapes)."""
    return "".join(f"%{ord(c):02X}" if c in _SPARK_ESCAPED else c for c in text)


def hive_unescape(text: str) -> str:
    """What Spark's partition discovery reads from a directory name (each ``%XX`` is one character)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%" and _is_hex(text[i + 1:i + 3]):
            out.append(chr(int(text[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _is_hex(pair: str) -> bool:
    """Whether Java's ``Integer.parseInt(pair, 16)`` gives a code >= 0 (Spark's test; it accepts a ``+``)."""
    digits = "0123456789abcdefABCDEF"
    return len(pair) == 2 and (pair[0] in digits or pair[0] == "+") and pair[1] in digits


def spark_path(uri: str) -> str:
    """A data file URI from the Delta log (URI-encoded) as the path Spark opens (taken literally)."""
    return unquote(uri)


def discovered_as_logged(path: str, values: Mapping[str, str | None], types: Mapping[str, T.DataType]) -> bool:
    """Whether Spark's partition discovery reads ``values`` (the log's, per column) from ``path``'s
    ``col=value`` directories (the ones nearest the file)."""
    found: dict[str, str] = {}
    for part in path.split("/")[:-1]:
        name, sep, text = part.partition("=")
        if sep and name in values:
            found[name] = text
    for name, logged in values.items():
        if name not in found or found[name] == "":
            return False
        text = found[name]
        read = None if text == HIVE_NULL else hive_unescape(text)
        if not same_partition_value(read, logged or None, types.get(name, T.StringType())):
            return False
    return True


def same_partition_value(a: str | None, b: str | None, data_type: T.DataType) -> bool:
    """Whether two partition value strings denote the same value of ``data_type`` (e.g. timestamps written
    with and without fractional seconds)."""
    if a is None or b is None:
        return a is b
    if a == b:
        return True
    try:
        if isinstance(data_type, (T.DateType, T.TimestampType, T.TimestampNTZType)):
            left, right = dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)
            return (left.tzinfo is None) == (right.tzinfo is None) and left == right
        if isinstance(data_type, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
            return int(a) == int(b)
        if isinstance(data_type, (T.FloatType, T.DoubleType, T.DecimalType)):
            return float(a) == float(b)
    except ValueError:
        return False
    return False
