"""Synthetic interactions with learnable structure, generated in Spark (no driver-side data).

* Items belong to one of ``topics`` latent topics (``item % topics``); their popularity is Zipf-like
  (``item = floor(I * u**3)`` over a uniform ``u``), so a few items are very popular.
* Each user has a preferred topic (a hash of the user id) and picks an item from it with probability
  ``1 - explore``, otherwise a popular item; ratings are higher for items of the preferred topic.
* Item titles, descriptions and genres come from per-topic vocabularies, so the text is informative.

Every random number is a hash of (row id, seed, salt): the output is the same for a seed whatever the
number of partitions or executors.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Animation",
          "Thriller", "Western", "Musical", "Crime")
VOCABULARY = (
    ("explosion", "chase", "hero", "mission", "battle", "agent"),
    ("wedding", "prank", "roommate", "holiday", "road trip", "mixup"),
    ("family", "secret", "letter", "trial", "winter", "farewell"),
    ("haunted", "cabin", "curse", "shadow", "scream", "ritual"),
    ("paris", "summer", "kiss", "promise", "dance", "letters"),
    ("galaxy", "robot", "android", "planet", "wormhole", "colony"),
    ("ocean", "history", "climate", "journey", "wildlife", "city"),
    ("dragon", "kingdom", "toy", "forest", "magic", "friendship"),
    ("heist", "witness", "alibi", "conspiracy", "detective", "vault"),
    ("frontier", "outlaw", "saloon", "sheriff", "canyon", "ranch"),
    ("broadway", "melody", "stage", "chorus", "rhythm", "band"),
    ("mob", "cartel", "undercover", "precinct", "ransom", "syndicate"),
)
START = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)  # aware: the same epoch seconds in every zone
SPAN_S = 8 * 365 * 86400


@dataclass(frozen=True)
class SynthSpec:
    users: int
    items: int
    interactions: int
    seed: int = 42
    topics: int = 12
    explore: float = 0.3
    partitions: int = 0  # 0 = Spark's default parallelism


def _uniform(row: Column, seed: int, salt: int) -> Column:
    """A uniform number in [0, 1) from a hash of (row, seed, salt)."""
    return F.pmod(F.xxhash64(row, F.lit(seed), F.lit(salt)), F.lit(2_147_483_647)) / F.lit(2_147_483_647.0)


def synth_interactions(spark: SparkSession, spec: SynthSpec) -> DataFrame:
    """Columns user (0-based), item (0-based), rating (0.5..5.0), ts (epoch seconds)."""
    parts = spec.partitions or spark.sparkContext.defaultParallelism
    rows = spark.range(0, spec.interactions, numPartitions=max(1, parts))
    rid = F.col("id")
    topics = min(spec.topics, len(GENRES))
    user = F.floor(F.lit(spec.users) * F.pow(_uniform(rid, spec.seed, 1), 1.3)).cast("long")
    taste = F.pmod(F.xxhash64(F.col("user"), F.lit(spec.seed)), F.lit(topics))
    popular = F.floor(F.lit(spec.items) * F.pow(_uniform(rid, spec.seed, 3), 3.0)).cast("long")
    per_topic = max(1, spec.items // topics)
    in_topic = (F.floor(F.lit(per_topic) * F.pow(_uniform(rid, spec.seed, 4), 2.0)) * topics
                + F.col("taste")).cast("long")
    explore = _uniform(rid, spec.seed, 2) < F.lit(spec.explore)
    item = F.when(explore | (in_topic >= spec.items), popular).otherwise(in_topic)
    match = (F.col("item") % topics) == F.col("taste")
    noise = _uniform(rid, spec.seed, 5) * 2.0 - 1.0
    raw_rating = F.when(match, F.lit(4.2)).otherwise(F.lit(2.6)) + noise
    rating = F.least(F.lit(5.0), F.greatest(F.lit(0.5), F.round(raw_rating * 2) / 2))
    ts = F.lit(int(START.timestamp())) + F.floor(_uniform(rid, spec.seed, 6) * SPAN_S).cast("long")
    return (rows.withColumn("user", user).withColumn("taste", taste).withColumn("item", item)
            .select("user", "item", rating.alias("rating"), ts.alias("ts")))


def synth_items(spark: SparkSession, spec: SynthSpec) -> DataFrame:
    """Columns item (0-based), title, year, description, genres (``|``-separated)."""
    topics = min(spec.topics, len(GENRES))
    rows = spark.range(0, spec.items, numPartitions=max(1, min(8, spec.items // 50_000 + 1)))
    topic = (F.col("id") % topics).cast("int")
    words = F.array(*[F.array(*[F.lit(w) for w in group]) for group in VOCABULARY[:topics]])
    genres = F.array(*[F.lit(g) for g in GENRES[:topics]])

    def word(salt: int) -> Column:
        group = F.element_at(words, topic + 1)
        return F.element_at(group, (F.pmod(F.xxhash64("id", F.lit(spec.seed), F.lit(salt)), F.lit(6)) + 1)
                            .cast("int"))

    title = F.initcap(F.concat_ws(" ", word(11), word(12), F.col("id").cast("string")))
    second = F.element_at(genres, (F.pmod(F.col("id") * 7 + 3, F.lit(topics)) + 1).cast("int"))
    return rows.select(
        F.col("id").alias("item"), title.alias("title"), (F.lit(1950) + F.col("id") % 70).alias("year"),
        F.concat_ws(" ", F.lit("A story of"), word(13), F.lit("and"), word(14), F.lit("with a"), word(15))
        .alias("description"),
        F.array_join(F.array_distinct(F.array(F.element_at(genres, topic + 1), second)), "|").alias("genres"))


def write_dataset(spark: SparkSession, spec: SynthSpec, output: str, fmt: str = "movielens") -> None:
    """Write MovieLens-layout (ratings.csv, movies.csv) or events-layout (events.csv, items.csv) folders."""
    inter = synth_interactions(spark, spec)
    items = synth_items(spark, spec)
    base = output.rstrip("/")
    if fmt == "movielens":
        ratings = inter.select((F.col("user") + 1).alias("userId"), (F.col("item") + 1).alias("movieId"),
                               F.format_number("rating", 1).alias("rating"), F.col("ts").alias("timestamp"))
        ratings.write.mode("overwrite").option("header", True).csv(f"{base}/ratings.csv")
        movies = items.select((F.col("item") + 1).alias("movieId"),
                              F.format_string("%s (%d)", "title", "year").alias("title"), "genres")
        movies.coalesce(1).write.mode("overwrite").option("header", True).csv(f"{base}/movies.csv")
    elif fmt == "events":
        kind = F.when(F.col("rating") >= 4.5, F.lit("purchase")).when(F.col("rating") >= 3.5, F.lit("click")) \
            .otherwise(F.lit("view"))
        events = inter.select(F.format_string("u%d", "user").alias("user_id"),
                              F.format_string("i%d", "item").alias("item_id"),
                              F.date_format(F.timestamp_seconds("ts"), "yyyy-MM-dd'T'HH:mm:ss").alias("timestamp"),
                              kind.alias("event_type"))
        events.write.mode("overwrite").option("header", True).csv(f"{base}/events.csv")
        catalog = items.select(F.format_string("i%d", "item").alias("item_id"), "title", "description",
                               F.col("genres").alias("categories"), "year")
        catalog.coalesce(1).write.mode("overwrite").option("header", True).csv(f"{base}/items.csv")
    else:
        raise ValueError(f"--format must be movielens or events, not {fmt!r}")
