"""The embedding pipeline: model version -> item_embeddings and user_embeddings tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from recsys.embedding.settings import EmbedConfig
from recsys.embedding.spark_embed import item_embeddings, user_embeddings
from recsys.lakehouse import TableStore
from recsys.schemas import Tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedResult:
    model_version: str
    item_version: int
    user_version: int


def run_embed(store: TableStore, cfg: EmbedConfig, model_version: str | None = None) -> EmbedResult:
    """Embed every item and every user with a history; overwrite both tables (tagged with the version)."""
    from recsys.training.registry import latest_model

    version, path = latest_model(store, model_version)
    for table in (Tables.ITEM_TOKENS, Tables.ITEMS, Tables.USER_HISTORIES):
        store.require(table)
    log.info("embedding with model %s (%s)", version, path)
    items = item_embeddings(store.read(Tables.ITEM_TOKENS), store.read(Tables.ITEMS), path, version, cfg)
    item_version = store.write(items, Tables.ITEM_EMBEDDINGS, mode="overwrite")
    written = store.read(Tables.ITEM_EMBEDDINGS, item_version)
    users = user_embeddings(store.read(Tables.USER_HISTORIES), written, path, version, cfg)
    user_version = store.write(users, Tables.USER_EMBEDDINGS, mode="overwrite")
    return EmbedResult(version, item_version, user_version)
