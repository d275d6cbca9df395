"""Item catalog: validation, MovieLens title/year parsing, top tags and the rendered ``text`` (no actions).

The text template (``etl.text_template``) names fields in braces: ``title``, ``year``, ``genres`` (also
``categories``), ``tags``, ``description``, ``item_id``. A part in square brackets is left out when any field in it
is empty, e.g. ``"{title}[ ({year})].[ Genres: {genres}.]"``. Rendering is a Spark expression, not Python.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys.etl import reasons as R
from recsys.etl.rules import mark_duplicate_ids, normalize_id
from recsys.etl.sources import WITHHELD

TITLE_YEAR = r"^(.*?)\s*\((\d{4})\)\s*$"
_FIELD = re.compile(r"\{(\w+)\}")


def validate_catalog(items: DataFrame, id_pattern: str, max_len: int) -> DataFrame:
    """Catalog rows + ``reason`` (parse problem, over-long field, null/invalid id, duplicate id)."""
    item = F.trim(F.col("item_raw"))
    too_long = F.greatest(*[F.coalesce(F.length(c), F.lit(0)) for c in ("item_raw", "title", "description")])
    reason = (F.when(F.col("parse_reason").isNotNull(), F.col("parse_reason"))
              .when(too_long > F.lit(max_len), F.lit(R.FIELD_TOO_LONG))
              .when(item.isNull() | (item == ""), F.lit(R.NULL_ID))
              .when(~item.rlike(id_pattern), F.lit(R.INVALID_ID)))
    checked = items.withColumn("reason", reason).withColumn(
        "item_raw", F.when(F.col("reason").isNull(), normalize_id(item, id_pattern)).otherwise(item))
    return mark_duplicate_ids(checked, "item_raw", "source_file", "raw_record")


def split_title(items: DataFrame) -> DataFrame:
    """``"Toy Story (1995)"`` -> title ``Toy Story``, year 1995 (else the year column, else null)."""
    title = F.trim(F.col("title"))
    has_year = title.rlike(TITLE_YEAR)
    year_text = F.when(has_year, F.regexp_extract(title, TITLE_YEAR, 2)).otherwise(F.col("year_raw"))
    return items.withColumn("year", F.nullif(year_text, F.lit("")).try_cast("int")).withColumn(
        "title", F.when(has_year, F.regexp_extract(title, TITLE_YEAR, 1)).otherwise(title))


def validate_tags(tags: DataFrame, id_pattern: str, max_len: int) -> DataFrame:
    """Tag rows + ``reason`` (parse problem, over-long field, null/invalid item id, empty tag); ``item_raw``
    normalized and ``tag`` lower-cased and trimmed on passing rows."""
    item = F.trim(F.col("item_raw"))
    tag = F.lower(F.trim(F.col("tag")))
    too_long = F.greatest(*[F.coalesce(F.length(c), F.lit(0)) for c in ("item_raw", "tag", "user_raw")])
    reason = (F.when(F.col("parse_reason").isNotNull(), F.col("parse_reason"))
              .when(too_long > F.lit(max_len), F.lit(R.FIELD_TOO_LONG))
              .when(item.isNull() | (item == ""), F.lit(R.NULL_ID))
              .when(~item.rlike(id_pattern), F.lit(R.INVALID_ID))
              .when(tag.isNull() | (tag == ""), F.lit(R.BAD_VALUE)))
    checked = tags.withColumn("reason", reason)
    passing = F.col("reason").isNull()
    return checked.withColumn("item_raw", F.when(passing, normalize_id(item, id_pattern)).otherwise(item)) \
        .withColumn("tag", F.when(passing, tag).otherwise(F.col("tag")))


def top_tags(checked_tags: DataFrame, n: int) -> DataFrame:
    """item_raw -> ``tags``: the ``n`` most frequent tags of passing rows (:func:`validate_tags`), ties
    broken alphabetically."""
    clean = checked_tags.where(F.col("reason").isNull()).select("item_raw", "tag")
    counts = clean.groupBy("item_raw", "tag").count()
    rank = F.row_number().over(Window.partitionBy("item_raw").orderBy(F.desc("count"), "tag"))
    top = counts.withColumn("_r", rank).where(F.col("_r") <= n)
    return top.groupBy("item_raw").agg(
        F.transform(F.sort_array(F.collect_list(F.struct("_r", "tag"))), lambda s: s["tag"]).alias("tags"))


def tag_raw_record(pseudonym: Column) -> Column:
    """A rejected tag row as a CSV line with the user id replaced by ``pseudonym`` (of the raw user field).

    An unparsable line (another number of fields than the header's, or broken quoting) is withheld: its user
    field need not be the text before its first comma (a shifted or extra column), so no part of it is known
    to be free of a raw user id."""
    def quoted(c: Column) -> Column:
        text = F.coalesce(c, F.lit(""))
        needs = text.rlike('[",\n\r]')
        return F.when(needs, F.concat(F.lit('"'), F.replace(text, F.lit('"'), F.lit('""')), F.lit('"'))) \
            .otherwise(text)

    safe_user = F.coalesce(pseudonym, F.lit(""))
    parsed = F.concat_ws(",", safe_user, quoted(F.col("item_raw")), quoted(F.col("tag")),
                         quoted(F.col("timestamp_raw")))
    return F.when(F.col("corrupt_record").isNotNull(), F.lit(WITHHELD)).otherwise(parsed)


def tag_user_field() -> Column:
    """The raw user id of a parsed tag row (null for an unparsable line, whose record is withheld)."""
    return F.nullif(F.trim(F.when(F.col("corrupt_record").isNull(), F.col("user_raw"))), F.lit(""))


def _field_text(name: str) -> Column:
    columns = {
        "title": F.col("title"), "item_id": F.col("item_id"), "description": F.col("description"),
        "year": F.col("year").cast("string"),
        "genres": F.array_join(F.col("categories"), ", "), "categories": F.array_join(F.col("categories"), ", "),
        "tags": F.array_join(F.col("tags"), ", "),
    }
    if name not in columns:
        raise ValueError(f"etl.text_template: unknown field {{{name}}}; known: {sorted(columns)}")
    return F.coalesce(columns[name], F.lit(""))


def _render_plain(template: str) -> tuple[Column, list[Column]]:
    pieces: list[Column] = []
    fields: list[Column] = []
    pos = 0
    for match in _FIELD.finditer(template):
        if match.start() > pos:
            pieces.append(F.lit(template[pos:match.start()]))
        value = _field_text(match.group(1))
        pieces.append(value)
        fields.append(value)
        pos = match.end()
    if pos < len(template):
        pieces.append(F.lit(template[pos:]))
    return (F.concat(*pieces) if pieces else F.lit("")), fields


def render_text(template: str) -> Column:
    """The template as one Spark expression (see module docstring)."""
    parts: list[Column] = []
    for optional, chunk in re.findall(r"\[([^\]]*)\]|([^\[]+)", template):
        text = optional or chunk
        rendered, fields = _render_plain(text)
        if optional and fields:
            present = F.lit(True)
            for value in fields:
                present = present & (value != "")
            rendered = F.when(present, rendered).otherwise(F.lit(""))
        parts.append(rendered)
    return F.trim(F.concat(*parts)) if parts else F.lit("")
