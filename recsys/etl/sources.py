"""Raw inputs -> standard raw frames (every value still a string; nothing validated, nothing dropped).

MovieLens layouts are detected from the files present under ``--input`` (a file or a Spark output folder of
that name both work). Interaction files are read as text lines and split here, so that malformed lines,
wrong field counts and undecodable bytes reach quarantine with their raw line. Catalog and user tables
(dimensions) use Spark's CSV/JSON/Parquet readers in PERMISSIVE mode with a corrupt-record column.

A raw interaction frame has the columns of :data:`RAW_COLUMNS`; ``raw_parts`` holds the record's fields
and :attr:`RawInteractions.render_raw` turns them back into one string with the user field replaced by its
pseudonym (so raw user ids never reach the quarantine table).
"""

from __future__ import annotations

import csv
import fnmatch
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyarrow import fs as pafs
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.etl import reasons as R
from recsys.etl.settings import EventsConfig

RAW_COLUMNS = ("source_file", "raw_parts", "parse_reason", "user_raw", "item_raw", "ts_raw", "event_raw",
               "value_raw")
CORRUPT = "_corrupt_record"
_HEADER_READERS = 16  # CSV first lines read at once by the driver
HEADER = "_header"  # CSV events inputs: the column names of the row's file, in its order
WITHHELD = "<record withheld: its fields cannot be told apart safely and one may be a user id>"
LATIN1 = "ISO-8859-1"
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                 "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class Layout:
    """A MovieLens layout: file names, separators, encodings."""

    name: str
    ratings: str
    movies: str
    users: str | None
    tags: str | None
    separator: str  # of the ratings file
    header: str | None  # ratings header line to skip
    encoding: str


LAYOUTS = (
    Layout("ml-latest", "ratings.csv", "movies.csv", None, "tags.csv", ",",
           "userId,movieId,rating,timestamp", "UTF-8"),
    Layout("ml-1m", "ratings.dat", "movies.dat", "users.dat", None, "::", None, LATIN1),
    Layout("ml-100k", "u.data", "u.item", "u.user", None, "\t", None, LATIN1),
)


@dataclass(frozen=True)
class RawInteractions:
    """Raw interaction rows plus how to read them."""

    frame: DataFrame
    ts_format: str  # epoch_s | epoch_ms | iso | Spark pattern
    id_pattern: str  # regex every id must match
    event_type: str | None  # fixed event type (MovieLens: "rating"); None = from event_raw
    render_raw: Callable[[Column], Column]  # pseudonym column -> safe raw record


@dataclass(frozen=True)
class RawCatalog:
    """Items: item_raw, title, description, categories (array), year_raw, source_file, raw_record,
    parse_reason; ``tags`` (or None): every row of the tag file as item_raw, tag, user_raw, timestamp_raw,
    source_file, corrupt_record (the line when unparsable) and parse_reason."""

    items: DataFrame
    tags: DataFrame | None


def list_names(path: str) -> list[str]:
    """Names of the entries directly under ``path`` (local path or URI)."""
    if "://" in path:
        filesystem, base = pafs.FileSystem.from_uri(path)
    else:
        filesystem, base = pafs.LocalFileSystem(), path
    infos = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.base_name for i in infos if not i.base_name.startswith((".", "_")))


def join_path(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def detect_layout(path: str) -> Layout:
    """The MovieLens layout whose ratings file is present under ``path``.

    Raises:
        FileNotFoundError: no known layout; the message lists what was found.
    """
    names = set(list_names(path))
    for layout in LAYOUTS:
        if layout.ratings in names:
            return layout
    raise FileNotFoundError(
        f"no MovieLens ratings file (ratings.csv, ratings.dat or u.data) under {path}; found {sorted(names)}")


def _file_col() -> Column:
    return F.col("_metadata.file_path")


def _text_lines(spark: SparkSession, path: str, encoding: str, header: str | None) -> DataFrame:
    """Lines of text files with source_file; bytes decoded, undecodable lines flagged."""
    lines = spark.read.text(path).select(F.col("value").alias("line"), _file_col().alias("source_file"))
    if encoding == LATIN1:
        lines = lines.select(F.decode(F.col("line").cast("binary"), LATIN1).alias("line"), "source_file",
                             F.lit(True).alias("decodable"))
    else:
        lines = lines.select(F.make_valid_utf8("line").alias("line"), "source_file",
                             F.is_valid_utf8("line").alias("decodable"))
    if header is not None:
        lines = lines.where(F.col("line") != F.lit(header))
    return lines


def _delimited_render(separator: str, user_position: int) -> Callable[[Column], Column]:
    def render(pseudonym: Column) -> Column:
        replaced = F.transform(
            F.col("raw_parts"),
            lambda x, i: F.when(i == F.lit(user_position), F.coalesce(pseudonym, F.lit(""))).otherwise(x))
        return F.array_join(replaced, separator)
    return render


def _user_field_render(separator: str, user_position: int) -> Callable[[Column], Column]:
    """Like :func:`_delimited_render`, and every field equal to the row's ``user_raw`` is replaced too (a
    malformed line's user field need not be at the header's position)."""
    def render(pseudonym: Column) -> Column:
        user = F.col("user_raw")
        replaced = F.transform(
            F.col("raw_parts"),
            lambda x, i: F.when((i == F.lit(user_position)) | (user.isNotNull() & (user != "") & (F.trim(x) == user)),
                                F.coalesce(pseudonym, F.lit(""))).otherwise(x))
        return F.when(F.col("raw_parts")[0] == F.lit(WITHHELD), F.lit(WITHHELD)).otherwise(
            F.array_join(replaced, separator))
    return render


def _split_interactions(lines: DataFrame, separator: str, n_fields: int) -> DataFrame:
    """``user, item, value, timestamp`` lines (all MovieLens rating layouts) -> raw frame."""
    parts = F.split(F.col("line"), _regex_literal(separator), -1)
    frame = lines.select("source_file", "decodable", parts.alias("raw_parts"))
    reason = (F.when(~F.col("decodable"), F.lit(R.UNDECODABLE))
              .when(F.size("raw_parts") != n_fields, F.lit(R.FIELD_COUNT)))
    return frame.select(
        "source_file", "raw_parts", reason.alias("parse_reason"),
        F.trim(F.try_element_at("raw_parts", F.lit(1))).alias("user_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(2))).alias("item_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(4))).alias("ts_raw"),
        F.lit(None).cast("string").alias("event_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(3))).alias("value_raw"),
    )


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if not c.isalnum() and c not in "\t" else c for c in text)


def read_movielens_interactions(spark: SparkSession, path: str, layout: Layout) -> RawInteractions:
    lines = _text_lines(spark, join_path(path, layout.ratings), layout.encoding, layout.header)
    frame = _split_interactions(lines, layout.separator, 4)
    return RawInteractions(frame, "epoch_s", "^[0-9]+$", "rating", _delimited_render(layout.separator, 0))


def _csv(spark: SparkSession, path: str, columns: list[str], sep: str, encoding: str, header: bool,
         quoted: bool) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*columns, CORRUPT]])
    reader = (spark.read.schema(schema).option("header", header).option("sep", sep)
              .option("encoding", encoding).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT))
    reader = reader.option("escape", '"') if quoted else reader.option("quote", "\u0000")  # RFC 4180: "" is "
    return reader.csv(path).withColumn("source_file", _file_col())


def _parse_reason(columns: list[str]) -> Column:
    return (F.when(F.col(CORRUPT).isNotNull(), F.lit(R.MALFORMED))
            .when(F.concat_ws("", *[F.coalesce(F.col(c), F.lit("")) for c in columns]).contains("\ufffd"),
                  F.lit(R.UNDECODABLE)))


def read_movielens_catalog(spark: SparkSession, path: str, layout: Layout) -> RawCatalog:
    movies = join_path(path, layout.movies)
    if layout.name == "ml-100k":
        cols = ["item_raw", "title", "release_date", "video_date", "url", *[f"g{i}" for i in range(19)]]
        raw = _csv(spark, movies, cols, "|", LATIN1, header=False, quoted=False)
        genres = F.filter(F.array(*[F.when(F.col(f"g{i}") == "1", F.lit(g)) for i, g in
                                    enumerate(ML100K_GENRES)]), lambda g: g.isNotNull() & (g != "unknown"))
        year = F.regexp_extract(F.coalesce(F.col("release_date"), F.lit("")), r"(\d{4})$", 1)
        sep = "|"
    else:
        cols = ["item_raw", "title", "genres"]
        latest = layout.name == "ml-latest"
        sep = "," if latest else "::"
        raw = _csv(spark, movies, ["movieId", *cols[1:]] if latest else cols, sep, layout.encoding,
                   header=latest, quoted=latest).withColumnRenamed("movieId", "item_raw")
        genres = F.filter(F.split(F.coalesce(F.col("genres"), F.lit("")), r"\|"),
                          lambda g: (g != "") & (g != "(no genres listed)"))
        year = F.lit("")
    items = raw.select(
        F.trim("item_raw").alias("item_raw"), F.col("title").alias("title"),
        F.lit(None).cast("string").alias("description"), genres.alias("categories"), year.alias("year_raw"),
        "source_file",
        F.coalesce(F.col(CORRUPT), F.concat_ws(sep, *[F.coalesce(F.col(c), F.lit("")) for c in cols]))
        .alias("raw_record"),
        _parse_reason(cols).alias("parse_reason"))
    tags = None
    if layout.tags and layout.tags in set(list_names(path)):
        tag_raw = _csv(spark, join_path(path, layout.tags), ["userId", "movieId", "tag", "timestamp"], ",",
                       "UTF-8", header=True, quoted=True)
        tags = tag_raw.select(
            F.col("movieId").alias("item_raw"), "tag", F.col("userId").alias("user_raw"),
            F.col("timestamp").alias("timestamp_raw"), "source_file", F.col(CORRUPT).alias("corrupt_record"),
            _parse_reason(["userId", "movieId", "tag", "timestamp"]).alias("parse_reason"))
    return RawCatalog(items, tags)


def read_movielens_users(spark: SparkSession, path: str, layout: Layout) -> DataFrame | None:
    """users.dat / u.user -> user_raw, attributes (zip codes are not kept), raw_parts, source_file,
    parse_reason; None when the layout has no user table."""
    if layout.users is None or layout.users not in set(list_names(path)):
        return None
    if layout.name == "ml-1m":
        cols, sep = ["user_raw", "gender", "age", "occupation", "zip"], "::"
    else:
        cols, sep = ["user_raw", "age", "gender", "occupation", "zip"], "|"
    raw = _csv(spark, join_path(path, layout.users), cols, sep, LATIN1, header=False, quoted=False)
    return _users_frame(raw, cols, sep, ["gender", "age", "occupation"])


def _users_frame(raw: DataFrame, cols: list[str], sep: str, attributes: list[str]) -> DataFrame:
    attrs = F.map_from_arrays(F.array(*[F.lit(a) for a in attributes]),
                              F.array(*[F.col(a).cast("string") for a in attributes]))
    corrupt = F.col(CORRUPT)
    parts = (F.when(corrupt == F.lit(WITHHELD), F.array(F.lit(""), F.lit(WITHHELD)))  # no user field
             .when(corrupt.isNotNull(), F.split(corrupt, _regex_literal(sep), -1))
             .otherwise(F.array(*[F.coalesce(F.col(c).cast("string"), F.lit("")) for c in cols])))
    return raw.select(
        F.trim(F.when(F.col(CORRUPT).isNotNull(), F.try_element_at(parts, F.lit(1))).otherwise(
            F.col(cols[0]).cast("string"))).alias("user_raw"),
        attrs.alias("attributes"), parts.alias("raw_parts"), F.lit(sep).alias("raw_sep"), "source_file",
        _parse_reason(cols).alias("parse_reason"))


# ---------------------------------------------------------------------------------------------- events
def _matching(path: str, pattern: str) -> list[str]:
    return [join_path(path, n) for n in list_names(path) if fnmatch.fnmatch(n, pattern)]


def _read_any(spark: SparkSession, paths: list[str], fmt: str, required: list[str]) -> DataFrame:
    """Every file of ``paths`` as string columns (+ corrupt record, source file); CSV files must each name
    the ``required`` columns on their first line."""
    if fmt == "csv":
        return _csv_files(spark, paths, [c for c in required if c])
    if fmt == "json":
        frame = spark.read.json(paths)
        schema = T.StructType([T.StructField(c, T.StringType()) for c in frame.columns if c != CORRUPT])
        schema = schema.add(CORRUPT, T.StringType())
        return (spark.read.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord",
                CORRUPT).json(paths).withColumn("source_file", _file_col()))
    if fmt == "parquet":
        frame = spark.read.parquet(*paths)
        return frame.select(*[F.col(c).cast("string").alias(c) for c in frame.columns],
                            F.lit(None).cast("string").alias(CORRUPT), _file_col().alias("source_file"))
    raise ValueError(f"etl.events.format must be csv, json or parquet, not {fmt!r}")


def csv_header(path: str) -> list[str]:
    """The column names on the first line of a CSV file (decompressed by its extension); [] if empty."""
    filesystem, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
    head = b""
    with filesystem.open_input_stream(inner, compression="detect") as stream:
        while b"\n" not in head and (chunk := stream.read(1 << 16)):  # the first line only
            head += chunk
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    return next(csv.reader([first]), []) if first.strip() else []


def _csv_files(spark: SparkSession, paths: list[str], required: list[str]) -> DataFrame:
    """CSV files with a header line each, every file read by its own header (files may order their columns
    differently; Spark would map them all by the first file's positions).

    Raises:
        ValueError: a file's first line does not name every ``required`` column (no header, or another
            table); the message names the file and the columns, never the line (it may be data).
    """
    by_header: dict[tuple[str, ...], list[str]] = {}
    with ThreadPoolExecutor(max_workers=min(_HEADER_READERS, max(1, len(paths)))) as pool:
        headers = list(pool.map(csv_header, paths))  # object stores: latency-bound, so in parallel
    for path, names in zip(paths, headers, strict=True):
        header = tuple(c.strip() for c in names)
        if missing := [c for c in required if c not in header]:
            raise ValueError(f"CSV file {path}: its first line does not name the column(s) {missing}; every "
                             "CSV input file needs a header line (check the etl.events.*_col settings)")
        by_header.setdefault(header, []).append(path)
    frames = [_csv_paths(spark, group, list(header)) for header, group in by_header.items()]
    return functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _csv_paths(spark: SparkSession, paths: list[str], columns: list[str]) -> DataFrame:
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*columns, CORRUPT]])
    return (spark.read.schema(schema).option("header", True).option("escape", '"').option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT).csv(paths).withColumn("source_file", _file_col())
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
        raise ValueError(f"{what} column(s) {missing} not found in the input's header or schema "
                         f"({len(frame_columns)} columns); check the etl.events.*_col settings and that every "
                         "CSV file starts with a header line")


# A CSV field boundary: a comma followed by an even number of quotes (so not inside a quoted field).
CSV_COMMA = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'


def _balanced_quotes(line: Column) -> Column:
    return (F.length(line) - F.length(F.regexp_replace(line, '"', ""))) % 2 == 0


def read_events(spark: SparkSession, path: str, cfg: EventsConfig) -> RawInteractions:
    paths = _matching(path, cfg.interactions)
    if not paths:
        raise FileNotFoundError(f"no event files matching {cfg.interactions!r} under {path}")
    required = [cfg.user_col, cfg.item_col, cfg.timestamp_col, cfg.event_type_col, cfg.value_col]
    frame = _read_any(spark, paths, cfg.format, required)
    data_cols = _data_columns(frame)
    _missing_columns(required, data_cols, "event")
    if cfg.format == "csv":
        # A malformed line is split at its field boundaries, quoted commas kept, by its file's header (the
        # user field's position); a line with unbalanced quotes cannot be split safely: its record is withheld.
        corrupt = F.col(CORRUPT)
        user_pos = _header_position(cfg.user_col)
        parts = F.when(corrupt.isNotNull(), F.when(_balanced_quotes(corrupt), F.split(corrupt, CSV_COMMA, -1))
                       .otherwise(F.array(F.lit(WITHHELD)))).otherwise(
            F.array(*[F.coalesce(F.col(c), F.lit("")) for c in data_cols]))
        user = F.when(corrupt.isNotNull(), F.when(_balanced_quotes(corrupt), F.try_element_at(parts, user_pos + 1))
                      ).otherwise(F.col(cfg.user_col))
        render = _user_field_render(",", data_cols.index(cfg.user_col))
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
        "source_file", parts.alias("raw_parts"), _parse_reason(data_cols).alias("parse_reason"),
        F.trim(user).alias("user_raw"), F.trim(F.col(cfg.item_col)).alias("item_raw"),
        F.trim(F.col(cfg.timestamp_col)).alias("ts_raw"), F.trim(F.col(cfg.event_type_col)).alias("event_raw"),
        F.trim(value).alias("value_raw"))
    return RawInteractions(out, cfg.timestamp_format, ".+", None, render)


def read_events_catalog(spark: SparkSession, path: str, cfg: EventsConfig) -> RawCatalog | None:
    paths = _matching(path, cfg.items)
    if not paths:
        return None
    raw = _read_any(spark, paths, cfg.format, [cfg.item_id_col])
    cols = _data_columns(raw)

    def opt(name: str) -> Column:
        return F.col(name) if name and name in cols else F.lit(None).cast("string")

    categories = F.filter(F.split(F.coalesce(opt(cfg.item_categories_col), F.lit("")),
                                  _regex_literal(cfg.categories_separator)), lambda g: F.trim(g) != "")
    items = raw.select(
        F.trim(opt(cfg.item_id_col)).alias("item_raw"), opt(cfg.item_title_col).alias("title"),
        opt(cfg.item_description_col).alias("description"), F.transform(categories, F.trim).alias("categories"),
        F.coalesce(opt(cfg.item_year_col), F.lit("")).alias("year_raw"), "source_file",
        F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*cols))).alias("raw_record"),
        _parse_reason(cols).alias("parse_reason"))
    return RawCatalog(items, None)


def read_events_users(spark: SparkSession, path: str, cfg: EventsConfig) -> DataFrame | None:
    paths = _matching(path, cfg.users)
    if not paths:
        return None
    raw = _read_any(spark, paths, cfg.format, [cfg.user_id_col])
    cols = _data_columns(raw)
    _missing_columns([cfg.user_id_col], cols, "user table")
    ordered = [cfg.user_id_col, *[c for c in cols if c != cfg.user_id_col]]
    # a malformed line's fields cannot be matched to the header safely (JSON, quoted CSV): its record is
    # withheld rather than risk quarantining a raw user id
    raw = raw.withColumn(CORRUPT, F.when(F.col(CORRUPT).isNotNull(), F.lit(WITHHELD)))
    return _users_frame(raw.withColumnRenamed(cfg.user_id_col, "user_raw"),
                        ["user_raw", *ordered[1:]], ",", ordered[1:])
