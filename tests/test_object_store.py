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
from pyarrow import fs as pafs
from pyspark.sql import SparkSession

from recsys.config.sections import StorageConfig
from recsys.etl.errors import InputError
from recsys.etl.run_spec import file_sizes
from recsys.etl.sources import csv_headers, list_names
from recsys.lakehouse import TableStore
from recsys.lakehouse.delta_log import read_arrow
from recsys.lakehouse.filesystems import (
    UnsupportedFilesystemError,
    resolve_filesystem,
    resolve_paths,
    without_secrets,
)
from recsys.reporting.report import ReportData, write_report
from recsys.training.petastorm_data import check_shardable, read_shard

pytest.importorskip("moto.server")
BUCKET = "lake"


def _start_server(log: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """moto on a free port in its own process (delta-rs holds the GIL while it waits for the store, so an
    in-process server would hang); ``None`` if it exited (e.g. another process took the port first)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log.open("ab") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while server.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.2)
    _stop(server)
    return None


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("moto") / "server.log"
    for _ in range(3):
        if started := _start_server(log):
            break
    else:
        raise RuntimeError(f"moto server did not start:\n{log.read_text(errors='replace')[-2000:]}")
    server, port = started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(server)


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
    # URIs as Spark lists them are percent-encoded: the key "raw/a b%.csv"
    with filesystem.open_output_stream(f"{base}/a b%.csv") as out:
        out.write(b"x\n")
    assert file_sizes([f"s3a://{BUCKET}/raw/a%20b%25.csv"]) == [(f"s3a://{BUCKET}/raw/a%20b%25.csv", 2)]
    with pytest.raises(InputError, match="not found"):
        file_sizes([f"s3a://{BUCKET}/raw/gone.csv"])


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


def test_options_override_the_environment_and_secrets_stay_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://from-env:1")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    filesystem, _ = resolve_filesystem("s3a://lake/x", {"AWS_ENDPOINT_URL": "http://from-options:2",
                                                        "AWS_REGION": "eu-west-1"})
    assert isinstance(filesystem, pafs.S3FileSystem) and filesystem.region == "eu-west-1"
    assert "from-options:2" in repr(filesystem.__reduce__())  # the options' endpoint, whatever its name
    options = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s",
               "AWS_SESSION_TOKEN": "t"}
    assert without_secrets(options) == {"AWS_REGION": "eu-west-1"}


def test_unknown_scheme_names_what_to_install() -> None:
    with pytest.raises(UnsupportedFilesystemError, match="no filesystem for nosuch://"):
        resolve_filesystem("nosuch://bucket/path")
    with pytest.raises(UnsupportedFilesystemError, match="bucket"):
        resolve_filesystem("s3a:///no-bucket")
