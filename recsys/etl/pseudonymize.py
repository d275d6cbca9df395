"""Keyed pseudonyms: HMAC-SHA256 of raw user ids, computed vectorized on the executors.

The key comes from ``$RECSYS_PSEUDONYM_KEY`` or, when unset, from the secret file ``etl.pseudonym_key_file``
(never from YAML). The local demo creates a random key file with owner-only permissions. The key reaches the
executors inside the UDF's pickled closure only: it is never part of a query plan or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd
from pyspark.sql import Column
from pyspark.sql.functions import pandas_udf

from recsys.config.loader import ConfigError
from recsys.etl.settings import EtlConfig

KEY_ENV = "RECSYS_PSEUDONYM_KEY"


class PseudonymKeyError(ConfigError):
    """No pseudonymization key is available (``recsys etl`` reports it as a configuration error)."""


def load_key(cfg: EtlConfig) -> bytes:
    """The HMAC key: ``$RECSYS_PSEUDONYM_KEY``, else the key file (created when configured to)."""
    from_env = os.environ.get(KEY_ENV, "")
    if from_env:
        return from_env.encode("utf-8")
    if not cfg.pseudonym_key_file:
        raise PseudonymKeyError(
            f"no pseudonymization key: set ${KEY_ENV} or etl.pseudonym_key_file (a secret file)")
    path = Path(cfg.pseudonym_key_file).expanduser()
    if not path.exists():
        if not cfg.create_key_if_missing:
            raise PseudonymKeyError(
                f"pseudonymization key file {path} does not exist (and etl.create_key_if_missing is false); "
                f"create it or set ${KEY_ENV}")
        create_key_file(path)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise PseudonymKeyError(f"pseudonymization key file {path} is empty")
    return key.encode("utf-8")


def create_key_file(path: Path) -> None:
    """Write a random 32-byte hex key readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def pseudonym(key: bytes, raw_id: str) -> str:
    """The pseudonym of one id (driver-side reference implementation)."""
    return hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonymize(column: Column, key: bytes) -> Column:
    """HMAC-SHA256 hex of ``column`` (strings); null stays null."""

    @pandas_udf("string")  # type: ignore[call-overload]
    def _hmac(ids: pd.Series) -> pd.Series:
        return pd.Series([None if v is None else hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest()
                          for v in ids], dtype=object)

    return _hmac(column)
