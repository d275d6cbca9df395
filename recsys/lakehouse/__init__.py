"""The table layer: Delta tables by name under the lakehouse root (see :mod:`recsys.lakehouse.store`)."""

from recsys.lakehouse.delta_log import Snapshot, read_arrow
from recsys.lakehouse.errors import (
    ConcurrentWriteError,
    SchemaMismatchError,
    TableError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
)
from recsys.lakehouse.store import ABSENT, WRITE_MODES, TableStore, WriteMode

__all__ = [
    "ABSENT",
    "WRITE_MODES",
    "ConcurrentWriteError",
    "SchemaMismatchError",
    "Snapshot",
    "TableError",
    "TableExistsError",
    "TableNotFoundError",
    "TableStore",
    "UnsupportedTableError",
    "WriteMode",
    "read_arrow",
]
