"""``recsys train``: fine-tune the two-tower recommender with Ray Train, fed by Petastorm.

Pins the input tables' versions, runs Ray Train (``$RAY_ADDRESS`` or a local Ray), publishes the model
to ``<lakehouse>/models/<model_version>/`` and appends a row to the ``models`` table.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from recsys.config import to_dict
from recsys.jobs.common import parse_job_args
from recsys.schemas import Tables

log = logging.getLogger("recsys.jobs.train")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys train", description=__doc__)
    for table in (Tables.TRAIN_EXAMPLES, Tables.ITEM_TOKENS, Tables.VALIDATION_TRUTH):
        parser.add_argument(f"--{table.replace('_', '-')}-version", type=int, default=None,
                            help=f"version of {table} to train on (default: latest)")
    parser.add_argument("--model-version", default=None, help="name of the new model (default: generated)")
    ctx = parse_job_args(parser, argv)
    from recsys.training.registry import record_model
    from recsys.training.trainer import describe_base_model, git_commit, train

    tc = ctx.config.train
    tokenizer = getattr(ctx.config.prepare, "tokenizer", None)
    if tokenizer is not None and tc.encoder.name_or_path != tokenizer:
        log.warning("prepare.tokenizer (%s) differs from train.encoder.name_or_path (%s): item_tokens must "
                    "come from the encoder's own tokenizer", tokenizer, tc.encoder.name_or_path)
    versions: dict[str, int | None] = {
        t: getattr(ctx.args, f"{t}_version")
        for t in (Tables.TRAIN_EXAMPLES, Tables.ITEM_TOKENS, Tables.VALIDATION_TRUTH)
    }
    result = train(ctx.store, tc, versions, ctx.args.model_version)
    record_model(ctx.store, result, describe_base_model(tc), tc.embedding_dim, git_commit(),
                 {"train": to_dict(tc), "prepare": to_dict(ctx.config.prepare)})
    log.info("model %s written to %s (best val NDCG@10 %s)", result.model_version, result.artifact_path,
             result.metrics.get("best_val_ndcg_at_10"))
    print(result.model_version)
    return 0
