"""What every job shares: the common command-line options and the job context (config, Spark, tables)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession

from recsys.config import AppConfig, load_config
from recsys.lakehouse import TableStore
from recsys.spark_session import get_spark


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--env", default=os.environ.get("RECSYS_ENV", "local"),
                        help="configuration overlay: local, test or cluster (default: $RECSYS_ENV or local)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set train.max_steps=100 (repeatable)")
    parser.add_argument("--lakehouse", default=None,
                        help="lakehouse root: a local path or URI (default: storage.lakehouse, ./lakehouse)")
    parser.add_argument("--conf-dir", default=None, help="configuration directory (default: ./conf)")
    parser.add_argument("--log-level", default="INFO", help="Python log level (default INFO)")
    return parser


def configure_logging(level: str) -> None:
    """``level`` for recsys' own loggers; third-party libraries (and py4j's root-logger chatter about
    reconnecting an idle gateway socket) only from WARNING up."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("recsys").setLevel(getattr(logging, level.upper(), logging.INFO))


@dataclass
class JobContext:
    """Loaded configuration plus the session and table store built from it."""

    config: AppConfig
    args: argparse.Namespace
    _spark: SparkSession | None = None
    _store: TableStore | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = get_spark(self.config.spark)
        return self._spark

    @property
    def store(self) -> TableStore:
        if self._store is None:
            self._store = TableStore(self.spark, self.config.storage)
        return self._store


def common_parent() -> argparse.ArgumentParser:
    """The common options as a parent parser, for jobs with sub-commands (``parents=[common_parent()]``)."""
    return add_common_args(argparse.ArgumentParser(add_help=False))


def parse_job_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                   add_common: bool = True) -> JobContext:
    """Parse ``argv`` (common options added unless the sub-parsers carry them), set up logging, load config."""
    if add_common:
        add_common_args(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    configure_logging(args.log_level)
    config = load_config(args.env, args.overrides, lakehouse=args.lakehouse, conf_dir=args.conf_dir)
    return JobContext(config=config, args=args)
