#!/usr/bin/env bash
# recsys embed on a Spark cluster: item_embeddings (every item; cold items from text alone) and
# user_embeddings (every user with a history), with a model from the `models` table.
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse deploy/submit_embed.sh [--model-version m-...] [--set embed.KEY=VALUE]
#
# Executors load the model artifact (<lakehouse>/models/<version>/) once per Python worker and run it
# in batches (embed.batch_size) under torch.inference_mode(); Python workers are reused so the model
# stays loaded across tasks. Torch threads per worker: embed.torch_threads (match executor cores per
# Python worker). User histories are resolved against a broadcast item matrix up to
# embed.broadcast_item_matrix_max_mb, else by an explode + join.
#
# Environment: SPARK_MASTER (default yarn), DEPLOY_MODE (default cluster), RECSYS_LAKEHOUSE (required),
# PYSPARK_ENV_ARCHIVE (a packed venv with recsys + torch + transformers), DELTA_PACKAGE, EXECUTORS,
# EXECUTOR_CORES, EXECUTOR_MEMORY, DRIVER_MEMORY, SHUFFLE_PARTITIONS.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
: "${RECSYS_LAKEHOUSE:?set RECSYS_LAKEHOUSE to the lakehouse root on shared storage, e.g. s3a://bucket/lakehouse}"

args=(
  --master "${SPARK_MASTER:-yarn}"
  --deploy-mode "${DEPLOY_MODE:-cluster}"
  --name recsys-embed
  --packages "${DELTA_PACKAGE:-io.delta:delta-spark_2.13:4.0.0}"
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
  --conf spark.sql.session.timeZone=UTC
  --conf spark.sql.ansi.enabled=true
  --conf spark.sql.adaptive.enabled=true
  --conf spark.sql.execution.arrow.pyspark.enabled=true
  # Arrow batches handed to mapInPandas: a few model batches each.
  --conf spark.sql.execution.arrow.maxRecordsPerBatch=2048
  --conf spark.python.worker.reuse=true
  --conf "spark.sql.shuffle.partitions=${SHUFFLE_PARTITIONS:-400}"
  --conf "spark.executor.instances=${EXECUTORS:-10}"
  --conf "spark.executor.cores=${EXECUTOR_CORES:-4}"
  --conf "spark.executor.memory=${EXECUTOR_MEMORY:-8g}"
  --conf spark.executor.memoryOverhead=4g
  --conf "spark.driver.memory=${DRIVER_MEMORY:-4g}"
  --conf spark.executorEnv.HF_HUB_OFFLINE=1
  --conf spark.executorEnv.TRANSFORMERS_OFFLINE=1
  --conf spark.executorEnv.RECSYS_ENV=cluster
  --conf spark.yarn.appMasterEnv.RECSYS_ENV=cluster
  --conf spark.yarn.appMasterEnv.HF_HUB_OFFLINE=1
  --files "$(ls "$repo"/conf/*/*.yaml | paste -sd, -)"
)
if [ -n "${PYSPARK_ENV_ARCHIVE:-}" ]; then
  args+=(--archives "$PYSPARK_ENV_ARCHIVE#environment" --conf spark.pyspark.python=./environment/bin/python)
fi

exec spark-submit "${args[@]}" "$repo/jobs/embed.py" --env cluster --lakehouse "$RECSYS_LAKEHOUSE" "$@"
