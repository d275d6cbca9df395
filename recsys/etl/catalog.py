"""The items dimension: a batch's catalog and tag rows checked, and the ``items`` table built from them and the
table's earlier rows (DataFrame -> DataFrame, no actions).

* Catalog rows replace an item's earlier catalog fields: the newest catalog wins, item by item. Items no
  catalog of the batch names keep what they had.
* Tag rows are judged against every item the lakehouse knows (the batch's good catalog rows and the items
  other runs indexed), so a batch may tag items an earlier batch catalogued, and a tag file may come without a catalog
  file. An item's ``tags`` are the batch's most frequent tags of it when the batch tags it; otherwise it keeps
  the tags it had (a catalog delivered again without its tag file does not wipe them).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys import schemas as S
from recsys.etl import reasons as R
from recsys.etl.items import render_text, split_title, tag_raw_record, tag_user_field, validate_catalog, validate_tags
from recsys.etl.pipeline import conform, quarantine_rows
from recsys.etl.pseudonymize import pseudonymize
from recsys.etl.rules import normalize_id
from recsys.etl.settings import EtlConfig

CATALOG_FIELDS = ("title", "description", "categories", "year")
_STRINGS = "array<string>"


def checked_items(items: DataFrame, id_pattern: str, cfg: EtlConfig) -> DataFrame:
    """Catalog rows with ``reason`` (null = good) and the title/year split."""
    return split_title(validate_catalog(items, id_pattern, cfg.max_field_length))


def known_items(good_catalog: DataFrame | None, item_index: DataFrame | None, run_id: str) -> DataFrame | None:
    """``item_raw`` of every item a tag may name: the batch's good catalog rows and the items other runs indexed
    (``item_index`` as the run found it; the items a failed attempt of this same run indexed are left out, so
    a re-run judges the tags as its first attempt did)."""
    frames = [f for f in (good_catalog.select("item_raw") if good_catalog is not None else None,
                          item_index.where(F.col("first_run_id") != F.lit(run_id)).select(
                              F.col(S.Col.ITEM_ID).alias("item_raw")) if item_index is not None else None)
              if f is not None]
    return frames[0].unionByName(frames[1]) if len(frames) == 2 else (frames[0] if frames else None)


def checked_tags(tags: DataFrame, known: DataFrame | None, id_pattern: str, cfg: EtlConfig) -> DataFrame:
    """Every tag row with ``reason`` (null = used): row rules, then item_not_in_catalog for tags of items not
    in ``known`` (:func:`known_items`; None: no item is known)."""
    checked = validate_tags(tags, id_pattern, cfg.max_field_length)
    if known is None:
        return checked.withColumn("reason", F.coalesce(F.col("reason"), F.lit(R.UNKNOWN_ITEM)))
    flagged = known.distinct().withColumn("_known", F.lit(True))
    joined = checked.join(flagged, "item_raw", "left")
    unknown = F.col("reason").isNull() & F.col("_known").isNull()
    return joined.withColumn("reason", F.when(unknown, F.lit(R.UNKNOWN_ITEM)).otherwise(F.col("reason"))).drop(
        "_known")


def tag_quarantine(tags: DataFrame, key: bytes, id_pattern: str, run_id: str, run_date: dt.date) -> DataFrame:
    """Rejected tag rows (from :func:`checked_tags`); the user field of each raw record is its pseudonym, of
    the id normalized as the interactions' user ids are (``007`` and ``7`` are one user)."""
    rejected = tags.where(F.col("reason").isNotNull())
    pseudonym = pseudonymize(normalize_id(tag_user_field(), id_pattern), key)
    return quarantine_rows(rejected, R.ENTITY_TAGS, tag_raw_record(pseudonym), run_id, run_date)


def catalogued() -> Column:
    """Whether a row of the ``items`` table came with catalog fields (:func:`build_items` leaves them all empty
    for an item only the events named)."""
    return (F.col("title").isNotNull() | F.col("description").isNotNull() | F.col("year").isNotNull()
            | (F.size("categories") > 0))  # tags alone (a tag file) make no catalog


def build_items(good_catalog: DataFrame | None, batch_tags: DataFrame | None, item_index: DataFrame,
                existing_items: DataFrame | None, template: str) -> DataFrame:
    """The ``items`` table: every indexed item, with catalog fields, tags (see the module docstring) and ``text``.

    Args:
        good_catalog: the batch's good catalog rows (:func:`checked_items`), or None.
        batch_tags: ``item_raw, tags``: the batch's top tags per item (:func:`recsys.etl.items.top_tags`).
        existing_items: the ``items`` table before this run, or None.
    """
    rows = item_index.select(S.Col.ITEM_ID, S.Col.ITEM_IDX)
    if good_catalog is not None:
        rows = rows.join(good_catalog.select(F.col("item_raw").alias(S.Col.ITEM_ID), F.lit(True).alias("_new"),
                                             *[F.col(f).alias(f"_new_{f}") for f in CATALOG_FIELDS]),
                         S.Col.ITEM_ID, "left")
    if existing_items is not None:
        rows = rows.join(existing_items.select(S.Col.ITEM_ID, *[F.col(f).alias(f"_old_{f}")
                                                                for f in (*CATALOG_FIELDS, "tags")]),
                         S.Col.ITEM_ID, "left")
    if batch_tags is not None:
        rows = rows.join(batch_tags.select(F.col("item_raw").alias(S.Col.ITEM_ID), F.col("tags").alias("_tags")),
                         S.Col.ITEM_ID, "left")

    def field(name: str) -> Column:
        new = F.col(f"_new_{name}") if good_catalog is not None else None
        old = F.col(f"_old_{name}") if existing_items is not None else None
        if new is not None and old is not None:
            return F.when(F.col("_new").isNotNull(), new).otherwise(old)
        return new if new is not None else (old if old is not None else F.lit(None))

    tags = [c for c in (F.col("_tags") if batch_tags is not None else None,
                        F.col("_old_tags") if existing_items is not None else None) if c is not None]
    rows = rows.select(
        S.Col.ITEM_ID, S.Col.ITEM_IDX, field("title").cast("string").alias("title"),
        field("description").cast("string").alias("description"),
        F.coalesce(field("categories").cast(_STRINGS), F.array().cast(_STRINGS)).alias("categories"),
        field("year").cast("int").alias("year"),
        F.coalesce(*tags, F.array().cast(_STRINGS)).alias("tags"))
    rows = rows.withColumn(S.Col.TEXT, F.when(F.col("title").isNull() & F.col("description").isNull(),
                                              F.lit("")).otherwise(render_text(template)))
    return conform(rows, S.ITEMS)
