"""Raw inputs -> standard raw frames (every value still a string; nothing validated, nothing dropped).

MovieLens layouts are detected from the files present under ``--input`` (a file or a Spark output folder of
that name both work). Interaction files are read as text lines and split here, so that malformed lines,
wrong field counts and undecodable bytes reach quarantine with their raw line. Catalog and user tables
(dimensions) use Spark's CSV/JSON/Parquet readers in PERMISSIVE mode with a corrupt-record column. Generic
event logs are read by :mod:`recsys.etl.event_sources` into the same frames.

A raw interaction frame has the columns of :data:`RAW_COLUMNS`; ``raw_parts`` holds the record's fields
and :attr:`RawInteractions.render_raw` turns them back into one string with the user field replaced by its
pseudonym (so raw user ids never reach the quarantine table).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from py4j.protocol import Py4JError
from pyarrow import fs as pafs
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.etl import reasons as R
from recsys.etl.errors import InputError
from recsys.lakehouse.filesystems import resolve_filesystem, resolve_paths

RAW_COLUMNS = ("source_file", "raw_parts", "parse_reason", "user_raw", "item_raw", "ts_raw", "event_raw",
               "value_raw")
CORRUPT = "_corrupt_record"
HEADER = "_header"  # CSV events inputs: the column names of the row's file, in its order
_HEADER_READERS = 16  # CSV first lines read at once by the driver
# Extensions of Hadoop codecs whose files pyarrow cannot decode (Hadoop's own block framing)
_HADOOP_FRAMED = (".deflate", ".snappy", ".lz4")
WITHHELD = "<record withheld: its fields cannot be told apart safely and one may be a user id>"
_WITHHELD_PREFIX = "<record withheld"
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
    """``items`` (or None without a catalog file): item_raw, title, description, categories (array), year_raw,
    source_file, raw_record, parse_reason; ``tags`` (or None without a tag file): every row of the tag file as
    item_raw, tag, user_raw, timestamp_raw, source_file, corrupt_record (the line when unparsable) and
    parse_reason."""

    items: DataFrame | None
    tags: DataFrame | None


def list_entries(path: str) -> list[pafs.FileInfo]:
    """The entries directly under ``path`` (local path or URI), by name; hidden ones (``.``, ``_``: Spark's
    ``_SUCCESS``, checksum files) left out."""
    filesystem, base = resolve_filesystem(path)
    infos = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted((i for i in infos if not i.base_name.startswith((".", "_"))), key=lambda i: i.base_name)


def list_names(path: str) -> list[str]:
    """Names of the entries directly under ``path`` (local path or URI)."""
    return [i.base_name for i in list_entries(path)]


def join_path(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _first_line(filesystem: pafs.FileSystem, path: str) -> str:
    """The first line of a file, decompressed by its extension (plain, .gz, .bz2, .zst)."""
    head = b""
    with filesystem.open_input_stream(path, compression="detect") as stream:
        while b"\n" not in head and (chunk := stream.read(1 << 16)):  # the first line only
            head += chunk
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")


def _hadoop_first_line(spark: SparkSession, path: str) -> str:
    """The first line of a file through the Hadoop filesystem and codec Spark's readers use for it."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    # a URI as Spark gives it is percent-encoded (parsed as a URI); a path or raw URI is taken as it is
    try:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(path)) if "://" in path else None
    except Py4JError:  # not a valid encoded URI (e.g. a raw space)
        hadoop_path = None
    hadoop_path = hadoop_path or jvm.org.apache.hadoop.fs.Path(path)
    stream = hadoop_path.getFileSystem(conf).open(hadoop_path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hadoop_path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        return str(reader.readLine() or "")
    finally:
        reader.close()


def csv_headers(paths: Sequence[str], spark: SparkSession | None = None) -> list[list[str]]:
    """The column names on the first line of each CSV file ([] for an empty one), read in parallel (on object
    stores it is latency-bound), the files of one store through one filesystem.

    Files compressed in a Hadoop framing pyarrow cannot decode (``.deflate``, ``.snappy``, ``.lz4``: what
    Spark's own CSV writer produces with those codecs) are read through ``spark``'s Hadoop codecs, as Spark's
    reader will read them.

    Raises:
        InputError: such a file and no ``spark``.
    """
    framed = [p.lower().endswith(_HADOOP_FRAMED) for p in paths]
    if any(framed) and spark is None:
        raise InputError(f"CSV file {paths[framed.index(True)]}: its codec is only readable through Spark "
                         "(Hadoop framing)")
    plain = [p for p, f in zip(paths, framed, strict=True) if not f]
    filesystem, inner = resolve_paths(plain) if plain else (None, [])
    where = dict(zip(plain, inner, strict=True))

    def header(path: str) -> list[str]:
        if path in where:
            assert filesystem is not None
            first = _first_line(filesystem, where[path])
        else:
            assert spark is not None
            first = _hadoop_first_line(spark, path)
        first = first.lstrip("\ufeff")
        return next(csv.reader([first]), []) if first.strip() else []

    with ThreadPoolExecutor(max_workers=min(_HEADER_READERS, max(1, len(paths)))) as pool:
        return list(pool.map(header, paths))


def require_header(frame: DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`~recsys.etl.errors.InputError` unless every file ``frame`` reads starts with the header
    line ``columns``.

    Spark's CSV reader with ``header`` drops each file's first line whatever it holds (a headerless file
    would lose its first row silently, and Spark would log that row's values, maybe user ids, as a
    mismatched header). The message names the file and the expected columns, never the line.
    """
    files = sorted(frame.inputFiles())
    for path, names in zip(files, csv_headers(files, frame.sparkSession), strict=True):
        if [c.strip() for c in names] != list(columns):
            raise InputError(f"CSV file {path}: its first line is not the header {','.join(columns)}; every "
                             "file of this table needs that header line")


def detect_layout(path: str) -> Layout:
    """The MovieLens layout whose ratings file is present under ``path``.

    Raises:
        InputError: no known layout; the message lists what was found.
    """
    names = set(list_names(path))
    for layout in LAYOUTS:
        if layout.ratings in names:
            return layout
    raise InputError(
        f"no MovieLens ratings file (ratings.csv, ratings.dat or u.data) under {path}; found {sorted(names)}")


def file_col() -> Column:
    return F.col("_metadata.file_path")


def _text_lines(spark: SparkSession, path: str, encoding: str, header: str | None) -> DataFrame:
    """Lines of text files with source_file; bytes decoded, undecodable lines flagged."""
    lines = spark.read.text(path).select(F.col("value").alias("line"), file_col().alias("source_file"))
    if encoding == LATIN1:
        lines = lines.select(F.decode(F.col("line").cast("binary"), LATIN1).alias("line"), "source_file",
                             F.lit(True).alias("decodable"))
    else:
        lines = lines.select(F.make_valid_utf8("line").alias("line"), "source_file",
                             F.is_valid_utf8("line").alias("decodable"))
    if header is not None:
        lines = lines.where(F.col("line") != F.lit(header))  # Hadoop's line reader drops a UTF-8 BOM
    return lines


def withhold_miscounted(parts: Column, expected: Column | int) -> Column:
    """``parts`` (a record's fields), or for a record with another number of fields than ``expected`` (its
    layout's or its file header's) one part saying so: the user field's position is then unknown (a shifted or
    extra column), so no field can be pseudonymized safely and the record is withheld from quarantine."""
    expected_col = expected if isinstance(expected, Column) else F.lit(expected)
    return F.when(F.size(parts) != expected_col, F.array(miscounted_message(parts, expected_col))).otherwise(parts)


def miscounted_message(parts: Column, expected: Column) -> Column:
    """The text that stands for a record withheld by :func:`withhold_miscounted`."""
    return F.concat(F.lit(f"{_WITHHELD_PREFIX}: "), F.size(parts).cast("string"), F.lit(" fields where "),
                    expected.cast("string"),
                    F.lit(" were expected, so the user field cannot be told apart and one may be a user id>"))


def is_withheld(parts: Column) -> Column:
    """Whether ``parts`` is a withheld record (:data:`WITHHELD`, :func:`withhold_miscounted`)."""
    return (F.size(parts) == 1) & parts[0].startswith(_WITHHELD_PREFIX)


def _delimited_render(separator: str, user_position: int) -> Callable[[Column], Column]:
    def render(pseudonym: Column) -> Column:
        replaced = F.transform(
            F.col("raw_parts"),
            lambda x, i: F.when(i == F.lit(user_position), F.coalesce(pseudonym, F.lit(""))).otherwise(x))
        return F.when(is_withheld(F.col("raw_parts")), F.col("raw_parts")[0]).otherwise(
            F.array_join(replaced, separator))
    return render


def user_field_render(separator: str, user_position: int) -> Callable[[Column], Column]:
    """Like :func:`_delimited_render`, and every field equal to the row's ``user_raw`` is replaced too (the
    user field of a malformed line with the right number of fields is found by its own file's header, which
    may order the columns differently from ``user_position``'s)."""
    def render(pseudonym: Column) -> Column:
        user = F.col("user_raw")
        replaced = F.transform(
            F.col("raw_parts"),
            lambda x, i: F.when((i == F.lit(user_position)) | (user.isNotNull() & (user != "") & (F.trim(x) == user)),
                                F.coalesce(pseudonym, F.lit(""))).otherwise(x))
        return F.when(is_withheld(F.col("raw_parts")), F.col("raw_parts")[0]).otherwise(
            F.array_join(replaced, separator))
    return render


def _split_interactions(lines: DataFrame, separator: str, n_fields: int) -> DataFrame:
    """``user, item, value, timestamp`` lines (all MovieLens rating layouts) -> raw frame."""
    parts = F.split(F.col("line"), regex_literal(separator), -1)
    frame = lines.select("source_file", "decodable", parts.alias("raw_parts"))
    reason = (F.when(~F.col("decodable"), F.lit(R.UNDECODABLE))
              .when(F.size("raw_parts") != n_fields, F.lit(R.FIELD_COUNT)))
    return frame.select(
        "source_file", withhold_miscounted(F.col("raw_parts"), n_fields).alias("raw_parts"),
        reason.alias("parse_reason"),
        F.trim(F.try_element_at("raw_parts", F.lit(1))).alias("user_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(2))).alias("item_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(4))).alias("ts_raw"),
        F.lit(None).cast("string").alias("event_raw"),
        F.trim(F.try_element_at("raw_parts", F.lit(3))).alias("value_raw"),
    )


def regex_literal(text: str) -> str:
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
    return reader.csv(path).withColumn("source_file", file_col())


def parse_reason(columns: list[str]) -> Column:
    """malformed_record for a corrupt record, undecodable_bytes when a field (a string or an array of strings)
    holds the replacement character."""
    return (F.when(F.col(CORRUPT).isNotNull(), F.lit(R.MALFORMED))
            .when(F.concat_ws("", *[F.col(c) for c in columns]).contains("\ufffd"),  # skips nulls
                  F.lit(R.UNDECODABLE)))


def read_movielens_catalog(spark: SparkSession, path: str, layout: Layout) -> RawCatalog | None:
    """The movie and tag files present under ``path`` (None: neither; a tag file may come alone)."""
    names = set(list_names(path))
    items = _movielens_movies(spark, path, layout) if layout.movies in names else None
    tags = _movielens_tags(spark, join_path(path, layout.tags)) if layout.tags and layout.tags in names else None
    return None if items is None and tags is None else RawCatalog(items, tags)


def _movielens_movies(spark: SparkSession, path: str, layout: Layout) -> DataFrame:
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
        if latest:
            require_header(raw, ["movieId", "title", "genres"])
        genres = F.filter(F.split(F.coalesce(F.col("genres"), F.lit("")), r"\|"),
                          lambda g: (g != "") & (g != "(no genres listed)"))
        year = F.lit("")
    items = raw.select(
        F.trim("item_raw").alias("item_raw"), F.col("title").alias("title"),
        F.lit(None).cast("string").alias("description"), genres.alias("categories"), year.alias("year_raw"),
        "source_file",
        F.coalesce(F.col(CORRUPT), F.concat_ws(sep, *[F.coalesce(F.col(c), F.lit("")) for c in cols]))
        .alias("raw_record"),
        parse_reason(cols).alias("parse_reason"))
    return items


def _movielens_tags(spark: SparkSession, tags_path: str) -> DataFrame:
    """``tags.csv`` (ml-latest layouts) -> the tag rows of :class:`RawCatalog`."""
    tag_columns = ["userId", "movieId", "tag", "timestamp"]
    tag_raw = _csv(spark, tags_path, tag_columns, ",", "UTF-8", header=True, quoted=True)
    require_header(tag_raw, tag_columns)
    return tag_raw.select(
        F.col("movieId").alias("item_raw"), "tag", F.col("userId").alias("user_raw"),
        F.col("timestamp").alias("timestamp_raw"), "source_file", F.col(CORRUPT).alias("corrupt_record"),
        parse_reason(tag_columns).alias("parse_reason"))


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
    return users_frame(raw, cols, sep, ["gender", "age", "occupation"])


def users_frame(raw: DataFrame, cols: list[str], sep: str, attributes: list[str]) -> DataFrame:
    attrs = F.map_from_arrays(F.array(*[F.lit(a) for a in attributes]),
                              F.array(*[F.col(a).cast("string") for a in attributes]))
    corrupt = F.col(CORRUPT)
    fields = F.split(corrupt, regex_literal(sep), -1)
    miscounted = F.size(fields) != F.lit(len(cols))  # the user field may have moved: withheld
    parts = (F.when(corrupt == F.lit(WITHHELD), F.array(F.lit(""), F.lit(WITHHELD)))  # no user field
             .when(corrupt.isNotNull() & miscounted,
                   F.array(F.lit(""), miscounted_message(fields, F.lit(len(cols)))))
             .when(corrupt.isNotNull(), fields)
             .otherwise(F.array(*[F.coalesce(F.col(c).cast("string"), F.lit("")) for c in cols])))
    return raw.select(
        F.trim(F.when(F.col(CORRUPT).isNotNull(), F.try_element_at(parts, F.lit(1))).otherwise(
            F.col(cols[0]).cast("string"))).alias("user_raw"),
        attrs.alias("attributes"), parts.alias("raw_parts"), F.lit(sep).alias("raw_sep"), "source_file",
        parse_reason(cols).alias("parse_reason"))


# ---------------------------------------------------------------------------------------------- events
