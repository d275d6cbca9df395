"""Python-side file access on an S3-compatible store (moto's local server) by the URIs Spark uses (``s3a://``).

Spark itself cannot read ``s3a://`` here (the hadoop-aws connector is not on this classpath and Maven is
unreachable), so these tests cover what the Python side does on its own: the ETL's input listing, header
checks and run-id file sizes, Petastorm-table writes (executors write through pyarrow, delta-rs commits),
snapshot reads, Petastorm shards, table listing and the evaluation report.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from recsys.config.sections import StorageConfig
from recsys.etl.run_spec import file_sizes
from recsys.etl.sources import csv_headers, list_names
from recsys.lakehouse import TableStore
from recsys.lakehouse.delta_log import read_arrow
from recsys.lakehouse.filesystems import UnsupportedFilesystemError, resolve_filesystem, resolve_paths
from recsys.reporting.report import ReportData, write_report
from recsys.training.petastorm_data import check_shardable, read_shard

pytest.importorskip("moto.server")
BUCKET = "lake"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # its own process: delta-rs holds the GIL while it waits for the store, so an in-process server would hang
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture()
def options(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """delta-rs style storage options for the local server.

    The credentials are options too: Spark's Python workers were started before this test, so they do not see
    environment variables it sets (on a cluster, executors get theirs from the environment or an instance role).
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    boto3 = pytest.importorskip("boto3")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return opts


def test_etl_input_helpers_read_s3a_uris(options: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # the ETL's input helpers take no options: the environment carries them, as on a cluster's driver
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    filesystem, base = resolve_filesystem(f"s3a://{BUCKET}/raw")
    assert base == f"{BUCKET}/raw"
    with filesystem.open_output_stream(f"{base}/movies.csv") as out:
        out.write(b"movieId,title,genres\n1,Heat (1995),Action\n")
    with filesystem.open_output_stream(f"{base}/tags.csv.gz", compression=None) as out:
        out.write(gzip.compress(b"userId,movieId,tag,timestamp\n7,1,noir,1\n"))
    uris = [f"s3a://{BUCKET}/raw/movies.csv", f"s3a://{BUCKET}/raw/tags.csv.gz"]
    assert list_names(f"s3a://{BUCKET}/raw") == ["movies.csv", "tags.csv.gz"]
    assert csv_headers(uris) == [["movieId", "title", "genres"], ["userId", "movieId", "tag", "timestamp"]]
    sizes = dict(file_sizes(uris))
    assert sizes[uris[0]] == len(b"movieId,title,genres\n1,Heat (1995),Action\n") and sizes[uris[1]] > 0


def test_row_group_table_snapshot_and_report_on_s3a(spark: SparkSession, options: dict[str, str]) -> None:
    root = f"s3a://{BUCKET}/lakehouse"
    store = TableStore(spark, StorageConfig(lakehouse=root, backend="delta-rs", storage_options=options))
    frame = spark.createDataFrame([(i, f"item {i}") for i in range(50)], "item_idx int, text string")
    store.write(frame.repartition(2), "item_tokens", row_group_rows=10)  # executors write through pyarrow
    assert store.list_tables() == ["item_tokens"]
    snap = store.snapshot("item_tokens")
    assert snap.files and all(f.startswith(("s3a://", "s3://")) for f in snap.files)
    table = read_arrow(snap).to_pandas().sort_values("item_idx", ignore_index=True)
    assert table.item_idx.tolist() == list(range(50)) and table.text[7] == "item 7"
    # what training does: row groups counted from the footers, then two Petastorm shards read the files
    assert sum(check_shardable(snap.files, 2, snap.storage_options)) == 50
    shards = [read_shard(snap.files, rank, 2, ["item_idx"], snap.storage_options)["item_idx"] for rank in (0, 1)]
    assert all(len(s) for s in shards) and sorted(np.concatenate(shards).tolist()) == list(range(50))

    metrics = pd.DataFrame([{"model": "ours", "metric": "ndcg", "k": 10, "value": 0.5, "split": "test",
                             "users_evaluated": 3}])
    directory = write_report(root, ReportData(run_id="r1", metrics=metrics), options)
    filesystem, path = resolve_filesystem(directory, options)
    with filesystem.open_input_stream(f"{path}/summary.md") as stream:
        assert "| ours |" in stream.read().decode()


def test_paths_of_one_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # no region lookup (no network here)
    _, paths = resolve_paths(["s3a://lake/raw/a.csv", "s3a://lake/raw/b c.csv"])
    assert paths == ["lake/raw/a.csv", "lake/raw/b c.csv"]
    _, paths = resolve_paths([str(tmp_path / "a b.csv"), (tmp_path / "c.csv").as_uri()])
    assert paths == [str(tmp_path / "a b.csv"), str(tmp_path / "c.csv")]
    with pytest.raises(ValueError, match="one store"):
        resolve_paths(["s3a://lake/a.csv", "s3a://other/b.csv"])


def test_unknown_scheme_names_what_to_install() -> None:
    with pytest.raises(UnsupportedFilesystemError, match="no filesystem for nosuch://"):
        resolve_filesystem("nosuch://bucket/path")
    with pytest.raises(UnsupportedFilesystemError, match="bucket"):
        resolve_filesystem("s3a:///no-bucket")
