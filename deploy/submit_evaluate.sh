#!/usr/bin/env bash
# recsys evaluate on a cluster: full-ranking metrics of the model and the baselines (most-popular, implicit
# ALS tuned on validation, item-kNN) on the test split -> metrics table + reports/<run_id>/ in the lakehouse.
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse deploy/submit_evaluate.sh [--run-id ID] [--set evaluate.KEY=VALUE ...]
# e.g. deploy/submit_evaluate.sh --run-id weekly-2024-06-01 --set 'evaluate.baselines=[most_popular,als]'
#
# ALS checkpoints nothing (checkpointInterval -1); with large grids raise EXECUTOR_MEMORY. Item-kNN bounds
# its co-occurrence work with evaluate.knn_max_user_items per user.
# Everything else (master, Delta package, image, executors): deploy/spark-submit.sh and its environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/spark-submit.sh" evaluate "$@"
