#!/usr/bin/env bash
# recsys score on a cluster: item_embeddings + user_embeddings + user_histories -> recommendations
# (the run-date partition is replaced, so re-running a date is idempotent).
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse deploy/submit_score.sh [--run-date YYYY-MM-DD] [--set score.KEY=VALUE ...]
# e.g. deploy/submit_score.sh --run-date 2024-06-01 --set score.top_k=50 --set score.exclude_items_table=unavailable
#
# Sizing: each task scores score.user_batch_size users x score.item_chunk_size items at a time with one BLAS
# thread (score.blas_threads), so give every executor core ~1 GB of Python memory beyond the item matrix.
# Item matrices above score.broadcast_max_bytes (default 128 MiB) are scored in blocks (cross-join of user
# batches and item blocks, exact merge), so the catalog size is not bounded by executor memory.
# Everything else (master, Delta package, image, executors): deploy/spark-submit.sh and its environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export EXECUTOR_MEMORY="${EXECUTOR_MEMORY:-8g}"
exec "$here/spark-submit.sh" score "$@"
