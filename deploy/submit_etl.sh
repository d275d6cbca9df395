#!/usr/bin/env bash
# recsys etl on a cluster: raw files -> interactions, items, users, indexes, quarantine, etl_runs.
#
# Usage:
#   RECSYS_LAKEHOUSE=s3a://bucket/lakehouse RECSYS_PSEUDONYM_KEY=... \
#     deploy/submit_etl.sh --source movielens --input s3a://bucket/raw/ml-25m [--run-date YYYY-MM-DD] [--mode incremental]
#   deploy/submit_etl.sh --source events --input s3a://bucket/raw/events/2026-11-21 --mode incremental \
#     --set etl.events.format=parquet --set etl.time_grain=day
#
# The pseudonymisation key must come from a secret store: RECSYS_PSEUDONYM_KEY (YARN: passed to the driver and
# executors as environment, redacted in the UI/event logs) or, on Kubernetes, the secret recsys-pseudonym.
# Re-running the same --run-date and input replaces exactly what that run wrote (idempotent).
# Everything else (master, Delta package, image, executors): deploy/spark-submit.sh and its environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ "${SPARK_MASTER:-yarn}" != k8s://* ]]; then
  : "${RECSYS_PSEUDONYM_KEY:?set RECSYS_PSEUDONYM_KEY from your secret store (never in YAML)}"
fi
export SHUFFLE_PARTITIONS="${SHUFFLE_PARTITIONS:-2000}"
exec "$here/spark-submit.sh" etl "$@"
