"""``recsys embed``: item and user embeddings with a trained model (Spark job).

Writes ``item_embeddings`` (every item; cold items from their text alone) and ``user_embeddings`` (every
user with a history), both tagged with the model version.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from recsys.jobs.common import parse_job_args

log = logging.getLogger("recsys.jobs.embed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys embed", description=__doc__)
    parser.add_argument("--model-version", default=None,
                        help="model to embed with (default: the newest row of the models table)")
    ctx = parse_job_args(parser, argv)
    from recsys.embedding.job import run_embed

    result = run_embed(ctx.store, ctx.config.embed, ctx.args.model_version)
    log.info("embedded with %s: item_embeddings v%d, user_embeddings v%d", result.model_version,
             result.item_version, result.user_version)
    return 0
