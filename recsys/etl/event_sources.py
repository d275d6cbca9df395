"""Generic event logs -> standard raw frames: interactions, item catalog and optional user table, in CSV, JSON
lines or Parquet, with the column mapping of ``etl.events`` (:class:`recsys.etl.settings.EventsConfig`).

CSV files are each read by their own header line (files may order their columns differently); malformed
lines are split at field boundaries so their user field can be pseudonymized, or withheld when that cannot
be done safely. The frames have the shapes of :mod:`recsys.etl.sources`.
"""

from __future__ import annotations

import fnmatch
import functools

from pyarrow import fs as pafs
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.etl.errors import InputError
from recsys.etl.settings import EventsConfig
from recsys.etl.sources import (
    CORRUPT,
    HEADER,
    WITHHELD,
    RawCatalog,
    RawInteractions,
    csv_headers,
    file_col,
    join_path,
    list_entries,
    parse_reason,
    regex_literal,
    user_field_render,
    users_frame,
    withhold_miscounted,
)
from recsys.lakehouse.filesystems import resolve_filesystem


def _matching(path: str, pattern: str) -> list[str]:
    """The files and folders matching ``pattern`` directly under ``path``."""
    return [join_path(path, e.base_name) for e in list_entries(path) if fnmatch.fnmatch(e.base_name, pattern)]


def _csv_input_files(paths: list[str]) -> list[str]:
    """``paths`` with each folder (what Spark writes, e.g. ``events.csv/`` of ``recsys synth``) replaced by the
    files directly in it: CSV files are read by their own header lines, so by file. Empty files hold no rows.

    Raises:
        InputError: a folder holds folders (a partitioned CSV layout is not read).
    """
    found: list[str] = []
    for where in paths:
        filesystem, inner_path = resolve_filesystem(where)
        entry = filesystem.get_file_info(inner_path)
        if entry.type != pafs.FileType.Directory:
            found += [where] if entry.size else []
            continue
        inner = list_entries(where)
        if nested := [i.base_name for i in inner if i.type == pafs.FileType.Directory]:
            raise InputError(f"CSV input folder {where} holds folders ({', '.join(nested[:3])}): only files "
                             "directly in it are read; point --input and the etl.events patterns at the files")
        found += [join_path(where, i.base_name) for i in inner if i.size]
    return found


_STRINGS = T.ArrayType(T.StringType())


def _as_text(dtype: T.DataType, keep_array: bool) -> T.DataType:
    """A column's type once read: a string, or (``keep_array``, an array in the source) an array of strings."""
    return _STRINGS if keep_array and isinstance(dtype, T.ArrayType) else T.StringType()


def _read_any(spark: SparkSession, paths: list[str], fmt: str, required: list[str], arrays: tuple[str, ...] = (),
              multiline: bool = False) -> DataFrame:
    """Every file of ``paths`` as string columns (+ corrupt record, source file); CSV files must each name
    the ``required`` columns on their first line.

    Args:
        arrays: columns kept as arrays of strings where a JSON or Parquet source holds arrays (as text, a
            JSON array would be split like a string).
        multiline: CSV records may span lines (the item catalog, see ``etl.events.items_csv_multiline``).
    """
    if fmt == "csv":
        files = _csv_input_files(paths)
        if not files:
            raise InputError(f"the CSV input {paths[0]} holds no data (empty files only)")
        return _csv_files(spark, files, [c for c in required if c], multiline)
    if fmt == "json":
        frame = spark.read.json(paths)
        schema = T.StructType([T.StructField(f.name, _as_text(f.dataType, f.name in arrays))
                               for f in frame.schema.fields if f.name != CORRUPT])
        schema = schema.add(CORRUPT, T.StringType())
        return (spark.read.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord",
                CORRUPT).json(paths).withColumn("source_file", file_col()))
    if fmt == "parquet":
        frame = spark.read.parquet(*paths)
        return frame.select(*[F.col(f.name).cast(_as_text(f.dataType, f.name in arrays)).alias(f.name)
                              for f in frame.schema.fields],
                            F.lit(None).cast("string").alias(CORRUPT), file_col().alias("source_file"))
    raise ValueError(f"etl.events.format must be csv, json or parquet, not {fmt!r}")


def _csv_files(spark: SparkSession, paths: list[str], required: list[str], multiline: bool = False) -> DataFrame:
    """CSV files with a header line each, every file read by its own header (files may order their columns
    differently; Spark would map them all by the first file's positions).

    Raises:
        InputError: a file's first line does not name every ``required`` column (no header, or another
            table); the message names the file and the columns, never the line (it may be data).
    """
    by_header: dict[tuple[str, ...], list[str]] = {}
    for path, names in zip(paths, csv_headers(paths, spark), strict=True):
        header = tuple(c.strip() for c in names)
        if missing := [c for c in required if c not in header]:
            raise InputError(f"CSV file {path}: its first line does not name the column(s) {missing}; every "
                             "CSV input file needs a header line (check the etl.events.*_col settings)")
        by_header.setdefault(header, []).append(path)
    frames = [_csv_paths(spark, group, list(header), multiline) for header, group in by_header.items()]
    return functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _csv_paths(spark: SparkSession, paths: list[str], columns: list[str], multiline: bool) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*columns, CORRUPT]])
    return (spark.read.schema(schema).option("header", True).option("escape", '"').option("mode", "PERMISSIVE")
            .option("multiLine", multiline)
            .option("columnNameOfCorruptRecord", CORRUPT).csv(paths).withColumn("source_file", file_col())
            .withColumn(HEADER, F.array(*[F.lit(c) for c in columns])))


def _data_columns(frame: DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in (CORRUPT, "source_file", HEADER)]


def _header_position(name: str) -> Column:
    """0-based position of column ``name`` in the row's own file (CSV inputs)."""
    return F.array_position(F.col(HEADER), F.lit(name)).cast("int") - 1


def _missing_columns(names: list[str], frame_columns: list[str], what: str) -> None:
    """Raise for configured columns absent from the input, naming only the configured names (a headerless
    CSV file's first line is data, maybe user ids: it is never echoed)."""
    missing = [n for n in names if n and n not in frame_columns]
    if missing:
        raise InputError(f"{what} column(s) {missing} not found in the input's header or schema "
                         f"({len(frame_columns)} columns); check the etl.events.*_col settings and that every "
                         "CSV file starts with a header line")


# A CSV field boundary: a comma followed by an even number of quotes (so not inside a quoted field).
CSV_COMMA = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'


def _balanced_quotes(line: Column) -> Column:
    return (F.length(line) - F.length(F.regexp_replace(line, '"', ""))) % 2 == 0


def read_events(spark: SparkSession, path: str, cfg: EventsConfig) -> RawInteractions:
    paths = _matching(path, cfg.interactions)
    if not paths:
        raise InputError(f"no event files matching {cfg.interactions!r} under {path}")
    required = [cfg.user_col, cfg.item_col, cfg.timestamp_col, cfg.event_type_col, cfg.value_col]
    frame = _read_any(spark, paths, cfg.format, required)
    data_cols = _data_columns(frame)
    _missing_columns(required, data_cols, "event")
    if cfg.format == "csv":
        # A malformed line is split at its field boundaries, quoted commas kept, and its user field found by
        # its file's header. A line with unbalanced quotes cannot be split safely, and in a line with another
        # number of fields than its header the user field may have moved: their records are withheld.
        corrupt = F.col(CORRUPT)
        user_pos = _header_position(cfg.user_col)
        fields = F.split(corrupt, CSV_COMMA, -1)
        parts = F.when(corrupt.isNotNull(), F.when(_balanced_quotes(corrupt), withhold_miscounted(
            fields, F.size(F.col(HEADER)))).otherwise(F.array(F.lit(WITHHELD)))).otherwise(
            F.array(*[F.coalesce(F.col(c), F.lit("")) for c in data_cols]))
        user = F.when(corrupt.isNotNull(), F.when(_balanced_quotes(corrupt), F.try_element_at(fields, user_pos + 1))
                      ).otherwise(F.col(cfg.user_col))
        render = user_field_render(",", data_cols.index(cfg.user_col))
    else:
        # One part: the record as JSON; the user field is rewritten with a regex (also in corrupt lines).
        others = [c for c in data_cols if c != cfg.user_col]
        # the user field in double or single quotes (Spark's JSON reader accepts both) or bare
        pattern = (rf"""["']{cfg.user_col}["']\s*:\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}}\s]*)""")
        user = F.when(F.col(CORRUPT).isNotNull(), F.regexp_replace(
            F.regexp_extract(F.col(CORRUPT), pattern, 1), """^["']|["']$""", "")).otherwise(F.col(cfg.user_col))
        # a malformed record without a recognisable user field may still hold one: withheld
        parts = F.array(F.when(F.col(CORRUPT).isNull(), F.to_json(F.struct(*others)))
                        .when(F.col(CORRUPT).rlike(pattern), F.col(CORRUPT)).otherwise(F.lit(WITHHELD)))
        user_col = cfg.user_col

        def render(pseudonym: Column) -> Column:
            record = F.col("raw_parts")[0]
            safe = F.concat(F.lit(f'"{user_col}":"'), F.coalesce(pseudonym, F.lit("")), F.lit('"'))
            return F.when(record.rlike(pattern), F.regexp_replace(record, F.lit(pattern), safe)).otherwise(
                F.concat(F.lit("{"), safe, F.lit(',"record":'), F.to_json(F.struct(record.alias("r"))),
                         F.lit("}")))
    value = F.col(cfg.value_col) if cfg.value_col else F.lit(None).cast("string")
    out = frame.select(
        "source_file", parts.alias("raw_parts"), parse_reason(data_cols).alias("parse_reason"),
        F.trim(user).alias("user_raw"), F.trim(F.col(cfg.item_col)).alias("item_raw"),
        F.trim(F.col(cfg.timestamp_col)).alias("ts_raw"), F.trim(F.col(cfg.event_type_col)).alias("event_raw"),
        F.trim(value).alias("value_raw"))
    return RawInteractions(out, cfg.timestamp_format, ".+", None, render)


def _dimension(spark: SparkSession, path: str, pattern: str, cfg: EventsConfig, id_col: str,
               arrays: tuple[str, ...] = (), multiline: bool = False) -> tuple[DataFrame, list[str]] | None:
    """The files of a dimension table (``pattern`` under ``path``) read as ``cfg.format``, and their data
    columns; None when there are none."""
    paths = _matching(path, pattern)
    if not paths:
        return None
    raw = _read_any(spark, paths, cfg.format, [id_col], arrays, multiline)
    return raw, _data_columns(raw)


def read_events_catalog(spark: SparkSession, path: str, cfg: EventsConfig) -> RawCatalog | None:
    found = _dimension(spark, path, cfg.items, cfg, cfg.item_id_col, arrays=(cfg.item_categories_col,),
                       multiline=cfg.items_csv_multiline)
    if found is None:
        return None
    raw, cols = found

    def opt(name: str) -> Column:
        return F.col(name) if name and name in cols else F.lit(None).cast("string")

    listed = cfg.item_categories_col in cols and raw.schema[cfg.item_categories_col].dataType == _STRINGS
    categories = F.filter(
        F.coalesce(F.col(cfg.item_categories_col), F.array().cast(_STRINGS)) if listed
        else F.split(F.coalesce(opt(cfg.item_categories_col), F.lit("")), regex_literal(cfg.categories_separator)),
        lambda g: g.isNotNull() & (F.trim(g) != ""))
    items = raw.select(
        F.trim(opt(cfg.item_id_col)).alias("item_raw"), opt(cfg.item_title_col).alias("title"),
        opt(cfg.item_description_col).alias("description"),
        # a lambda: given F.trim itself, transform passes each element's position as the characters to trim
        F.transform(categories, lambda g: F.trim(g)).alias("categories"),
        F.coalesce(opt(cfg.item_year_col), F.lit("")).alias("year_raw"), "source_file",
        F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*cols))).alias("raw_record"),
        parse_reason(cols).alias("parse_reason"))
    return RawCatalog(items, None)


def read_events_users(spark: SparkSession, path: str, cfg: EventsConfig) -> DataFrame | None:
    found = _dimension(spark, path, cfg.users, cfg, cfg.user_id_col)
    if found is None:
        return None
    raw, cols = found
    _missing_columns([cfg.user_id_col], cols, "user table")
    ordered = [cfg.user_id_col, *[c for c in cols if c != cfg.user_id_col]]
    # a malformed line's fields cannot be matched to the header safely (JSON, quoted CSV): its record is
    # withheld rather than risk quarantining a raw user id
    raw = raw.withColumn(CORRUPT, F.when(F.col(CORRUPT).isNotNull(), F.lit(WITHHELD)))
    return users_frame(raw.withColumnRenamed(cfg.user_id_col, "user_raw"),
                        ["user_raw", *ordered[1:]], ",", ordered[1:])
