"""Config section ``etl`` (conf/base/etl.yaml).

The pseudonymization key is never part of this section: it comes from ``$RECSYS_PSEUDONYM_KEY`` or from the
secret file named by ``pseudonym_key_file``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

# The fields ``etl.text_template`` may name (rendered by recsys.etl.items.render_text).
TEXT_TEMPLATE_FIELDS = ("title", "year", "genres", "categories", "tags", "description", "item_id")


def check_text_template(template: str) -> None:
    """Raise ValueError unless ``template``'s ``[...]`` parts are closed and not nested and every ``{field}`` is
    one of :data:`TEXT_TEMPLATE_FIELDS` (an unclosed ``[`` would be dropped from every item's text; a ``]``
    outside a part is plain text)."""
    depth = 0
    for pos, char in enumerate(template):
        if char == "[" and depth:
            raise ValueError(f"etl.text_template: '[' at {pos} inside another [...] part (parts do not nest)")
        if char == "[" or (char == "]" and depth):
            depth = 1 - depth
    if depth:
        raise ValueError("etl.text_template: a [...] part is not closed")
    if unknown := sorted(set(re.findall(r"\{(\w+)\}", template)) - set(TEXT_TEMPLATE_FIELDS)):
        raise ValueError(f"etl.text_template: unknown field(s) {unknown}; known: {list(TEXT_TEMPLATE_FIELDS)}")


@dataclass(frozen=True)
class ImplicitConfig:
    """Explicit rating -> implicit weight: ``rating >= min_rating`` is a positive (see recsys.etl.rules)."""

    min_rating: float = 3.5
    # "binary": positives weigh positive_weight; "rating": positives weigh rating / rating_max.
    weighting: Literal["binary", "rating"] = "binary"
    positive_weight: float = 1.0
    # Weight of accepted ratings below min_rating (kept in `interactions`; 0 = not a positive).
    negative_weight: float = 0.0


@dataclass(frozen=True)
class KCoreConfig:
    """Iterative k-core filter; 1/1 disables it. Removed rows go to quarantine (reason below_k_core)."""

    min_user_interactions: int = 1
    min_item_interactions: int = 1
    max_iterations: int = 5


@dataclass(frozen=True)
class EventsConfig:
    """Generic event logs under ``--input``: file or folder names (globs allowed) and column mappings."""

    format: Literal["csv", "json", "parquet"] = "csv"
    interactions: str = "events*"
    items: str = "items*"
    users: str = "users*"
    user_col: str = "user_id"
    item_col: str = "item_id"
    timestamp_col: str = "timestamp"
    event_type_col: str = "event_type"
    value_col: str = ""  # optional explicit value (e.g. a rating); "" = none
    # epoch_s | epoch_ms | iso | a Spark datetime pattern such as "yyyy-MM-dd HH:mm:ss"
    timestamp_format: str = "iso"
    item_id_col: str = "item_id"
    item_title_col: str = "title"
    item_description_col: str = "description"
    item_categories_col: str = "categories"
    item_year_col: str = "year"
    categories_separator: str = "|"  # of a string categories column (a JSON/Parquet array is taken as it is)
    # A CSV item catalog's quoted fields may span lines (RFC 4180: descriptions with line breaks). Each file is
    # then read by one task, and a stray quote makes the lines up to the next quote part of one field (caught
    # by max_field_length when long). Off: such a record's continuation lines are quarantined as malformed.
    # Event and user files are always read line by line (a swallowed line there could hide a raw user id).
    items_csv_multiline: bool = False
    user_id_col: str = "user_id"


@dataclass(frozen=True)
class EtlConfig:
    """ETL settings (every cleaning rule is configurable)."""

    # Defaults of `recsys etl --source/--mode` (an unknown value is a configuration error, not a full run).
    source: Literal["movielens", "events"] = "movielens"
    mode: Literal["full", "incremental"] = "full"
    # Secret file holding the HMAC key (used when $RECSYS_PSEUDONYM_KEY is unset); "" = none.
    pseudonym_key_file: str = ""
    # Create a random key file (mode 0600) when missing: local demo only.
    create_key_if_missing: bool = False
    time_grain: Literal["year", "month", "day"] = "month"  # event_period grain
    min_timestamp: str = "1995-01-01"
    rating_min: float = 0.5
    rating_max: float = 5.0
    max_field_length: int = 1000
    # Users with more events than this on any single day are quarantined as bots (reason bot_user).
    bot_max_events_per_day: int = 5000
    missing_item_policy: Literal["quarantine", "keep"] = "quarantine"  # keep: the item gets empty text
    # Generic events: event type -> weight; types not listed are quarantined (unknown_event_type).
    event_weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(
        {"view": 0.5, "click": 1.0, "add_to_cart": 2.0, "purchase": 3.0, "rating": 1.0}))
    implicit: ImplicitConfig = field(default_factory=ImplicitConfig)
    kcore: KCoreConfig = field(default_factory=KCoreConfig)
    # Item text; "[...]" parts are dropped when a field inside them is empty.
    text_template: str = "{title}[ ({year})].[ Genres: {genres}.][ Tags: {tags}.][ {description}]"
    top_tags: int = 5
    # Buckets used to assign dense indexes without a single-partition sort.
    index_buckets: int = 64
    # Rows per interactions file the write aims at: a period with more rows is split into several files (by a
    # hash of the user); smaller periods get one file each.
    target_file_rows: int = 1_000_000
    # MiB of input per task of the per-user pass and of the interactions write (at least
    # spark.sql.shuffle.partitions tasks): small enough that a task's hash aggregation fits in memory.
    input_mb_per_task: int = 8
    # User maps (about 100 bytes a user) up to this many users are broadcast to the interactions write after
    # its layout shuffle, which then carries no 64-character pseudonyms; bigger ones are joined before it,
    # partition by partition. 0: never broadcast.
    broadcast_user_map_max_users: int = 200_000
    events: EventsConfig = field(default_factory=EventsConfig)

    def __post_init__(self) -> None:
        # Event types are matched lower-cased (the events' own are lower-cased when read): so are the keys.
        weights: dict[str, float] = {}
        for name, weight in self.event_weights.items():
            key = str(name).strip().lower()
            if key in weights:
                raise ValueError(f"etl.event_weights: {name!r} names the same event type as another key "
                                 f"({key!r}; event types are matched case-insensitively)")
            weights[key] = float(weight)
        object.__setattr__(self, "event_weights", MappingProxyType(weights))
        check_text_template(self.text_template)
