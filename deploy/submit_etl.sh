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
# executors as environment, redacted in the UI/event logs), a secret file mounted on the driver and executors
# (--set etl.pseudonym_key_file=PATH, or pseudonym_key_file in conf/cluster/etl.yaml) or, on Kubernetes, the
# secret recsys-pseudonym.
# Re-running the same --run-date and input replaces exactly what that run wrote (idempotent).
# Everything else (master, Delta package, image, executors): deploy/spark-submit.sh and its environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key_file_named() {  # a key file named by an argument (--set etl.pseudonym_key_file=PATH) or the cluster overlay
  local arg
  for arg in "$@"; do [[ "$arg" == *etl.pseudonym_key_file=?* ]] && return 0; done
  grep -Eqs "^[[:space:]]*pseudonym_key_file:[[:space:]]*[\"']?[^\"'[:space:]#]" \
    "${RECSYS_CONF_DIR:-$here/../conf}/cluster/etl.yaml"
}
if [[ "${SPARK_MASTER:-yarn}" != k8s://* && -z "${RECSYS_PSEUDONYM_KEY:-}" ]] && ! key_file_named "$@"; then
  echo "submit_etl.sh: no pseudonymisation key: set RECSYS_PSEUDONYM_KEY from your secret store, or name a secret" \
    "file mounted on the driver and executors (--set etl.pseudonym_key_file=PATH); never the key itself in YAML" >&2
  exit 2
fi
export SHUFFLE_PARTITIONS="${SHUFFLE_PARTITIONS:-2000}"
exec "$here/spark-submit.sh" etl "$@"
