"""Table names, column names and table schemas: declared here once, used everywhere.

Conventions:
* ``*_idx`` columns are dense 0-based int indexes assigned by the ETL and stable across runs.
* ``user_id`` is always the keyed pseudonym (HMAC-SHA256 hex) of the raw user id, never the raw id.
* History arrays are left-padded with :data:`PAD_ITEM` to a fixed length, most recent item last.
* Timestamps are UTC ``timestamp`` columns.
"""

from __future__ import annotations

from pyspark.sql import types as T

PAD_ITEM = -1


class Col:
    """Column names shared by several tables."""

    USER_ID = "user_id"
    USER_IDX = "user_idx"
    ITEM_ID = "item_id"
    ITEM_IDX = "item_idx"
    TS = "ts"
    EVENT_DATE = "event_date"
    EVENT_PERIOD = "event_period"
    EVENT_TYPE = "event_type"
    WEIGHT = "weight"
    RATING = "rating"
    SOURCE = "source"
    RUN_ID = "run_id"
    RUN_DATE = "run_date"
    TITLE = "title"
    TEXT = "text"
    HISTORY = "history"
    HISTORY_LEN = "history_len"
    TARGET_ITEM_IDX = "target_item_idx"
    INPUT_IDS = "input_ids"
    ATTENTION_MASK = "attention_mask"
    EMBEDDING = "embedding"
    MODEL_VERSION = "model_version"
    SCORE = "score"
    RANK = "rank"


class Tables:
    """Table names under the lakehouse root."""

    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"
    USER_INDEX = "user_index"
    ITEM_INDEX = "item_index"
    QUARANTINE = "quarantine"
    ETL_RUNS = "etl_runs"
    TRAIN_EXAMPLES = "train_examples"
    VALIDATION_TRUTH = "validation_truth"
    TEST_TRUTH = "test_truth"
    USER_HISTORIES = "user_histories"
    ITEM_TOKENS = "item_tokens"
    MODELS = "models"
    ITEM_EMBEDDINGS = "item_embeddings"
    USER_EMBEDDINGS = "user_embeddings"
    RECOMMENDATIONS = "recommendations"
    METRICS = "metrics"


def _f(name: str, dtype: T.DataType) -> T.StructField:
    return T.StructField(name, dtype, True)


_INT_ARRAY = T.ArrayType(T.IntegerType(), True)
_FLOAT_ARRAY = T.ArrayType(T.FloatType(), True)
_STR_ARRAY = T.ArrayType(T.StringType(), True)

INTERACTIONS = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.USER_ID, T.StringType()),
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.ITEM_ID, T.StringType()),
    _f(Col.TS, T.TimestampType()),
    _f(Col.EVENT_DATE, T.DateType()),
    _f(Col.EVENT_TYPE, T.StringType()),
    _f(Col.WEIGHT, T.FloatType()),
    _f(Col.RATING, T.FloatType()),
    _f(Col.SOURCE, T.StringType()),
    _f(Col.RUN_ID, T.StringType()),
    _f(Col.EVENT_PERIOD, T.StringType()),  # partition column; grain from config (year, month, day)
])

ITEMS = T.StructType([
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.ITEM_ID, T.StringType()),
    _f(Col.TITLE, T.StringType()),
    _f("description", T.StringType()),
    _f("categories", _STR_ARRAY),
    _f("year", T.IntegerType()),
    _f("tags", _STR_ARRAY),
    _f(Col.TEXT, T.StringType()),
])

USERS = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.USER_ID, T.StringType()),
    _f("first_ts", T.TimestampType()),
    _f("last_ts", T.TimestampType()),
    _f("num_interactions", T.LongType()),
    _f("attributes", T.MapType(T.StringType(), T.StringType(), True)),
])

USER_INDEX = T.StructType([
    _f(Col.USER_ID, T.StringType()),
    _f(Col.USER_IDX, T.IntegerType()),
    _f("first_run_id", T.StringType()),
])

ITEM_INDEX = T.StructType([
    _f(Col.ITEM_ID, T.StringType()),
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f("first_run_id", T.StringType()),
])

QUARANTINE = T.StructType([
    _f(Col.RUN_ID, T.StringType()),
    _f("entity", T.StringType()),       # interactions | items | users
    _f("source_file", T.StringType()),
    _f("reason", T.StringType()),       # a code from recsys.etl reason codes
    _f("detail", T.StringType()),
    _f("raw_record", T.StringType()),   # the raw line/record; raw user ids are replaced by their pseudonym
    _f(Col.RUN_DATE, T.DateType()),     # partition column
])

ETL_RUNS = T.StructType([
    _f(Col.RUN_ID, T.StringType()),
    _f(Col.RUN_DATE, T.DateType()),
    _f("mode", T.StringType()),
    _f(Col.SOURCE, T.StringType()),
    _f("input_paths", _STR_ARRAY),
    _f("input_rows", T.LongType()),
    _f("accepted", T.LongType()),
    _f("quarantined", T.LongType()),
    _f("duplicates_removed", T.LongType()),
    _f("quarantine_by_reason", T.MapType(T.StringType(), T.LongType(), True)),
    _f("users", T.LongType()),
    _f("items", T.LongType()),
    _f("invariant_ok", T.BooleanType()),
    _f("started_at", T.TimestampType()),
    _f("duration_s", T.DoubleType()),
])

TRAIN_EXAMPLES = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.HISTORY, _INT_ARRAY),
    _f(Col.HISTORY_LEN, T.IntegerType()),
    _f(Col.TARGET_ITEM_IDX, T.IntegerType()),
    _f(Col.TS, T.TimestampType()),
    _f(Col.WEIGHT, T.FloatType()),
])

# validation_truth and test_truth: the held-out item of each user, and the history the model may use
# to predict it (everything strictly before it).
TRUTH = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.TS, T.TimestampType()),
    _f(Col.HISTORY, _INT_ARRAY),
    _f(Col.HISTORY_LEN, T.IntegerType()),
])

# Latest history of every user, as used for scoring; in evaluation runs it ends before the test item.
USER_HISTORIES = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.USER_ID, T.StringType()),
    _f(Col.HISTORY, _INT_ARRAY),
    _f(Col.HISTORY_LEN, T.IntegerType()),
    _f("seen_items", _INT_ARRAY),  # every item the user interacted with before the cutoff (for exclusion)
])

ITEM_TOKENS = T.StructType([
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.INPUT_IDS, _INT_ARRAY),
    _f(Col.ATTENTION_MASK, _INT_ARRAY),
    _f("train_count", T.LongType()),  # training interactions of the item (0 = cold)
])

MODELS = T.StructType([
    _f(Col.MODEL_VERSION, T.StringType()),
    _f("created_at", T.TimestampType()),
    _f("artifact_path", T.StringType()),
    _f("base_model", T.StringType()),
    _f("embedding_dim", T.IntegerType()),
    _f("metrics", T.MapType(T.StringType(), T.DoubleType(), True)),
    _f("data_versions", T.MapType(T.StringType(), T.LongType(), True)),
    _f("git_commit", T.StringType()),
    _f("config_json", T.StringType()),
])

ITEM_EMBEDDINGS = T.StructType([
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.ITEM_ID, T.StringType()),
    _f(Col.EMBEDDING, _FLOAT_ARRAY),
    _f("is_cold", T.BooleanType()),
    _f(Col.MODEL_VERSION, T.StringType()),
])

USER_EMBEDDINGS = T.StructType([
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.USER_ID, T.StringType()),
    _f(Col.EMBEDDING, _FLOAT_ARRAY),
    _f(Col.MODEL_VERSION, T.StringType()),
])

RECOMMENDATIONS = T.StructType([
    _f(Col.USER_ID, T.StringType()),
    _f(Col.USER_IDX, T.IntegerType()),
    _f(Col.RANK, T.IntegerType()),
    _f(Col.ITEM_ID, T.StringType()),
    _f(Col.ITEM_IDX, T.IntegerType()),
    _f(Col.SCORE, T.FloatType()),
    _f("explanation_item_id", T.StringType()),
    _f("explanation_item_idx", T.IntegerType()),
    _f("explanation_similarity", T.FloatType()),
    _f(Col.MODEL_VERSION, T.StringType()),
    _f(Col.RUN_DATE, T.DateType()),  # partition column
])

METRICS = T.StructType([
    _f(Col.RUN_ID, T.StringType()),
    _f("model", T.StringType()),
    _f("metric", T.StringType()),
    _f("k", T.IntegerType()),
    _f("value", T.DoubleType()),
    _f("split", T.StringType()),
    _f("users_evaluated", T.LongType()),
    _f("created_at", T.TimestampType()),
])

PARTITION_COLUMNS: dict[str, tuple[str, ...]] = {
    Tables.INTERACTIONS: (Col.EVENT_PERIOD,),
    Tables.QUARANTINE: (Col.RUN_DATE,),
    Tables.RECOMMENDATIONS: (Col.RUN_DATE,),
}

# Columns with about one value per row of a file (pseudonyms, per-user indexes, timestamps): written without
# Parquet's dictionary encoding, which gains nothing on them and cost about a sixth of the interactions write
# (benchmarks/bench_etl.py: 16.6 s without it, about 20 s with it).
NO_DICTIONARY_COLUMNS: dict[str, tuple[str, ...]] = {
    Tables.INTERACTIONS: (Col.USER_ID, Col.USER_IDX, Col.TS),
}

SCHEMAS: dict[str, T.StructType] = {
    Tables.INTERACTIONS: INTERACTIONS,
    Tables.ITEMS: ITEMS,
    Tables.USERS: USERS,
    Tables.USER_INDEX: USER_INDEX,
    Tables.ITEM_INDEX: ITEM_INDEX,
    Tables.QUARANTINE: QUARANTINE,
    Tables.ETL_RUNS: ETL_RUNS,
    Tables.TRAIN_EXAMPLES: TRAIN_EXAMPLES,
    Tables.VALIDATION_TRUTH: TRUTH,
    Tables.TEST_TRUTH: TRUTH,
    Tables.USER_HISTORIES: USER_HISTORIES,
    Tables.ITEM_TOKENS: ITEM_TOKENS,
    Tables.MODELS: MODELS,
    Tables.ITEM_EMBEDDINGS: ITEM_EMBEDDINGS,
    Tables.USER_EMBEDDINGS: USER_EMBEDDINGS,
    Tables.RECOMMENDATIONS: RECOMMENDATIONS,
    Tables.METRICS: METRICS,
}


def schema_markdown() -> str:
    """Markdown description of every table (README's table reference is generated from this)."""
    lines = []
    for name, schema in SCHEMAS.items():
        parts = PARTITION_COLUMNS.get(name, ())
        lines.append(f"#### `{name}`" + (f" (partitioned by `{', '.join(parts)}`)" if parts else ""))
        lines.append("")
        lines.append("| column | type |")
        lines.append("| --- | --- |")
        lines.extend(f"| `{f.name}` | `{f.dataType.simpleString()}` |" for f in schema.fields)
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_markdown())
