#!/usr/bin/env bash
# recsys embed on a cluster: model artifact + item_tokens + user_histories -> item_embeddings, user_embeddings.
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse deploy/submit_embed.sh [--model-version m-...] [--set embed.KEY=VALUE]
#
# The model artifact (<lakehouse>/models/<version>/) is loaded once per Python worker (worker reuse on), so
# executors need enough memory for one copy of the encoder per core. Small Arrow batches keep the encoder's
# activations bounded. GPU executors: add spark.executor.resource.gpu.amount via SPARK_EXTRA_ARGS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export EXECUTOR_MEMORY="${EXECUTOR_MEMORY:-8g}"
export SPARK_EXTRA_ARGS="${SPARK_EXTRA_ARGS:-} --conf spark.sql.execution.arrow.maxRecordsPerBatch=2048"
exec "$here/spark-submit.sh" embed "$@"
