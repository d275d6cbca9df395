"""Quarantine reason codes: declared once here, referenced everywhere else."""

from __future__ import annotations

MALFORMED = "malformed_record"  # unparsable line or record (e.g. broken JSON or CSV quoting)
FIELD_COUNT = "wrong_field_count"
UNDECODABLE = "undecodable_bytes"
NULL_ID = "null_id"  # user or item id missing / empty
INVALID_ID = "invalid_id"  # id present but not of the source's id form (MovieLens ids are integers)
BAD_TIMESTAMP = "unparsable_timestamp"
TS_TOO_OLD = "timestamp_before_min"
TS_FUTURE = "timestamp_after_run_date"
BAD_VALUE = "unparsable_value"
VALUE_OUT_OF_RANGE = "value_out_of_range"
UNKNOWN_EVENT = "unknown_event_type"
UNKNOWN_ITEM = "item_not_in_catalog"
FIELD_TOO_LONG = "field_too_long"
BOT_USER = "bot_user"
BELOW_K_CORE = "below_k_core"
DUPLICATE_ID = "duplicate_id"  # a catalog or user-table row whose id an earlier row already has
USER_WITHOUT_EVENTS = "user_without_events"  # a user-table row whose user has no accepted interaction

ALL_REASONS: tuple[str, ...] = (
    MALFORMED, FIELD_COUNT, UNDECODABLE, NULL_ID, INVALID_ID, BAD_TIMESTAMP, TS_TOO_OLD, TS_FUTURE,
    BAD_VALUE, VALUE_OUT_OF_RANGE, UNKNOWN_EVENT, UNKNOWN_ITEM, FIELD_TOO_LONG, BOT_USER, BELOW_K_CORE,
    DUPLICATE_ID, USER_WITHOUT_EVENTS,
)

# Quarantine `entity` values.
ENTITY_INTERACTIONS = "interactions"
ENTITY_ITEMS = "items"
ENTITY_USERS = "users"
ENTITY_TAGS = "tags"
