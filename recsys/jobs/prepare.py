"""``recsys prepare``: interactions + items -> train examples, truth tables, user histories, item tokens.

Reads the latest ``interactions`` and ``items``, splits (``prepare.split``), builds the tables with the
transforms of :mod:`recsys.prepare`, and overwrites every output (re-running on the same input gives the same
tables). Prints a JSON manifest (one line, also logged as ``prepare_manifest``) with the input versions read
and the output versions written; the training job pins those versions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from recsys.config import AppConfig, ConfigError
from recsys.jobs.common import parse_job_args
from recsys.lakehouse import TableStore
from recsys.prepare import examples, layout, split, tokenize
from recsys.prepare.split import ROLE_TEST, ROLE_VALIDATION
from recsys.schemas import Col, Tables

log = logging.getLogger("recsys.prepare")

OUTPUT_TABLES = (
    Tables.TRAIN_EXAMPLES, Tables.VALIDATION_TRUTH, Tables.TEST_TRUTH, Tables.USER_HISTORIES,
    Tables.ITEM_TOKENS,
)


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="recsys prepare",
        description="Build the training tables (train_examples, validation_truth, test_truth, "
                    "user_histories, item_tokens) from the interactions and items tables.",
    )


def _write_laid_out(
    store: TableStore, frame: DataFrame, name: str, config: AppConfig, key_columns: Sequence[str],
    plan: layout.Layout | None = None,
) -> tuple[int, dict[str, Any]]:
    """Shuffle into enough partitions / row groups for every training worker and overwrite the table.

    Args:
        plan: the layout when the caller knows the row count; else one ``count()`` of ``frame`` plans it.
    """
    if plan is None:
        plan = _plan(frame.count(), config)
    shuffled = layout.shuffle(frame, config.prepare.seed, plan.partitions, key_columns)
    version = store.write(shuffled, name, mode="overwrite", row_group_rows=plan.row_group_rows)
    return version, {
        "rows": plan.rows, "row_group_rows": plan.row_group_rows, "partitions": plan.partitions,
    }


def _plan(rows: int, config: AppConfig) -> layout.Layout:
    return layout.plan_layout(rows, config.prepare.min_row_groups, config.storage.row_group_rows,
                              config.storage.max_rows_per_file)


def _write(store: TableStore, frame: DataFrame, name: str) -> int:
    return store.write(frame, name, mode="overwrite")


def run(config: AppConfig, store: TableStore) -> dict[str, Any]:
    """Build and write every output table; return the manifest.

    Raises:
        ConfigError: invalid ``prepare`` settings.
        TableNotFoundError: ``interactions`` or ``items`` is missing.
    """
    settings = config.prepare
    try:
        settings.validate()
        validation_cutoff, test_cutoff = settings.split.cutoffs()
        tokenizer_path = tokenize.resolve_model_path(settings.tokenizer)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    started = time.monotonic()
    for name in (Tables.INTERACTIONS, Tables.ITEMS):
        store.require(name)
    inputs = {name: store.version(name) for name in (Tables.INTERACTIONS, Tables.ITEMS)}
    interactions = store.read(Tables.INTERACTIONS, inputs[Tables.INTERACTIONS])
    items = store.read(Tables.ITEMS, inputs[Tables.ITEMS])
    log.info("prepare: interactions v%d, items v%d, split %s, L=%d", inputs[Tables.INTERACTIONS],
             inputs[Tables.ITEMS], settings.split.strategy, settings.history_length)

    prepared = split.assign_split(split.positive_interactions(interactions), settings.split,
                                  settings.min_user_interactions)
    history = examples.with_history(prepared, settings.history_length)
    history.persist(StorageLevel.MEMORY_AND_DISK)  # the window pass feeds three tables and their counts
    try:
        versions: dict[str, int] = {}
        layouts: dict[str, dict[str, Any]] = {}
        train = examples.train_examples(history, settings.min_history, settings.max_examples_per_user)
        versions[Tables.TRAIN_EXAMPLES], layouts[Tables.TRAIN_EXAMPLES] = _write_laid_out(
            store, train, Tables.TRAIN_EXAMPLES, config, (Col.USER_IDX, Col.TS, Col.TARGET_ITEM_IDX))
        versions[Tables.VALIDATION_TRUTH], layouts[Tables.VALIDATION_TRUTH] = _write_laid_out(
            store, examples.truth(history, ROLE_VALIDATION), Tables.VALIDATION_TRUTH, config, (Col.USER_IDX,))
        versions[Tables.TEST_TRUTH] = _write(store, examples.truth(history, ROLE_TEST), Tables.TEST_TRUTH)
        versions[Tables.USER_HISTORIES] = _write(
            store, examples.user_histories(interactions, history, settings.history_length, test_cutoff),
            Tables.USER_HISTORIES)
        # Count the items, not the tokens: counting tokens would run the tokenizer twice.
        items_plan = _plan(tokenize.tokenizable_items(items).count(), config)
        tokens = tokenize.item_tokens(items, examples.train_counts(history), tokenizer_path,
                                      settings.max_text_tokens, settings.tokenize_batch_size,
                                      partitions=items_plan.partitions)
        versions[Tables.ITEM_TOKENS], layouts[Tables.ITEM_TOKENS] = _write_laid_out(
            store, tokens, Tables.ITEM_TOKENS, config, (Col.ITEM_IDX,), items_plan)
    finally:
        history.unpersist()
    manifest = {
        "job": "prepare",
        "lakehouse": store.root,
        "inputs": inputs,
        "outputs": versions,
        "layouts": layouts,
        "split": {"strategy": settings.split.strategy,
                  "cutoff": test_cutoff.isoformat() if test_cutoff else None,
                  "validation_cutoff": validation_cutoff.isoformat() if validation_cutoff else None,
                  "min_user_interactions": settings.min_user_interactions},
        "history_length": settings.history_length,
        "tokenizer": tokenizer_path,
        "max_text_tokens": settings.max_text_tokens,
        "duration_s": round(time.monotonic() - started, 3),
    }
    log.info("prepare_manifest %s", json.dumps(manifest, sort_keys=True))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    ctx = parse_job_args(build_parser(), argv)
    manifest = run(ctx.config, ctx.store)
    print(json.dumps(manifest, sort_keys=True), flush=True)
    return 0
