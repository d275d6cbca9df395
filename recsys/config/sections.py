"""Foundation config sections: Spark and storage. Pipeline stages declare theirs beside their code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class SparkConfig:
    """Settings for *local* sessions only; under spark-submit the cluster's own settings (deploy/) win."""

    master: str = "local[*]"
    app_name: str = "recsys"
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    ui_enabled: bool = False
    # Extra ``spark.*`` settings applied to local sessions, e.g. {"spark.sql.adaptive.enabled": "true"}.
    conf: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class StorageConfig:
    """Where tables live and how their files are laid out."""

    # Local path or URI: file://, s3a:// (s3://, s3n://), gs://, hdfs://, or any fsspec scheme whose package is
    # installed (abfss:// with adlfs); see recsys/lakehouse/filesystems.py.
    lakehouse: str = "./lakehouse"
    # Most rows per Parquet row group of the tables Petastorm reads (train_examples, validation_truth,
    # item_tokens: Petastorm shards by row group, so every training worker must get several).
    row_group_rows: int = 65536
    # Parquet row-group size in bytes of every other table (Spark's writer, `parquet.block.size`).
    row_group_bytes: int = 134_217_728
    # Parquet codec of data files written by the delta-rs backend (zstd, snappy, gzip, none).
    compression: str = "zstd"
    # zstd level of those files. 1 (zstd's fastest) writes the ETL's interactions about 15% faster than
    # parquet-mr's default 3, for files 0.4% bigger (benchmarks/bench_etl.py data: ids and hashes).
    zstd_level: int = 1
    # A writer task rolls over to a new file after this many rows.
    max_rows_per_file: int = 2_000_000
    # Files no longer referenced by any version younger than this are deleted by `recsys table vacuum`.
    vacuum_retention_hours: int = 168
    # "auto": delta-spark when its JVM classes are on the classpath, else delta-rs. Or force one.
    backend: str = "auto"
    # Object-store options for delta-rs and the pyarrow filesystems (AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP);
    # they override the environment variables of the same names. Secrets belong in the environment.
    storage_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
