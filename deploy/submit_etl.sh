#!/usr/bin/env bash
# Submit the ETL job to a cluster (YARN or Kubernetes) with spark-submit.
#
#   deploy/submit_etl.sh s3a://bucket/raw/ml-25m s3a://bucket/lakehouse [extra job args...]
#
# Environment:
#   SPARK_MASTER           yarn (default) or k8s://https://<api-server>:443
#   RUN_DATE               YYYY-MM-DD (default: today, UTC)
#   ETL_SOURCE             movielens (default) or events
#   ETL_MODE               full (default) or incremental
#   RECSYS_PSEUDONYM_KEY   the HMAC key: provide it from your secret store, never from YAML. It is passed to
#                          the driver and executors as an environment variable (YARN: appMasterEnv /
#                          executorEnv; on Kubernetes prefer spark.kubernetes.driver.secretKeyRef.* instead).
#                          spark.redaction.regex below hides it in the UI and event logs.
#   K8S_IMAGE              container image with Python 3.11 + this package's dependencies (Kubernetes only)
set -euo pipefail

INPUT=${1:?usage: $0 INPUT LAKEHOUSE [job args...]}
LAKEHOUSE=${2:?usage: $0 INPUT LAKEHOUSE [job args...]}
shift 2
: "${RECSYS_PSEUDONYM_KEY:?set RECSYS_PSEUDONYM_KEY (from your secret store)}"
SPARK_MASTER=${SPARK_MASTER:-yarn}
RUN_DATE=${RUN_DATE:-$(date -u +%F)}
cd "$(dirname "$0")/.."

# The package travels as a wheel on --py-files (pure Python; its dependencies live on the cluster image).
python -m pip wheel --no-deps -q -w .whl .
WHEEL=$(ls -t .whl/recsys-*.whl | head -1)

MASTER_ARGS=(--master "$SPARK_MASTER" --deploy-mode cluster)
if [[ "$SPARK_MASTER" == k8s://* ]]; then
  MASTER_ARGS+=(--conf "spark.kubernetes.container.image=${K8S_IMAGE:?set K8S_IMAGE}"
                --conf spark.kubernetes.driverEnv.RECSYS_PSEUDONYM_KEY="$RECSYS_PSEUDONYM_KEY")
else
  MASTER_ARGS+=(--conf spark.yarn.appMasterEnv.RECSYS_PSEUDONYM_KEY="$RECSYS_PSEUDONYM_KEY")
fi

exec spark-submit \
  "${MASTER_ARGS[@]}" \
  --name "recsys-etl-$RUN_DATE" \
  --packages io.delta:delta-spark_2.13:4.0.0 \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf "spark.redaction.regex=(?i)secret|password|token|access[.]key|pseudonym" \
  --conf spark.sql.session.timeZone=UTC \
  --conf spark.sql.ansi.enabled=true \
  --conf spark.sql.adaptive.enabled=true \
  --conf spark.sql.shuffle.partitions=400 \
  --conf spark.executorEnv.RECSYS_PSEUDONYM_KEY="$RECSYS_PSEUDONYM_KEY" \
  --driver-memory 2g --executor-memory 8g --executor-cores 4 \
  --py-files "$WHEEL" \
  jobs/etl.py \
  --env cluster \
  --source "${ETL_SOURCE:-movielens}" --mode "${ETL_MODE:-full}" \
  --input "$INPUT" --lakehouse "$LAKEHOUSE" --run-date "$RUN_DATE" "$@"
