#!/usr/bin/env bash
# Submit one recsys Spark job to a cluster. Usage:
#   deploy/spark-submit.sh <job> [job arguments...]        e.g. deploy/spark-submit.sh etl --source movielens --input s3a://raw/ml-25m
#
# Cluster settings live here (and in the environment), never in the job code: the jobs only call
# SparkSession.builder.getOrCreate() under spark-submit.
#
# Environment:
#   SPARK_MASTER        yarn (default) | k8s://https://<api-server> | spark://host:7077
#   DEPLOY_MODE         cluster (default) | client; standalone masters default to client (Spark runs Python
#                       drivers on a standalone cluster in client mode only)
#   RECSYS_LAKEHOUSE    lakehouse root on shared storage, e.g. s3a://bucket/lakehouse (required)
#   RECSYS_IMAGE        container image built from deploy/Dockerfile (Kubernetes only)
#   PYSPARK_ENV_ARCHIVE a packed venv (venv-pack) with recsys installed, for YARN/standalone executors
#   DELTA_PACKAGE       Maven coordinate of delta-spark (default io.delta:delta-spark_2.13:4.0.0)
#   EXECUTORS, EXECUTOR_CORES, EXECUTOR_MEMORY, DRIVER_MEMORY, SHUFFLE_PARTITIONS: sizing
#   RECSYS_PSEUDONYM_KEY (or a secret file named in conf/cluster/etl.yaml): pseudonymisation key; on YARN it
#                       is passed as driver/executor environment (spark.redaction.regex hides it), on
#                       Kubernetes it comes from the secret recsys-pseudonym (key: key)
#   SPARK_EXTRA_ARGS    more spark-submit arguments, whitespace-separated (e.g. "--conf a=b --conf c=d")
set -euo pipefail

job="${1:?usage: deploy/spark-submit.sh <job> [args...]}"; shift
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
[ -f "$repo/jobs/$job.py" ] || { echo "unknown job '$job' (see jobs/)" >&2; exit 2; }
: "${RECSYS_LAKEHOUSE:?set RECSYS_LAKEHOUSE to the lakehouse root on shared storage, e.g. s3a://bucket/lakehouse}"

master="${SPARK_MASTER:-yarn}"
if [[ "$master" == spark://* ]]; then deploy_mode="${DEPLOY_MODE:-client}"; else deploy_mode="${DEPLOY_MODE:-cluster}"; fi
args=(
  --master "$master"
  --deploy-mode "$deploy_mode"
  --name "recsys-$job"
  --packages "${DELTA_PACKAGE:-io.delta:delta-spark_2.13:4.0.0}"
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
  --conf spark.sql.session.timeZone=UTC
  --conf spark.sql.ansi.enabled=true
  --conf spark.sql.adaptive.enabled=true
  --conf spark.sql.execution.arrow.pyspark.enabled=true
  --conf "spark.sql.shuffle.partitions=${SHUFFLE_PARTITIONS:-2000}"
  --conf "spark.executor.instances=${EXECUTORS:-20}"
  --conf "spark.executor.cores=${EXECUTOR_CORES:-4}"
  --conf "spark.executor.memory=${EXECUTOR_MEMORY:-16g}"
  --conf spark.executor.memoryOverhead=4g
  --conf "spark.driver.memory=${DRIVER_MEMORY:-8g}"
  --conf spark.driver.maxResultSize=1g
  --conf spark.python.worker.reuse=true
  --conf "spark.redaction.regex=(?i)secret|password|token|access[.]key|pseudonym"
  --conf spark.executorEnv.HF_HUB_OFFLINE=1
  --conf spark.executorEnv.TRANSFORMERS_OFFLINE=1
)
if [[ "$master" == k8s://* ]]; then
  args+=(
    --conf "spark.kubernetes.container.image=${RECSYS_IMAGE:?set RECSYS_IMAGE (built from deploy/Dockerfile)}"
    --conf spark.kubernetes.authenticate.driver.serviceAccountName=recsys-spark
    --conf spark.kubernetes.driverEnv.RECSYS_ENV=cluster
    --conf spark.executorEnv.RECSYS_ENV=cluster
    --conf spark.kubernetes.driver.secretKeyRef.RECSYS_PSEUDONYM_KEY=recsys-pseudonym:key
  )
  entry="local:///opt/recsys/jobs/$job.py"   # inside the image
else
  archives=()
  if [ -n "${PYSPARK_ENV_ARCHIVE:-}" ]; then
    archives+=("$PYSPARK_ENV_ARCHIVE#environment")
    args+=(--conf spark.pyspark.python=./environment/bin/python)
  fi
  if [ "$deploy_mode" = cluster ]; then
    # the driver runs in a cluster container: conf/ (base + overlays, folders kept) goes as one archive,
    # unpacked in the container's working directory as recsys-conf/
    conf_zip="$(mktemp -d)/recsys-conf.zip"
    (cd "$repo/conf" && python3 -m zipfile -c "$conf_zip" */)
    archives+=("$conf_zip#recsys-conf")
    args+=(--conf spark.yarn.appMasterEnv.RECSYS_CONF_DIR=recsys-conf)
  else
    export RECSYS_CONF_DIR="${RECSYS_CONF_DIR:-$repo/conf}"  # the driver runs here
  fi
  [ ${#archives[@]} -gt 0 ] && args+=(--archives "$(IFS=,; echo "${archives[*]}")")
  args+=(--conf spark.yarn.appMasterEnv.RECSYS_ENV=cluster --conf spark.executorEnv.RECSYS_ENV=cluster
         --conf spark.yarn.appMasterEnv.HF_HUB_OFFLINE=1)
  if [ -n "${RECSYS_PSEUDONYM_KEY:-}" ]; then
    args+=(--conf "spark.yarn.appMasterEnv.RECSYS_PSEUDONYM_KEY=$RECSYS_PSEUDONYM_KEY"
           --conf "spark.executorEnv.RECSYS_PSEUDONYM_KEY=$RECSYS_PSEUDONYM_KEY")
  fi
  entry="$repo/jobs/$job.py"
fi

# shellcheck disable=SC2206
[ -n "${SPARK_EXTRA_ARGS:-}" ] && args+=(${SPARK_EXTRA_ARGS})
exec spark-submit "${args[@]}" "$entry" --env cluster --lakehouse "$RECSYS_LAKEHOUSE" "$@"
